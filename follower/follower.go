// Package follower serves this provider's clients in groups hosted by other
// providers: it forwards their requests to the group's hub over the federation link,
// follows the hub's partitions and keeps local copies of their logs, and enforces the
// hub's terms on this provider's own users (DESIGN.md, Federation).
//
// It takes the Welcomes other providers' hubs send for this provider's clients
// (Welcomes: welcome_init and welcome envelopes, docs/protocol.md §5.9), accepting
// only KeyPackageRefs this provider served. It follows no group yet: every
// forwarded request is answered ErrUnknownGroup (not_found), which is what a
// client of a provider without federation must see for a group not hosted here.
package follower

import (
	"context"

	"github.com/mimids/mimids/protocol"
)

// ErrUnknownGroup means a group (or partition) this provider neither hosts nor
// follows.
var ErrUnknownGroup = protocol.NewError(protocol.CodeNotFound, "follower: unknown group")

// Forwarded are the group methods a client may use for a group hosted elsewhere
// (creating a group always makes its creator's provider the hub).
var Forwarded = []protocol.Method{protocol.MethodSend, protocol.MethodReceive, protocol.MethodGroupInfo, protocol.MethodExternalJoin}

// Follower is the follower role of a provider.
type Follower struct{}

// New returns the follower.
func New() *Follower { return &Follower{} }

// Methods is the follower's table of group methods (Forwarded).
func (f *Follower) Methods() protocol.GroupMethods {
	m := make(protocol.GroupMethods, len(Forwarded))
	for _, id := range Forwarded {
		m[id] = f.forward
	}
	return m
}

// forward hands a request to the hub of its group; with no federation link, no
// group is followed.
func (f *Follower) forward(context.Context, protocol.Sender, []byte) ([]byte, error) {
	return nil, ErrUnknownGroup
}
