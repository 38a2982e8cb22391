package federation_test

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/protocol"
	"github.com/mimids/mimids/sqlite"
)

// clock is a time that tests move.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestLeaserTakeover: two nodes on one store; the first to ask holds the peer's
// lease, the other does not; when the owner stops renewing (it died) the other
// takes the lease over once it expires, and the old owner's Holds turned false a
// third of the term before; an owner that stops cleanly hands over at once; a peer
// leaving the allow-list releases its lease.
func TestLeaserTakeover(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "mimids.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	clk := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	var mu sync.Mutex
	peers := []string{"b.example"}
	changes := map[string][]bool{}
	newLeaser := func(node string) *federation.Leaser {
		l, err := federation.NewLeaser(federation.LeaserConfig{Node: node, TTL: 9 * time.Second, Now: clk.now,
			Peers: func(context.Context) ([]string, error) {
				mu.Lock()
				defer mu.Unlock()
				return append([]string(nil), peers...), nil
			},
			OnChange: func(peer string, held bool) {
				mu.Lock()
				changes[node] = append(changes[node], held)
				mu.Unlock()
			}}, db)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	renew := func(l *federation.Leaser) {
		t.Helper()
		if err := l.Renew(ctx); err != nil {
			t.Fatal(err)
		}
	}
	n1, n2 := newLeaser("n1"), newLeaser("n2")
	renew(n1)
	renew(n2)
	if !n1.Holds("b.example") || n2.Holds("b.example") {
		t.Fatalf("n1 holds %v, n2 holds %v; want only n1", n1.Holds("b.example"), n2.Holds("b.example"))
	}

	clk.add(6 * time.Second) // n1 stops renewing: it died
	if n1.Holds("b.example") {
		t.Fatal("n1 still runs the link with a third of its term left")
	}
	renew(n2)
	if n2.Holds("b.example") {
		t.Fatal("n2 took a lease that had not expired")
	}
	clk.add(3 * time.Second)
	renew(n2)
	if !n2.Holds("b.example") {
		t.Fatal("n2 did not take the expired lease over")
	}
	renew(n1) // n1 comes back: it learns it lost the lease
	if n1.Holds("b.example") {
		t.Fatal("n1 holds the lease n2 took over")
	}

	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- n2.Run(rctx) }()
	cancel() // a clean stop releases
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	renew(n1)
	if !n1.Holds("b.example") {
		t.Fatal("n1 did not take the lease n2 released")
	}
	mu.Lock()
	peers = nil
	mu.Unlock()
	renew(n1)
	if n1.Holds("b.example") {
		t.Fatal("n1 holds the lease of a peer that left the allow-list")
	}
	ls, err := db.Leases(ctx)
	if err != nil || len(ls) != 1 || ls[0].Epoch != 3 || !ls[0].Expires.Equal(time.UnixMilli(0)) {
		t.Fatalf("leases: %+v, %v; want b.example released at epoch 3", ls, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := changes["n1"]; len(got) != 4 || !got[0] || got[1] || !got[2] || got[3] {
		t.Fatalf("n1's changes %v, want gained, lost, gained, lost", got)
	}
	if got := changes["n2"]; len(got) != 2 || !got[0] || got[1] {
		t.Fatalf("n2's changes %v, want gained, lost", got)
	}
}

// withOwns makes the node run only the links whose lease *l holds (set after open).
func withOwns(l **federation.Leaser) nodeOpt {
	return func(n *node) {
		n.cfg = func(c *federation.Config) {
			c.Owns = func(peer string) bool { return *l != nil && (*l).Holds(peer) }
		}
	}
}

// TestLinkHandover: provider A runs as two nodes on one store. Only the node holding
// b.example's lease links to B (the other refuses B's dials with 503 and does not
// dial). B goes away while A's first node queues envelopes, and that node dies
// (no more renewals, link layer gone); once the lease expires the second node
// takes it over, links to B, and delivers what the first one queued: every
// envelope applied once, in order.
func TestLinkHandover(t *testing.T) {
	f := newFed(t)
	b := f.newNode("b.example")
	var l1, l2 *federation.Leaser
	a1 := f.newNode("a.example", withOwns(&l1))
	a2 := f.newNode("a.example", withOwns(&l2))
	const ttl = 600 * time.Millisecond
	peers := func(context.Context) ([]string, error) { return []string{"b.example"}, nil }
	var err error
	if l1, err = federation.NewLeaser(federation.LeaserConfig{Node: "a1", TTL: ttl, Peers: peers,
		OnChange: func(p string, held bool) {
			if !held {
				a1.links.Handover(p)
			}
		}}, a1.db); err != nil {
		t.Fatal(err)
	}
	if l2, err = federation.NewLeaser(federation.LeaserConfig{Node: "a2", TTL: ttl, Peers: peers,
		OnChange: func(p string, held bool) {
			if !held {
				a2.links.Handover(p)
			}
		}}, a2.db); err != nil {
		t.Fatal(err)
	}
	// a1 renews by hand until it "dies"; a2 runs its leaser.
	if err := l1.Renew(ctx); err != nil || !l1.Holds("b.example") {
		t.Fatalf("a1 does not hold the lease: %v", err)
	}
	alive := make(chan struct{})
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		for {
			select {
			case <-alive:
				return
			case <-time.After(ttl / 4):
			}
			if err := l1.Renew(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	c2, cancel2 := context.WithCancel(ctx)
	run2 := make(chan error, 1)
	go func() { run2 <- l2.Run(c2) }()
	defer func() { cancel2(); <-run2 }()

	a1.trust(b)
	if err := a2.links.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	b.trust(a2) // B dials the node that does not run the link: refused with 503
	b.start()
	a1.start()
	a2.start()
	eventually(t, "a1 links to B", func() bool { return a1.up("b.example") })
	a1.sendN(t, "b.example", 3)
	eventually(t, "B applies a1's envelopes", func() bool { return len(b.applied("a.example")) == 3 })
	if a2.up("b.example") {
		t.Fatal("a2 links to B without the lease")
	}

	b.stop()
	a1.sendN(t, "b.example", 5) // queued in the shared store: B is away
	close(alive)
	<-renewed
	a1.stop() // a1 dies
	b.open()
	b.start()
	eventually(t, "a2 takes the lease over", func() bool { return l2.Holds("b.example") })
	eventually(t, "a2 links to B", func() bool { return a2.up("b.example") })
	eventually(t, "B applies what a1 queued", func() bool { return len(b.applied("a.example")) >= 8 })
	checkOnceInOrder(t, b.applied("a.example"), 8)
	eventually(t, "A's queue drains", func() bool { return a2.depth("b.example") == 0 })
}

// TestLeaserStoreDown: a node whose store stops answering keeps its lease only for
// two thirds of its term by its own clock, then reports it lost (its link stops)
// before any other node can take it.
func TestLeaserStoreDown(t *testing.T) {
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "mimids.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	var lost []string
	l, err := federation.NewLeaser(federation.LeaserConfig{Node: "n1", TTL: 9 * time.Second, Now: clk.now,
		Peers: func(context.Context) ([]string, error) { return []string{"b.example"}, nil },
		OnChange: func(p string, held bool) {
			if !held {
				lost = append(lost, p)
			}
		}}, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Renew(ctx); err != nil || !l.Holds("b.example") {
		t.Fatalf("first renewal: %v", err)
	}
	db.Close()
	clk.add(3 * time.Second)
	if err := l.Renew(ctx); err == nil || !l.Holds("b.example") || len(lost) != 0 {
		t.Fatalf("with a third of the term gone: %v, holds %v, lost %v", err, l.Holds("b.example"), lost)
	}
	clk.add(3 * time.Second)
	if err := l.Renew(ctx); err == nil || l.Holds("b.example") || len(lost) != 1 {
		t.Fatalf("with two thirds gone: %v, holds %v, lost %v", err, l.Holds("b.example"), lost)
	}
}

// TestNonOwnerNode: provider A as two nodes on one store, a1 running B's link and
// a2 not (Owns). A Call made on a2 goes through its ForwardCall (here straight to
// a1's CallHere, as NATS would carry it) and gets B's answer; an envelope queued
// on a2 reaches B at once through its Enqueued notice (a1 reads its queue only
// every hour here); a2 records no link status, even when it stops, so the status
// in the store stays a1's.
func TestNonOwnerNode(t *testing.T) {
	f := newFed(t)
	b := f.newNode("b.example")
	hour := func(c *federation.Config) { c.PeerRefresh = time.Hour }
	a1 := f.newNode("a.example", func(n *node) {
		n.cfg = func(c *federation.Config) { hour(c); c.Owns = func(string) bool { return true } }
	})
	var forwarded, notices atomic.Int32
	a2 := f.newNode("a.example", func(n *node) {
		n.cfg = func(c *federation.Config) {
			hour(c)
			c.Owns = func(string) bool { return false }
			c.ForwardCall = func(ctx context.Context, peer string, typ protocol.EnvelopeType, body []byte) ([]byte, error) {
				forwarded.Add(1)
				return a1.links.CallHere(ctx, peer, typ, body)
			}
			c.Enqueued = func(peer string) { notices.Add(1); a1.links.Wake(peer) }
		}
	})
	a1.trust(b)
	if err := a2.links.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	b.trust(a1)
	b.start()
	a1.start()
	a2.start()
	eventually(t, "a1 links to B", func() bool { return a1.up("b.example") })

	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := a2.links.Call(cctx, "b.example", typeApply, []byte("call"))
	if err != nil || string(out) != "ok:call" || forwarded.Load() != 1 {
		t.Fatalf("call on a2: %q, %v (forwarded %d)", out, err, forwarded.Load())
	}
	_, err = a2.links.Call(cctx, "b.example", typeRefuse, nil)
	if code, _ := protocol.CodeOf(err); code != protocol.CodePolicy {
		t.Fatalf("refused call on a2: %v", err)
	}
	a2.sendN(t, "b.example", 1)
	eventually(t, "B applies the envelope queued on a2", func() bool { return len(b.applied("a.example")) == 2 })
	if notices.Load() != 1 {
		t.Fatalf("a2 sent %d notices for one envelope", notices.Load())
	}
	a2.stop()
	st, err := a1.db.PeerStatuses(ctx)
	if err != nil || len(st) != 1 || st[0].State != federation.StateUp {
		t.Fatalf("recorded status %+v, %v; want a1's link, up", st, err)
	}
}
