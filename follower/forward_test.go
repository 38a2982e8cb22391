package follower_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/follower"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

// memRoutes is follower.Routes in memory, first learned wins.
type memRoutes struct {
	mu      sync.Mutex
	groups  map[string]string
	parts   map[string]string
	clients map[int64][]string
}

func newRoutes() *memRoutes {
	return &memRoutes{groups: map[string]string{}, parts: map[string]string{}, clients: map[int64][]string{}}
}

func (m *memRoutes) SetGroupHub(_ context.Context, g []byte, hub string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.groups[string(g)]; !ok {
		m.groups[string(g)] = hub
	}
	return nil
}

func (m *memRoutes) GroupHub(_ context.Context, g []byte) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.groups[string(g)]
	return h, ok, nil
}

func (m *memRoutes) SetPartitionHub(_ context.Context, d []byte, hub string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.parts[string(d)]; !ok {
		m.parts[string(d)] = hub
	}
	return nil
}

func (m *memRoutes) PartitionHub(_ context.Context, d []byte) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.parts[string(d)]
	return h, ok, nil
}

func (m *memRoutes) AddClientHub(_ context.Context, c int64, hub string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clients[c] = append([]string{hub}, slices.DeleteFunc(m.clients[c], func(h string) bool { return h == hub })...)
	return nil
}

func (m *memRoutes) ClientHubs(_ context.Context, c int64, limit int) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	hs := m.clients[c]
	return hs[:min(limit, len(hs))], nil
}

// hubs answers group_request envelopes per peer; a peer missing blocks until ctx ends.
type hubs struct {
	mu     sync.Mutex
	calls  []string
	answer map[string]func(protocol.GroupRequest) ([]byte, error)
}

