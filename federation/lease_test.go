package federation_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/federation"
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
