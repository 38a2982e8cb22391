package gateway

import (
	"context"
	"errors"
	"testing"

	"github.com/mimids/mimids/protocol"
)

var errNoGroup = protocol.NewError(protocol.CodeNotFound, "test: unknown group")

// fakeHost answers every method with err and counts the calls.
type fakeHost struct {
	err   error
	calls int
}

func (f *fakeHost) Send(context.Context, protocol.Sender, *protocol.SendRequest) (protocol.SendResponse, error) {
	f.calls++
	return protocol.SendResponse{Counter: 7}, f.err
}
func (f *fakeHost) Receive(context.Context, *protocol.ReceiveRequest) (*protocol.ReceiveResponse, error) {
	f.calls++
	return &protocol.ReceiveResponse{}, f.err
}
func (f *fakeHost) GroupInfo(context.Context, *protocol.GroupInfoRequest) (*protocol.GroupInfoResponse, error) {
	f.calls++
	return &protocol.GroupInfoResponse{}, f.err
}
func (f *fakeHost) ExternalJoin(context.Context, protocol.Sender, *protocol.ExternalJoinRequest) (protocol.ExternalJoinResponse, error) {
	f.calls++
	return protocol.ExternalJoinResponse{}, f.err
}
func (f *fakeHost) CreateGroup(context.Context, protocol.Sender, *protocol.CreateGroupRequest) (protocol.CreateGroupResponse, error) {
	f.calls++
	return protocol.CreateGroupResponse{}, f.err
}

func callAll(r *Router) []error {
	ctx := context.Background()
	_, e1 := r.Send(ctx, protocol.Sender{}, &protocol.SendRequest{})
	_, e2 := r.Receive(ctx, &protocol.ReceiveRequest{})
	_, e3 := r.GroupInfo(ctx, &protocol.GroupInfoRequest{})
	_, e4 := r.ExternalJoin(ctx, protocol.Sender{}, &protocol.ExternalJoinRequest{})
	return []error{e1, e2, e3, e4}
}

func TestRouterHostedHereStaysAtTheHub(t *testing.T) {
	refused := protocol.NewError(protocol.CodePolicy, "test: banned")
	for _, hubErr := range []error{nil, refused} {
		h, f := &fakeHost{err: hubErr}, &fakeHost{}
		r := &Router{Hub: h, Follower: f, NotHosted: func(err error) bool { return errors.Is(err, errNoGroup) }}
		for i, err := range callAll(r) {
			if !errors.Is(err, hubErr) && err != hubErr {
				t.Errorf("hub err %v, method %d: %v", hubErr, i, err)
			}
		}
		if h.calls != 4 || f.calls != 0 {
			t.Errorf("hub err %v: hub %d calls, follower %d", hubErr, h.calls, f.calls)
		}
	}
}

func TestRouterElsewhereGoesToTheFollower(t *testing.T) {
	h, f := &fakeHost{err: errNoGroup}, &fakeHost{err: errors.New("follower answered")}
	r := &Router{Hub: h, Follower: f, NotHosted: func(err error) bool { return errors.Is(err, errNoGroup) }}
	for i, err := range callAll(r) {
		if err == nil || err.Error() != "follower answered" {
			t.Errorf("method %d: %v, want the follower's answer", i, err)
		}
	}
	if h.calls != 4 || f.calls != 4 {
		t.Errorf("hub %d calls, follower %d", h.calls, f.calls)
	}
	// Without a follower the hub's not_found is the answer.
	r.Follower = nil
	for i, err := range callAll(r) {
		if code, _ := protocol.CodeOf(err); code != protocol.CodeNotFound {
			t.Errorf("no follower, method %d: %v", i, err)
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
