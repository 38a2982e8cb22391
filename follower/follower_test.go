package follower_test

import (
	"context"
	"errors"
	"testing"

	"github.com/mimids/mimids/follower"
	"github.com/mimids/mimids/protocol"
)

// Without federation the follower follows no group: every forwarded method answers
// not_found, and create_group is not one of them.
func TestFollowsNothingYet(t *testing.T) {
	ctx := context.Background()
	m := follower.New(follower.Config{}).Methods()
	if len(m) != len(follower.Forwarded) {
		t.Fatalf("%d methods, want %d", len(m), len(follower.Forwarded))
	}
	if _, ok := m[protocol.MethodCreateGroup]; ok {
		t.Fatal("the follower serves create_group")
	}
	s := protocol.Sender{ClientID: 1, UserURI: "mimi://a.example/u/alice", Local: true}
	for id, h := range m {
		_, err := h(ctx, s, []byte{1, 2, 3})
		if !errors.Is(err, follower.ErrUnknownGroup) {
			t.Errorf("%s: %v", id, err)
		}
		if code, ok := protocol.CodeOf(err); !ok || code != protocol.CodeNotFound {
			t.Errorf("%s: code %v %v, want not_found", id, code, ok)
		}
	}
}