func (h *hubs) Call(ctx context.Context, peer string, typ protocol.EnvelopeType, body []byte) ([]byte, error) {
	var req protocol.GroupRequest
	if typ != protocol.EnvelopeGroupRequest || req.UnmarshalBinary(body) != nil {
		return nil, errors.New("bad envelope")
	}
	h.mu.Lock()
	h.calls = append(h.calls, peer)
	fn := h.answer[peer]
	h.mu.Unlock()
	if fn == nil {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return fn(req)
}

var notFound = &protocol.EnvelopeError{Code: protocol.CodeNotFound, Message: "unknown partition"}

func TestForwardRouting(t *testing.T) {
	ctx := context.Background()
	bob := protocol.Sender{ClientID: 5, UserURI: "mimi://b.example/u/bob", Local: true}
	key := []byte("0123456789abcdef")
	recv, _ := (&protocol.ReceiveRequest{PartitionKey: key}).MarshalBinary()
	gi, _ := (&protocol.GroupInfoRequest{GroupID: []byte("g")}).MarshalBinary()
	hint := func(hub string, body []byte) []byte {
		b, _ := (&protocol.HubHinted{Hub: hub, Body: body}).MarshalBinary()
		return b
	}
	empty, _ := (&protocol.ReceiveResponse{}).MarshalBinary()

	routes := newRoutes()
	routes.AddClientHub(ctx, 5, "x.example")
	routes.AddClientHub(ctx, 5, "y.example") // most recent: tried first
	link := &hubs{answer: map[string]func(protocol.GroupRequest) ([]byte, error){
		"x.example": func(r protocol.GroupRequest) ([]byte, error) {
			if r.UserURI != bob.UserURI || r.Method != protocol.MethodReceive {
				return nil, errors.New("wrong request")
			}
			return empty, nil
		},
		"y.example": func(protocol.GroupRequest) ([]byte, error) { return nil, notFound },
		"w.example": func(protocol.GroupRequest) ([]byte, error) {
			return nil, &protocol.EnvelopeError{Code: protocol.CodePolicy, Message: "banned"}
		},
	}}
	m := follower.New(follower.Config{Domain: "b.example", Link: link, Routes: routes, Timeout: 50 * time.Millisecond}).Methods()
	if _, ok := m[protocol.MethodCreateGroup]; ok {
		t.Fatal("the follower serves create_group")
	}

	// An unknown partition is tried at the client's hubs, newest first; then learned.
	if out, err := m[protocol.MethodReceive](ctx, bob, recv); err != nil || string(out) != string(empty) {
		t.Fatalf("receive: %x, %v", out, err)
	}
	if _, err := m[protocol.MethodReceive](ctx, bob, recv); err != nil {
		t.Fatal(err)
	}
	if want := []string{"y.example", "x.example", "x.example"}; !slices.Equal(link.calls, want) {
		t.Fatalf("hubs asked %v, want %v", link.calls, want)
	}
	for _, c := range []struct {
		name string
		m    protocol.Method
		s    protocol.Sender
		body []byte
		code protocol.Code
	}{
		{"receive, client of no group", protocol.MethodReceive, protocol.Sender{ClientID: 9}, mustReceive(t, []byte("fedcba9876543210")), protocol.CodeNotFound},
		{"group_info, unknown group", protocol.MethodGroupInfo, bob, gi, protocol.CodeNotFound},
		{"hint naming this provider", protocol.MethodGroupInfoAt, bob, hint("b.example", gi), protocol.CodeNotFound},
		{"hint not parsing", protocol.MethodGroupInfoAt, bob, []byte{0}, protocol.CodeMalformed},
		{"hub code kept", protocol.MethodGroupInfoAt, bob, hint("w.example", gi), protocol.CodePolicy},
		{"hub not answering", protocol.MethodGroupInfoAt, bob, hint("down.example", gi), protocol.CodeUnavailable},
		{"malformed send", protocol.MethodSend, bob, []byte{1}, protocol.CodeMalformed},
	} {
		_, err := m[c.m](ctx, c.s, c.body)
		if code, ok := protocol.CodeOf(err); !ok || code != c.code {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
		}
	}
	// A refused hint teaches nothing.
	if _, ok, _ := routes.GroupHub(ctx, []byte("g")); ok {
		t.Fatal("a refused group_info_at recorded a route")
	}
}

func mustReceive(t *testing.T, key []byte) []byte {
	b, err := (&protocol.ReceiveRequest{PartitionKey: key}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ownPolicy bans the users in banned and allows n sequencing requests in all.
type ownPolicy struct {
	banned map[string]bool
	n      int
}

func (o *ownPolicy) Banned(_ context.Context, u string) (bool, error) { return o.banned[u], nil }
func (o *ownPolicy) Allow(string) bool                                { o.n--; return o.n >= 0 }

// This provider's own bans and rate limit apply to its users in groups hosted
// elsewhere before anything is forwarded; remote senders are not ours to judge.
func TestOwnPolicyBeforeForwarding(t *testing.T) {
	ctx := context.Background()
	gid := []byte("g")
	routes := newRoutes()
	routes.SetGroupHub(ctx, gid, "a.example")
	ok, _ := (&protocol.GroupInfoResponse{}).MarshalBinary()
	link := &hubs{answer: map[string]func(protocol.GroupRequest) ([]byte, error){
		"a.example": func(protocol.GroupRequest) ([]byte, error) { return ok, nil },
	}}
	own := &ownPolicy{banned: map[string]bool{"mimi://b.example/u/mallory": true}, n: 1}
	m := follower.New(follower.Config{Domain: "b.example", Link: link, Routes: routes, Own: own, Timeout: time.Second}).Methods()
	gi, _ := (&protocol.GroupInfoRequest{GroupID: gid}).MarshalBinary()
	mallory := protocol.Sender{ClientID: 7, UserURI: "mimi://b.example/d/mallory/phone", Local: true}
	if _, err := m[protocol.MethodGroupInfo](ctx, mallory, gi); !errors.Is(err, follower.ErrBannedHere) {
		t.Fatalf("banned user's group_info: %v", err)
	}
	bob := protocol.Sender{ClientID: 5, UserURI: "mimi://b.example/u/bob", Local: true}
	if _, err := m[protocol.MethodGroupInfo](ctx, bob, gi); err != nil {
		t.Fatalf("bob's group_info: %v", err)
	}
	if len(link.calls) != 1 {
		t.Fatalf("%d requests reached the hub, want only bob's", len(link.calls))
	}
	// The rate limit takes from sequencing methods only: one send reaches the hub,
	// the next is refused here.
	app, err := mlstest.ApplicationMessage(gid, 1, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := (&protocol.SendRequest{Message: app, PartitionKey: make([]byte, protocol.PartitionKeySize)}).MarshalBinary()
	if _, err := m[protocol.MethodSend](ctx, bob, body); err != nil {
		t.Fatalf("first send: %v", err)
	}
	if _, err := m[protocol.MethodSend](ctx, bob, body); !errors.Is(err, follower.ErrRateLimitedHere) {
		t.Fatalf("second send: %v, want ErrRateLimitedHere", err)
	}
	if len(link.calls) != 2 {
		t.Fatalf("%d requests reached the hub, want 2", len(link.calls))
	}
	if code, _ := protocol.CodeOf(follower.ErrRateLimitedHere); code != protocol.CodeRateLimited {
		t.Fatalf("code %s", code)
	}
}
