package natsbus_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/natsbus"
	"github.com/mimids/mimids/natsbus/natstest"
	"github.com/mimids/mimids/protocol"
)

// fedNode records the federation notices one node's bus delivered.
type fedNode struct {
	bus *natsbus.Bus

	mu     sync.Mutex
	wakes  []string // peers whose link was woken
	copies []string // copies poked; "" for every copy
}

func (n *fedNode) Wake(peer string) { n.mu.Lock(); n.wakes = append(n.wakes, peer); n.mu.Unlock() }

type copyPokes struct{ n *fedNode }

func (c copyPokes) Poke(masked []byte) {
	c.n.mu.Lock()
	c.n.copies = append(c.n.copies, string(masked))
	c.n.mu.Unlock()
}

func (n *fedNode) snapshot() (wakes, copies []string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.wakes...), append([]string(nil), n.copies...)
}

func has(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// startFedNode runs a bus named node with h serving its forwarded calls.
func startFedNode(t *testing.T, s *natstest.Server, node string, h natsbus.CallHandler) *fedNode {
	t.Helper()
	b, err := natsbus.Connect(context.Background(), natsbus.Config{URL: s.URL(), NodeID: node, Subject: "mimids.a"})
	if err != nil {
		t.Fatal(err)
	}
	n := &fedNode{bus: b}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := b.Run(ctx, natsbus.Targets{Federation: n, Copies: copyPokes{n}}); err != nil {
			t.Errorf("run: %v", err)
		}
	})
	if h != nil {
		wg.Go(func() {
			if err := b.ServeCalls(ctx, h); err != nil {
				t.Errorf("serve calls: %v", err)
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	waitFor(t, "the bus connects", func() bool { return b.Health() == nil })
	return n
}

// TestForwardedCalls: a Call forwarded to the node that runs the peer's link gets
// its answer, its refusal with the code, "not the owner", or a failure; a node
// nobody serves is "no node".
func TestForwardedCalls(t *testing.T) {
	s := natstest.Start(t)
	startFedNode(t, s, "owner", func(_ context.Context, peer string, typ protocol.EnvelopeType, body []byte) ([]byte, error) {
		switch string(body) {
		case "refuse":
			return nil, &protocol.EnvelopeError{Code: protocol.CodePolicy, Message: "no thanks"}
		case "moved":
			return nil, natsbus.ErrNotOwner
		case "fail":
			return nil, errors.New("store down")
		}
		return []byte(peer + "/" + string(rune('0'+typ)) + "/" + string(body)), nil
	})
	caller := startFedNode(t, s, "caller", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	waitFor(t, "the owner serves calls", func() bool { // its subscription reaches the server after it connected
		_, err := caller.bus.Call(ctx, "owner", "b.example", 1, []byte("hi"))
		return !errors.Is(err, natsbus.ErrNoNode)
	})
	for _, tc := range []struct {
		body    string
		want    string
		wantErr func(error) bool
	}{
		{"hi", "b.example/1/hi", nil},
		{"refuse", "", func(err error) bool {
			c, _ := protocol.CodeOf(err)
			return c == protocol.CodePolicy && strings.Contains(err.Error(), "no thanks")
		}},
		{"moved", "", func(err error) bool { return errors.Is(err, natsbus.ErrNotOwner) }},
		{"fail", "", func(err error) bool {
			return err != nil && !protocol.Refusal(err) && strings.Contains(err.Error(), "store down")
		}},
	} {
		out, err := caller.bus.Call(ctx, "owner", "b.example", 1, []byte(tc.body))
		if tc.wantErr == nil && (err != nil || string(out) != tc.want) || tc.wantErr != nil && !tc.wantErr(err) {
			t.Errorf("call %q: %q, %v", tc.body, out, err)
		}
	}
	if _, err := caller.bus.Call(ctx, "gone", "b.example", 1, nil); !errors.Is(err, natsbus.ErrNoNode) {
		t.Errorf("call to a node nobody serves: %v; want ErrNoNode", err)
	}
}

// TestFederationNotices: a peer's queue notice wakes the link on the other nodes;
// a copy's notice pokes the copy's sinks on the nodes watching it (once the watch
// is confirmed, they read the store too), and no more once the watch ends.
func TestFederationNotices(t *testing.T) {
	s := natstest.Start(t)
	n1 := startFedNode(t, s, "n1", nil)
	n2 := startFedNode(t, s, "n2", nil)
	// Published until heard: n2's subscription reaches the server some time
	// after it connected.
	waitFor(t, "n2's link woken", func() bool {
		n1.bus.PeerQueued("b.example")
		w, _ := n2.snapshot()
		return has(w, "b.example")
	})
	if w, _ := n1.snapshot(); len(w) != 0 {
		t.Fatalf("n1 heard its own notice: %v", w)
	}

	cancel := n2.bus.WatchCopy([]byte("copy1"))
	waitFor(t, "the copy watch is confirmed", func() bool { _, c := n2.snapshot(); return has(c, "copy1") })
	n2.mu.Lock()
	n2.copies = nil
	n2.mu.Unlock()
	n1.bus.CopyCommitted([]byte("copy1"))
	n1.bus.CopyCommitted([]byte("copy2")) // not watched
	waitFor(t, "n2's copy sinks poked", func() bool { _, c := n2.snapshot(); return has(c, "copy1") })
	cancel()
	n1.bus.PeerQueued("c.example") // a marker after the copy notices
	waitFor(t, "the marker", func() bool { w, _ := n2.snapshot(); return has(w, "c.example") })
	n1.bus.CopyCommitted([]byte("copy1"))
	n1.bus.PeerQueued("d.example")
	waitFor(t, "the second marker", func() bool { w, _ := n2.snapshot(); return has(w, "d.example") })
	if _, c := n2.snapshot(); len(c) != 1 || c[0] != "copy1" {
		t.Fatalf("copy pokes %q; want copy1 once (copy2 unwatched, copy1 unwatched after cancel)", c)
	}
}
