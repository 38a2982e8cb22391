package follower_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/follower"
	"github.com/mimids/mimids/protocol"
	"github.com/mimids/mimids/sqlite"
)

// hubLink is a Link to one hub that hosts every partition: it answers a subscribe
// with the key's masked form (SHA-256) and records what the follower sent.
type hubLink struct {
	mu   sync.Mutex
	sent []string // "subscribe from N", "unsubscribe"
}

func (h *hubLink) Call(_ context.Context, peer string, typ protocol.EnvelopeType, body []byte) ([]byte, error) {
	if peer != "a.example" {
		return nil, protocol.NewError(protocol.CodeNotFound, "unknown peer")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	switch typ {
	case protocol.EnvelopeSubscribe:
		var s protocol.PartitionSubscribe
		if err := s.UnmarshalBinary(body); err != nil {
			return nil, err
		}
		h.sent = append(h.sent, fmt.Sprintf("subscribe from %d", s.From))
		m := sha256.Sum256(s.PartitionKey)
		w := protocol.NewWriter(nil)
		w.Opaque(m[:])
		return w.Result()
	case protocol.EnvelopeUnsubscribe:
		var u protocol.PartitionUnsubscribe
		if err := u.UnmarshalBinary(body); err != nil {
			return nil, err
		}
		h.sent = append(h.sent, "unsubscribe")
		return nil, nil
	}
	return nil, protocol.NewError(protocol.CodeUnknownMethod, "test hub")
}

// take returns what was sent since the last take.
func (h *hubLink) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := h.sent
	h.sent = nil
	return out
}

type nopSink struct{}

func (nopSink) Notify(protocol.PartitionEntry) {}
func (nopSink) Refetch()                       {}

// TestCopyLifecycleRules walks one copy through the rules of docs/protocol.md
// §5.14 with a clock of its own: followed through a hint (the route learned),
// kept while a local client subscribes, unsubscribed once after copy_idle,
// subscribed again from where the copy stands (also after a restart), and deleted
// after copy_retention, after which it starts from 0.
func TestCopyLifecycleRules(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "mimids.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	link := &hubLink{}
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { return now }
	const idle, retention = time.Minute, time.Hour
	open := func() *follower.Copies {
		c, err := follower.NewCopies(ctx, follower.CopiesConfig{Store: db, Link: link, Routes: db, Idle: idle, Retention: retention, Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := open()
	pk := []byte("0123456789abcdef")
	expect := func(step string, want ...string) {
		t.Helper()
		if got := link.take(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: the follower sent %q, want %q", step, got, want)
		}
	}
	if _, err := c.Masked(ctx, pk); err == nil {
		t.Fatal("subscribe with no route known was accepted")
	}
	masked, err := c.MaskedAt(ctx, "a.example", pk)
	if err != nil {
		t.Fatal(err)
	}
	expect("first subscribe_at", "subscribe from 0", "subscribe from 0")
	if hub, ok, err := db.PartitionHub(ctx, follower.KeyDigest(pk)); err != nil || !ok || hub != "a.example" {
		t.Fatalf("route after subscribe_at: %q %v %v", hub, ok, err)
	}
	push := func(from, n uint32) {
		t.Helper()
		p := protocol.PartitionPush{Masked: masked}
		for i := from; i < from+n; i++ {
			p.Entries = append(p.Entries, protocol.PushEntry{Counter: i, Message: []byte{byte(i)}})
		}
		body, _ := p.MarshalBinary()
		if _, err := c.Push(ctx, "a.example", body); err != nil {
			t.Fatal(err)
		}
	}
	push(0, 3)
	cancel := c.Subscribe(masked, nopSink{})
	now = now.Add(10 * idle)
	c.Sweep(ctx)
	expect("sweep with a subscriber")
	cancel()
	now = now.Add(idle - time.Second)
	c.Sweep(ctx)
	expect("sweep before copy_idle")
	now = now.Add(time.Second)
	c.Sweep(ctx)
	expect("sweep at copy_idle", "unsubscribe")
	c.Sweep(ctx)
	expect("sweep again")
	if _, err := c.Masked(ctx, pk); err != nil {
		t.Fatal(err)
	}
	expect("subscribe again", "subscribe from 3")
	push(3, 2)

	// After a restart the copy is known by its key digest: from where it stands.
	c = open()
	if !c.Follows(masked) {
		t.Fatal("the copy is not followed after a restart")
	}
	if _, err := c.Masked(ctx, pk); err != nil {
		t.Fatal(err)
	}
	expect("subscribe after a restart", "subscribe from 5")

	now = now.Add(idle)
	c.Sweep(ctx)
	expect("idle after the restart", "unsubscribe")
	now = now.Add(retention - idle - time.Second)
	c.Sweep(ctx)
	if !c.Follows(masked) {
		t.Fatal("the copy was deleted before copy_retention")
	}
	now = now.Add(time.Second)
	c.Sweep(ctx)
	expect("sweep at copy_retention")
	if c.Follows(masked) {
		t.Fatal("the copy is still followed after copy_retention")
	}
	if recs, err := db.CopyRecords(ctx); err != nil || len(recs) != 0 {
		t.Fatalf("records after the deletion: %+v %v", recs, err)
	}
	if _, err := c.Masked(ctx, pk); err != nil {
		t.Fatal(err)
	}
	expect("subscribe after the deletion", "subscribe from 0", "subscribe from 0")
}
