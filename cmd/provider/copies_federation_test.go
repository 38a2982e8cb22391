package provider_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

// TestCopyLifecycle: bob on B was just welcomed to a group hosted on A, so B knows
// no route to its partition: a plain subscribe is not_found, subscribe_at naming A
// works (and teaches B the route). Once bob stops following it, B unsubscribes at
// A after federation.copy_idle (A forgets the subscription and stops pushing), and
// subscribing again continues from where B's copy stands, with the messages sent
// meanwhile. Left alone for federation.copy_retention, B's copy is deleted; a new
// subscribe builds it again from the start.
func TestCopyLifecycle(t *testing.T) {
	w := newFedWorldWith(t, func(_ string, c *provider.Config) {
		c.Federation.CopyIdle = gateway.Duration(300 * time.Millisecond)
		c.Federation.CopyRetention = gateway.Duration(1200 * time.Millisecond)
	}, "a.example", "b.example")
	a, b := w.ps["a.example"], w.ps["b.example"]
	alice, bob := newBox(), newBox()
	dialUser(t, a, "alice", alice)
	dialUser(t, b, "bob", bob)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	g := groupWithBob(ctx, t, w, alice, bob, mlstest.Options{})
	poll(t, "bob gets the Welcome", func() bool { n, _ := bob.count(g.GroupID); return n == 1 && drained(t, bob) })
	bob.c.Close(ctx)
	pushes := &pushLog{}
	dialPushes(t, b, bob, pushes)

	if _, err := bob.c.Subscribe(ctx, g.PartitionKey, 0); client.ErrorCode(err) != protocol.CodeNotFound {
		t.Fatalf("subscribe with no route known: %v, want not_found", err)
	}
	masked, err := bob.c.SubscribeAt(ctx, "a.example", g.PartitionKey, 0)
	if err != nil || !bytes.Equal(masked, g.MaskedPartitionKey()) {
		t.Fatalf("subscribe_at a.example: %x, %v", masked, err)
	}
	sent := 0
	send := func(n int) {
		t.Helper()
		for range n {
			m, err := g.RandomApplication(40)
			if err != nil {
				t.Fatal(err)
			}
			if c, err := alice.c.Send(ctx, &protocol.SendRequest{Message: m, PartitionKey: g.PartitionKey}); err != nil || int(c) != sent {
				t.Fatalf("send %d: %d, %v", sent, c, err)
			}
			sent++
		}
	}
	counters := func() []uint32 {
		var cs []uint32
		for _, p := range pushes.snapshot() {
			cs = append(cs, p.Counter)
		}
		return cs
	}
	send(3)
	poll(t, "bob gets 3 pushes", func() bool { return len(pushes.snapshot()) == 3 })
	subsAtA := func() int {
		subs, err := a.DB.PushSubs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, s := range subs {
			if s.Peer == "b.example" && bytes.Equal(s.Masked, masked) {
				n++
			}
		}
		return n
	}
	if subsAtA() != 1 {
		t.Fatal("A records no subscription of B")
	}
	copyLen := func() int {
		es, err := b.DB.FetchCopy(ctx, masked, -1, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}

	// bob stops following: B unsubscribes at A after copy_idle.
	if err := bob.c.Unsubscribe(ctx, masked); err != nil {
		t.Fatal(err)
	}
	poll(t, "A forgets B's subscription", func() bool { return subsAtA() == 0 })
	send(2)
	if n := copyLen(); n != 3 {
		t.Fatalf("B's copy holds %d entries after the unsubscribe, want 3", n)
	}
	// A plain subscribe works now (route learned), from where bob stands; B asks A
	// from its copy's next counter and gets the two messages it missed.
	if _, err := bob.c.Subscribe(ctx, g.PartitionKey, 3); err != nil {
		t.Fatalf("subscribe again: %v", err)
	}
	poll(t, "bob gets the messages sent while B was unsubscribed", func() bool { return len(pushes.snapshot()) == 5 })
	if cs := counters(); cs[3] != 3 || cs[4] != 4 {
		t.Fatalf("push counters %v", cs)
	}
	if n := copyLen(); n != 5 {
		t.Fatalf("B's copy holds %d entries, want 5", n)
	}

	// Left alone past copy_retention, the copy is deleted.
	if err := bob.c.Unsubscribe(ctx, masked); err != nil {
		t.Fatal(err)
	}
	poll(t, "B deletes the copy", func() bool {
		recs, err := b.DB.CopyRecords(ctx)
		return err == nil && len(recs) == 0
	})
	if n := copyLen(); n != 0 {
		t.Fatalf("B's deleted copy still holds %d entries", n)
	}
	if subsAtA() != 0 {
		t.Fatal("A still records a subscription of B after the copy was deleted")
	}
	send(1)
	if _, err := bob.c.Subscribe(ctx, g.PartitionKey, 0); err != nil {
		t.Fatalf("subscribe after the deletion: %v", err)
	}
	poll(t, "bob gets the whole log again", func() bool { return len(pushes.snapshot()) == 5+6 })
	if n := copyLen(); n != 6 {
		t.Fatalf("B's rebuilt copy holds %d entries, want 6", n)
	}
}
