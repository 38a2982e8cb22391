package hub

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// Sender is who hands a request to the hub: one of this provider's clients
// (Local, authenticated by the socket) or a follower acting for a remote
// user (not Local; UserURI and ClientID may be empty).
type Sender struct {
	ClientID int64
	UserURI  string
	Local    bool
}

// UserOf maps a credential identity to the user URI that moderation lists
// and bans name: a client URI mimi://<p>/d/<user>/<client> becomes
// mimi://<p>/u/<user>; anything else is returned unchanged.
func UserOf(identity string) string {
	rest, ok := strings.CutPrefix(identity, "mimi://")
	if !ok {
		return identity
	}
	provider, path, ok := strings.Cut(rest, "/")
	if !ok {
		return identity
	}
	if dev, ok := strings.CutPrefix(path, "d/"); ok {
		if user, _, ok := strings.Cut(dev, "/"); ok && user != "" {
			return "mimi://" + provider + "/u/" + user
		}
	}
	return identity
}

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
		p.banned[UserOf(u)] = true
	}
	for _, u := range l.Muted {
		p.muted[UserOf(u)] = true
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
	return UserOf(string(m.Identity))
}

// banList caches the provider-wide bans, reloading them after ttl so bans
// written by another process (the admin CLI) apply.
type banList struct {
	store Store
	ttl   time.Duration
	now   func() time.Time

	mu     sync.Mutex
	users  map[string]bool // Guarded by mu.
	loaded time.Time       // Guarded by mu.
}

func (b *banList) banned(ctx context.Context, user string) (bool, error) {
	if user == "" {
		return false, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.users == nil || b.now().Sub(b.loaded) >= b.ttl {
		bans, err := b.store.Bans(ctx)
		if err != nil {
			return false, fmt.Errorf("hub: bans: %w", err)
		}
		b.users = make(map[string]bool, len(bans))
		for _, x := range bans {
			b.users[x.UserURI] = true
		}
		b.loaded = b.now()
	}
	return b.users[user], nil
}

// invalidate makes the next check reload.
func (b *banList) invalidate() {
	b.mu.Lock()
	b.users = nil
	b.mu.Unlock()
}

// limiter is a token bucket per local user.
type limiter struct {
	rate  float64 // tokens per second; <= 0: unlimited
	burst float64
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket // Guarded by mu.
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds the limiter's memory: past it, full (idle) buckets are
// dropped, since a full bucket is the same as none.
const maxBuckets = 100_000

func (l *limiter) allow(key string) bool {
	if l.rate <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}
