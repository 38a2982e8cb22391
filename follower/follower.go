// Package follower serves this provider's clients in groups hosted by other
// providers: it forwards their requests to the group's hub over the federation link,
// follows the hub's partitions and keeps local copies of their logs, and enforces the
// hub's terms on this provider's own users (DESIGN.md, Federation).
//
// Until federation links exist it follows no group: every request is answered
// ErrUnknownGroup (not_found), which is what a client of a provider without
// federation must see for a group that is not hosted here.
package follower

import (
	"context"

	"github.com/mimids/mimids/protocol"
)

// ErrUnknownGroup means a group (or partition) this provider neither hosts nor
// follows.
var ErrUnknownGroup = protocol.NewError(protocol.CodeNotFound, "follower: unknown group")

// Follower is the follower role of a provider.
type Follower struct{}

// New returns the follower.
func New() *Follower { return &Follower{} }

// Send forwards a message to the group's hub.
func (f *Follower) Send(context.Context, protocol.Sender, *protocol.SendRequest) (protocol.SendResponse, error) {
	return protocol.SendResponse{}, ErrUnknownGroup
}

// Receive reads a followed partition.
func (f *Follower) Receive(context.Context, *protocol.ReceiveRequest) (*protocol.ReceiveResponse, error) {
	return nil, ErrUnknownGroup
}

// GroupInfo asks the group's hub for its newest GroupInfo.
func (f *Follower) GroupInfo(context.Context, *protocol.GroupInfoRequest) (*protocol.GroupInfoResponse, error) {
	return nil, ErrUnknownGroup
}

// ExternalJoin forwards an external commit to the group's hub.
func (f *Follower) ExternalJoin(context.Context, protocol.Sender, *protocol.ExternalJoinRequest) (protocol.ExternalJoinResponse, error) {
	return protocol.ExternalJoinResponse{}, ErrUnknownGroup
}
