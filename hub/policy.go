package hub

import (
	"fmt"

	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// policy is a partition's moderation list, fixed when the partition opens
// (a GroupContextExtensions proposal takes effect only in the epoch its
// commit opens).
type policy struct {
	banned map[string]bool
	muted  map[string]bool
}

// policyOf reads the 0xF0A0 extension of a GroupContext. A malformed list
// is an error.
func policyOf(ext mls.Extensions) (*policy, error) {
	e, ok := ext.Find(protocol.ModerationExtensionType)
	if !ok {
		return nil, nil
	}
	var l protocol.ModerationList
	if err := l.UnmarshalBinary(e.ExtensionData); err != nil {
		return nil, fmt.Errorf("moderation list: %w", err)
	}
	p := &policy{banned: make(map[string]bool, len(l.Banned)), muted: make(map[string]bool, len(l.Muted))}
	for _, u := range l.Banned {
		p.banned[protocol.UserOf(u)] = true
	}
	for _, u := range l.Muted {
		p.muted[protocol.UserOf(u)] = true
	}
	return p, nil
}

func (p *policy) isBanned(user string) bool { return p != nil && p.banned[user] }
func (p *policy) isMuted(user string) bool  { return p != nil && p.muted[user] }

// identityOf returns the user URI of a member's basic credential, "" for
// other credentials.
func identityOf(m mls.Member) string {
	if m.Identity == nil {
		return ""
	}
	return protocol.UserOf(string(m.Identity))
}
