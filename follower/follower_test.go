package follower_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mimids/mimids/follower"
	"github.com/mimids/mimids/protocol"
)

// Without federation the follower follows no group: every method answers not_found.
func TestFollowsNothingYet(t *testing.T) {
	ctx := context.Background()
	f := follower.New()
	s := protocol.Sender{ClientID: 1, UserURI: "mimi://a.example/u/alice", Local: true}
	_, e1 := f.Send(ctx, s, &protocol.SendRequest{})
	_, e2 := f.Receive(ctx, &protocol.ReceiveRequest{})
	_, e3 := f.GroupInfo(ctx, &protocol.GroupInfoRequest{GroupID: []byte("g")})
	_, e4 := f.ExternalJoin(ctx, s, &protocol.ExternalJoinRequest{})
	for i, err := range []error{e1, e2, e3, e4} {
		if !errors.Is(err, follower.ErrUnknownGroup) {
			t.Errorf("method %d: %v", i, err)
		}
		if code, ok := protocol.CodeOf(err); !ok || code != protocol.CodeNotFound {
			t.Errorf("method %d: code %v %v, want not_found", i, code, ok)
		}
	}
}
