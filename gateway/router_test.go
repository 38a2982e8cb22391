package gateway

import (
	"context"
	"errors"
	"testing"

	"github.com/mimids/mimids/protocol"
)

var errNoGroup = protocol.NewError(protocol.CodeNotFound, "test: unknown group")

// table answers every method of ids with (answer, err) and counts the calls.
func table(calls *int, answer string, err error, ids ...protocol.Method) protocol.GroupMethods {
	m := protocol.GroupMethods{}
	for _, id := range ids {
		m[id] = func(context.Context, protocol.Sender, []byte) ([]byte, error) {
			*calls++
			return []byte(answer), err
		}
	}
	return m
}

var forwarded = []protocol.Method{protocol.MethodSend, protocol.MethodReceive, protocol.MethodGroupInfo, protocol.MethodExternalJoin}

func TestRouter(t *testing.T) {
	ctx := context.Background()
	notHosted := func(err error) bool { return errors.Is(err, errNoGroup) }
	refused := protocol.NewError(protocol.CodePolicy, "test: banned")
	all := append([]protocol.Method{protocol.MethodCreateGroup}, forwarded...)
	for _, tc := range []struct {
		name        string
		hubErr      error
		wantAnswer  string
		wantErr     error
		hubCalls    int
		followCalls int
	}{
		{"hosted here", nil, "hub", nil, 5, 0},
		{"hosted here, refused", refused, "hub", refused, 5, 0},
		{"hosted elsewhere", errNoGroup, "follower", nil, 5, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var hc, fc int
			r := &Router{Hub: table(&hc, "hub", tc.hubErr, all...), Follower: table(&fc, "follower", nil, forwarded...), NotHosted: notHosted}
			for _, m := range all {
				out, err := r.Handler(m)(ctx, protocol.Sender{}, nil)
				if m == protocol.MethodCreateGroup {
					continue // the hub's answer whatever it is
				}
				if !errors.Is(err, tc.wantErr) || (err == nil && string(out) != tc.wantAnswer) {
					t.Errorf("%s: %q, %v", m, out, err)
				}
			}
			if hc != tc.hubCalls || fc != tc.followCalls {
				t.Errorf("hub %d calls, follower %d; want %d, %d", hc, fc, tc.hubCalls, tc.followCalls)
			}
		})
	}
	// Without a follower the hub's not_found is the answer.
	var hc int
	r := &Router{Hub: table(&hc, "hub", errNoGroup, all...), NotHosted: notHosted}
	for _, m := range forwarded {
		if _, err := r.Handler(m)(ctx, protocol.Sender{}, nil); !errors.Is(err, errNoGroup) {
			t.Errorf("no follower, %s: %v", m, err)
		}
	}
}

func TestWireError(t *testing.T) {
	we, internal := wireError(errors.Join(errors.New("ctx"), protocol.ErrMalformed))
	if internal || we.Code != protocol.CodeMalformed {
		t.Fatalf("coded error: %+v %v", we, internal)
	}
	we, internal = wireError(errors.New("disk on fire"))
	if !internal || we.Code != protocol.CodeInternal || we.Message != "internal error" {
		t.Fatalf("internal error: %+v %v", we, internal)
	}
	in := &protocol.Error{Code: protocol.CodeConflict, Message: "x"}
	if we, _ := wireError(in); we != in {
		t.Fatalf("error frame not passed through: %+v", we)
	}
}
