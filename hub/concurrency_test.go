package hub_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/protocol"
)

// TestConcurrentSequencing sends application messages from many goroutines
// while the group's commits and proposals go in: every message gets a
// distinct counter, the log has no gap, and a subscriber sees the log in
// order.
func TestConcurrentSequencing(t *testing.T) {
	g := loadFixture(t, "create-2.json")
	e := newEnv(t, "a.example", nil)
	e.create(g)
	ctx := context.Background()
	sink := &recorder{}
	defer e.h.Subscribe(g.Initial.MaskedKey, sink)()
	var wg sync.WaitGroup
	const workers, each = 8, 40
	errs := make(chan error, workers*each+1)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				msg := privateVariant(t, g.Steps[0].Message, 1+w*each+i)
				if _, err := e.h.Send(ctx, protocol.Sender{}, &protocol.SendRequest{Message: msg, PartitionKey: g.Initial.PartitionKey}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Go(func() { // the commit that adds bob, in the middle of it all
		if _, err := e.sendStep(&g.Steps[1], sendOpts{}); err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	es, err := e.h.Fetch(ctx, g.Initial.MaskedKey, -1, 1000)
	if err != nil || len(es) != workers*each+1 {
		t.Fatalf("%d entries, %v; want %d", len(es), err, workers*each+1)
	}
	got := sink.got()
	if len(got) != len(es) {
		t.Fatalf("subscriber saw %d entries, want %d", len(got), len(es))
	}
	for i := range es {
		if es[i].Counter != uint32(i) || got[i].Counter != uint32(i) {
			t.Fatalf("entry %d: log counter %d, published counter %d", i, es[i].Counter, got[i].Counter)
		}
	}
	// The group goes on in the partition the commit opened.
	r := newReplayer(e, g)
	r.run(t, g.Steps[2:], sendOpts{})
}

// TestTinyStateCache replays the 100-member group with room for one public
// state: states are evicted and rebuilt from the store all the time, and
// every commit is still verified.
func TestTinyStateCache(t *testing.T) {
	g := loadFixture(t, "grow-100.json")
	e := newEnv(t, "a.example", func(c *hub.Config) { c.StateCacheSize = 1 })
	e.create(g)
	r := newReplayer(e, g)
	for i := range g.Steps {
		r.step(t, i, &g.Steps[i], sendOpts{noGroupInfo: i%3 != 0})
		// Something else takes the cache's one place.
		if _, err := e.h.Receive(context.Background(), &protocol.ReceiveRequest{PartitionKey: g.Initial.PartitionKey}); err != nil {
			t.Fatal(err)
		}
		e.sendStep(&g.Steps[0], sendOpts{}) // a retry, answered from the log
	}
	st := e.h.Stats()
	if st.Unchecked != 0 || st.Checked != 18 || st.Rebuilds == 0 || st.CachedStates > 2 {
		t.Fatalf("stats %+v", st)
	}
}

// TestBansWrittenElsewhere: a ban written by another process (the admin
// CLI, straight into the store) applies within BanCacheTTL.
func TestBansWrittenElsewhere(t *testing.T) {
	g := loadFixture(t, "create-2.json")
	e := newEnv(t, "a.example", nil)
	e.create(g)
	ctx := context.Background()
	if _, err := e.sendStep(&g.Steps[0], sendOpts{}); err != nil {
		t.Fatal(err)
	}
	if err := e.db.AddBan(ctx, directory.Ban{UserURI: "mimi://b.example/u/bob", At: e.clock.now()}); err != nil {
		t.Fatal(err)
	}
	e.clock.add(10 * time.Second)
	if _, err := e.sendStep(&g.Steps[1], sendOpts{}); err == nil {
		t.Fatal("an add of a user banned by another process went through")
	}
}
