package follower_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/follower"
	"github.com/mimids/mimids/protocol"
	"github.com/mimids/mimids/sqlite"
)

// memBus is an in-process CopyBus joining the Copies of several nodes: what one
// commits pokes the others' watches.
type memBus struct {
	mu      sync.Mutex
	nodes   map[*memBusNode]bool
	watches int
}

type memBusNode struct {
	bus    *memBus
	copies *follower.Copies
}

func (n *memBusNode) CopyCommitted(masked []byte) {
	n.bus.mu.Lock()
	var others []*follower.Copies
	for o := range n.bus.nodes {
		if o != n {
			others = append(others, o.copies)
		}
	}
	n.bus.mu.Unlock()
	for _, c := range others {
		c.Poke(masked)
	}
}

func (n *memBusNode) WatchCopy([]byte) func() {
	n.bus.mu.Lock()
	n.bus.watches++
	n.bus.mu.Unlock()
	return func() { n.bus.mu.Lock(); n.bus.watches--; n.bus.mu.Unlock() }
}

// refetches counts a sink's Refetch calls.
type refetches struct {
	mu sync.Mutex
	n  int
}

func (r *refetches) Notify(protocol.PartitionEntry) {}
func (r *refetches) Refetch()                       { r.mu.Lock(); r.n++; r.mu.Unlock() }
func (r *refetches) count() int                     { r.mu.Lock(); defer r.mu.Unlock(); return r.n }

// TestCopiesAcrossNodes: two nodes of one provider on one store. A copy followed
// on node 2 (its client subscribed there) takes the hub's pushes on node 1 (which
// runs the link), and node 1's append wakes node 2's sink; node 2's watch lasts as
// long as its sinks. Node 1, whose clients do not follow the copy, does not
// unsubscribe it while node 2's do.
func TestCopiesAcrossNodes(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "mimids.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	link := &hubLink{}
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { return now }
	const idle = time.Minute
	bus := &memBus{nodes: map[*memBusNode]bool{}}
	open := func() (*follower.Copies, *memBusNode) {
		n := &memBusNode{bus: bus}
		c, err := follower.NewCopies(ctx, follower.CopiesConfig{Store: db, Link: link, Routes: db, Idle: idle,
			Retention: time.Hour, Now: clock, Bus: n})
		if err != nil {
			t.Fatal(err)
		}
		n.copies = c
		bus.nodes[n] = true
		return c, n
	}
	c1, _ := open()
	c2, _ := open()
	pk := []byte("0123456789abcdef")
	masked, err := c2.MaskedAt(ctx, "a.example", pk)
	if err != nil {
		t.Fatal(err)
	}
	link.take()
	sink := &refetches{}
	cancel := c2.Subscribe(masked, sink)
	if bus.watches != 1 {
		t.Fatalf("%d watches with one sink; want 1", bus.watches)
	}
	p := protocol.PartitionPush{Masked: masked, Entries: []protocol.PushEntry{{Counter: 0, Message: []byte{0}}}}
	body, _ := p.MarshalBinary()
	if _, err := c1.Push(ctx, "a.example", body); err != nil {
		t.Fatalf("node 1 refused a push for the copy node 2 follows: %v", err)
	}
	if sink.count() != 1 {
		t.Fatalf("node 2's sink refetched %d times after node 1's append; want 1", sink.count())
	}
	if _, err := c1.Push(ctx, "c.example", body); err == nil {
		t.Fatal("node 1 took a push for the copy from another hub")
	}

	now = now.Add(2 * idle)
	c2.Sweep(ctx) // node 2's clients follow it: touched
	c1.Sweep(ctx)
	if got := link.take(); len(got) != 0 {
		t.Fatalf("node 1 sent %q while node 2's client follows the copy", got)
	}
	cancel()
	if bus.watches != 0 {
		t.Fatalf("%d watches after the last sink left", bus.watches)
	}
	now = now.Add(idle)
	c1.Sweep(ctx)
	if got := fmt.Sprint(link.take()); got != "[unsubscribe]" {
		t.Fatalf("node 1's sweep once no node follows the copy: %s; want [unsubscribe]", got)
	}
}
