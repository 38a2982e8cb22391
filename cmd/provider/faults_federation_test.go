package provider_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/federation/fedtest/tcpproxy"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

// Faults across providers, mid-stream: the follower, the hub, and the link between
// them (a proxy that cuts and delays it). Each test has a sender keep sending while
// the fault happens and a subscriber on the follower side, and checks afterwards
// that no message answered with a counter is lost, that the subscriber (which
// resumes from the counter it holds) gets every counter exactly once, in order,
// and that the follower's copy is complete.

// faultStream is one partition under a fault: the sends answered with a counter
// and those that failed (which may or may not have been sequenced).
type faultStream struct {
	g      *mlstest.Group
	mu     sync.Mutex
	acked  map[uint32][32]byte // counter -> the message's SHA-256 (a backlog of messages would weigh on the heap figure); Guarded by mu.
	failed int                 // Guarded by mu.
}

func newFaultStream(g *mlstest.Group) *faultStream {
	return &faultStream{g: g, acked: map[uint32][32]byte{}}
}

func (s *faultStream) counts() (acked, failed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked), s.failed
}

// send sends n distinct messages through c (the client of the moment: c is called
// for each send), each bounded by a few seconds, until n are done or ctx ends.
func (s *faultStream) send(ctx context.Context, t *testing.T, c func() *client.Client, n int) {
	for range n {
		if ctx.Err() != nil {
			return
		}
		m, err := s.g.RandomApplication(80)
		if err != nil {
			t.Error(err)
			return
		}
		sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		ctr, err := c().Send(sctx, &protocol.SendRequest{Message: m, PartitionKey: s.g.PartitionKey})
		cancel()
		s.mu.Lock()
		if err != nil {
			if s.failed++; s.failed <= 3 {
				t.Logf("send failed: %v", err)
			}
		} else if _, dup := s.acked[ctr]; dup {
			t.Errorf("counter %d answered twice", ctr)
		} else {
			s.acked[ctr] = sha256.Sum256(m)
		}
		s.mu.Unlock()
		if err != nil {
			time.Sleep(20 * time.Millisecond) // the provider is away: a bounded pause before the next try
		}
	}
}

// settle waits until the hub's log has stopped growing (nothing queued toward it
// from follower) and the subscriber has every entry; then it checks the guarantees.
func (s *faultStream) settle(t *testing.T, hub, follower *providertest.Provider, pushes *pushLog) {
	t.Helper()
	ctx := context.Background()
	masked := s.g.MaskedPartitionKey()
	deadline := time.Now().Add(time.Minute) // a large MIMIDS_SLOW_N backlog takes a while
	for {
		qs, err := follower.DB.Pending(ctx, hub.Config.Domain, 0, 1, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		info, err := hub.Hub.Partition(ctx, masked)
		if err != nil {
			t.Fatal(err)
		}
		if len(qs) == 0 && len(pushes.snapshot()) >= int(info.Length) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the subscriber got %d pushes of %d sequenced; %d envelopes queued toward the hub", len(pushes.snapshot()), info.Length, len(qs))
		}
		time.Sleep(10 * time.Millisecond)
	}
	log := hubLog(t, hub, masked)
	s.mu.Lock()
	defer s.mu.Unlock()
	for ctr, h := range s.acked {
		if int(ctr) >= len(log) || sha256.Sum256(log[ctr].Message.Message) != h {
			t.Fatalf("the send answered with counter %d is not in the hub's log (%d entries)", ctr, len(log))
		}
	}
	got := pushes.snapshot()
	if len(got) != len(log) {
		t.Fatalf("the subscriber got %d pushes for %d entries", len(got), len(log))
	}
	for i, p := range got {
		var m protocol.Message
		if err := m.UnmarshalBinary(p.Message); err != nil || p.Counter != uint32(i) || !bytes.Equal(m.Message, log[i].Message.Message) {
			t.Fatalf("push %d: counter %d, %v; want counter %d with the hub's message", i, p.Counter, err, i)
		}
	}
	cp, err := follower.DB.FetchCopy(ctx, masked, -1, len(log)+1)
	if err != nil || len(cp) != len(log) {
		t.Fatalf("the follower's copy: %d entries, %v; want %d", len(cp), err, len(log))
	}
	t.Logf("%d messages sequenced (%d answered with a counter, %d sends failed during the fault), each pushed once in order",
		len(log), len(s.acked), s.failed)
}

// unlimited lifts the per-user send rate (the senders here send as fast as the
// providers answer: a rate_limited send is not the fault under test).
func unlimited(_ string, c *provider.Config) { c.Hub.RatePerSecond = -1 }

// proxiedWorld is A and B whose peer entries for each other point at a TCP proxy
// to the other's federation listener: both directions of the link run through
// them. It returns the proxies by the domain they lead to.
func proxiedWorld(t *testing.T, ctx context.Context) (*fedWorld, map[string]*tcpproxy.Proxy) {
	t.Helper()
	w := newFedWorldWith(t, unlimited, "a.example", "b.example")
	proxies := map[string]*tcpproxy.Proxy{}
	for i, d := range w.domains {
		o := w.domains[1-i]
		proxies[o] = tcpproxy.Start(t, w.fed[o])
		if _, err := federation.AddPeer(ctx, w.ps[d].DB, d, federation.Peer{Domain: o, URL: "wss://" + proxies[o].Addr(),
			CA: w.ca.CertPEM()}); err != nil {
			t.Fatal(err)
		}
		if err := w.ps[d].Federation.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return w, proxies
}

// hubLog reads the hub's whole log of a partition (a fetch is bounded in entries
// and bytes: page until a read is empty).
func hubLog(t *testing.T, hub *providertest.Provider, masked []byte) []protocol.PartitionEntry {
	t.Helper()
	var log []protocol.PartitionEntry
	for {
		es, err := hub.Hub.Log().Fetch(context.Background(), masked, int64(len(log))-1, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			return log
		}
		log = append(log, es...)
	}
}

// faultWorld is A hosting a group with bob on B, bob's device subscribed through B
// with its pushes in the returned log.
func faultWorld(t *testing.T, ctx context.Context, w *fedWorld) (alice, bob *welcomeBox, s *faultStream, pushes *pushLog) {
	t.Helper()
	alice, bob = newBox(), newBox()
	dialUser(t, w.ps["a.example"], "alice", alice)
	dialUser(t, w.ps["b.example"], "bob", bob)
	g := groupWithBob(ctx, t, w, alice, bob, mlstest.Options{})
	poll(t, "bob gets the Welcome", func() bool { n, _ := bob.count(g.GroupID); return n == 1 })
	if _, err := bob.c.Receive(ctx, g.PartitionKey, 0); err != nil { // B learns the partition's hub
		t.Fatal(err)
	}
	pushes = &pushLog{}
	dialPushes(t, w.ps["b.example"], bob, pushes)
	if _, err := bob.c.Subscribe(ctx, g.PartitionKey, 0); err != nil {
		t.Fatal(err)
	}
	return alice, bob, newFaultStream(g), pushes
}

// TestFollowerKilledMidStream: alice on the hub keeps sending while B, where bob
// is subscribed, stops and starts again; bob resumes from the counter he holds.
func TestFollowerKilledMidStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := newFedWorldWith(t, unlimited, "a.example", "b.example")
	alice, bob, s, pushes := faultWorld(t, ctx, w)
	const total = 600
	done := make(chan struct{})
	go func() { defer close(done); s.send(ctx, t, func() *client.Client { return alice.c }, total) }()
	poll(t, "bob gets pushes", func() bool { return len(pushes.snapshot()) >= 30 })
	bob.c.Close(ctx)
	w.ps["b.example"].Stop()
	// alice goes on while B is down (stopping B can take long enough on a loaded
	// machine for most of her sends to be done by then: wait for 50 more, or the end).
	before, _ := s.counts()
	if before >= total {
		t.Fatalf("alice sent all %d messages before B was down", total)
	}
	poll(t, "alice sends while B is down", func() bool { n, _ := s.counts(); return n >= min(before+50, total) })
	b := w.start("b.example", nil)
	dialPushes(t, b, bob, pushes)
	if _, err := bob.c.Subscribe(ctx, s.g.PartitionKey, uint32(len(pushes.snapshot()))); err != nil {
		t.Fatalf("subscribe through the restarted B: %v", err)
	}
	<-done
	s.settle(t, w.ps["a.example"], b, pushes)
}

// TestHubKilledMidStream: bob on B keeps sending (forwarded to the hub A) while A
// stops and starts again; every send answered before the crash is in A's log
// after it, and B's subscription at A resumes: bob, subscribed through B all
// along, gets every counter once, in order.
func TestHubKilledMidStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w := newFedWorldWith(t, unlimited, "a.example", "b.example")
	alice, bob, s, pushes := faultWorld(t, ctx, w)
	done := make(chan struct{})
	go func() { defer close(done); s.send(ctx, t, func() *client.Client { return bob.c }, 200) }()
	poll(t, "bob gets pushes of his sends", func() bool { return len(pushes.snapshot()) >= 30 })
	alice.c.Close(ctx)
	w.ps["a.example"].Stop()
	crash, _ := s.counts()
	poll(t, "a send fails while A is down", func() bool { _, f := s.counts(); return f >= 1 })
	a := w.start("a.example", nil)
	<-done
	if n, _ := s.counts(); n <= crash {
		t.Fatalf("no send answered after A's restart (%d before the crash, %d in all)", crash, n)
	}
	s.settle(t, a, w.ps["b.example"], pushes)
}

// TestLinkCutAndDelayedMidStream: both directions of the A–B link run through a
// TCP proxy (each side's peer URL points at it). alice on A and bob on B keep
// sending while the proxy delays every chunk, then cuts every connection, three
// times; the links come back and nothing is lost or pushed twice.
func TestLinkCutAndDelayedMidStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	w, proxies := proxiedWorld(t, ctx)
	alice, bob, s, pushes := faultWorld(t, ctx, w)
	var wg sync.WaitGroup
	for _, c := range []*client.Client{alice.c, bob.c} {
		wg.Add(1)
		go func() { defer wg.Done(); s.send(ctx, t, func() *client.Client { return c }, 150) }()
	}
	for i := range 3 {
		n := len(pushes.snapshot())
		poll(t, "bob gets pushes", func() bool { return len(pushes.snapshot()) >= n+20 })
		for _, p := range proxies {
			p.SetDelay(30 * time.Millisecond)
		}
		poll(t, "bob gets pushes over the delayed link", func() bool { return len(pushes.snapshot()) >= n+30 })
		cut := 0
		for _, p := range proxies {
			cut += p.Cut()
			p.SetDelay(0)
		}
		if cut == 0 {
			sa, _ := w.ps["a.example"].Federation.Status("b.example")
			t.Fatalf("cut %d: no connection through the proxies (accepted %d, %d; A: %+v)", i, proxies["a.example"].Accepted(), proxies["b.example"].Accepted(), sa)
		}
	}
	wg.Wait()
	s.settle(t, w.ps["a.example"], w.ps["b.example"], pushes)
	if n := proxies["a.example"].Accepted() + proxies["b.example"].Accepted(); n < 4 {
		t.Fatalf("%d connections through the proxies, want the first and one after each cut", n)
	}
}

// TestSlowFollowerBounded: B's link reads slowly (the proxies pass 1 KiB per
// 20 ms each way) while A sequences MIMIDS_SLOW_N messages (default 2,000, of
// 3 KiB: about 6 MiB) of a partition B follows. What A keeps for B stays bounded
// by one push (the pusher has one envelope in flight, so the outbound queue, which
// the link's in-memory window is a part of, holds at most one push of at most
// 1 MiB, whatever the backlog); the backlog stays in A's log. Once the link is
// fast again B catches up and bob, subscribed through B, gets every message once,
// in order. The link is also cut twice while slow: a new link adds nothing to
// what A holds for B either. The test logs the process heap (both providers)
// before and after.
func TestSlowFollowerBounded(t *testing.T) {
	n := 2000
	if v := os.Getenv("MIMIDS_SLOW_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			t.Fatalf("MIMIDS_SLOW_N=%q", v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	w, proxies := proxiedWorld(t, ctx)
	_, _, s, pushes := faultWorld(t, ctx, w)
	a := w.ps["a.example"]
	for _, p := range proxies {
		p.Throttle(1<<10, 20*time.Millisecond)
	}
	heap0 := heapInuse()
	const size = 3 << 10
	var bound federation.QueueStats // the most A held for B
	var queued string               // what A held the first time it held more than two
	sample := func() {
		qs, err := a.DB.QueueStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			if q.Peer == "b.example" {
				bound.Depth, bound.Bytes = max(bound.Depth, q.Depth), max(bound.Bytes, q.Bytes)
				if q.Depth > 2 && queued == "" {
					queued = describeQueue(t, a, "b.example")
				}
			}
		}
	}
	for i := range n {
		m, err := s.g.RandomApplication(size)
		if err != nil {
			t.Fatal(err)
		}
		r, err := a.Hub.Send(ctx, protocol.Sender{UserURI: "mimi://a.example/u/alice"}, &protocol.SendRequest{Message: m, PartitionKey: s.g.PartitionKey})
		if err != nil {
			t.Fatal(err)
		}
		s.acked[r.Counter] = sha256.Sum256(m)
		if i%100 == 0 {
			sample()
		}
	}
	// The slow link also breaks (as a write timeout would break it): each new link
	// must not add to what A holds for B. The terms sender looks at each link once
	// a second: give it the chance.
	for range 2 {
		was, _ := a.Federation.Status("b.example")
		for _, p := range proxies {
			p.Cut()
		}
		poll(t, "a new link with B", func() bool {
			st, _ := a.Federation.Status("b.example")
			return st.State == federation.StateUp && st.Since.After(was.Since)
		})
		time.Sleep(1200 * time.Millisecond)
		sample()
	}
	heap1 := heapInuse()
	subs, err := a.DB.PushSubs(ctx)
	if err != nil || len(subs) != 1 {
		t.Fatalf("A's push subscriptions: %v, %v", subs, err)
	}
	if behind := n - int(subs[0].Next); behind < n/2 {
		t.Fatalf("B is only %d messages behind: the throttle did not slow it", behind)
	}
	if bound.Depth > 2 || bound.Bytes > 1<<20+64<<10 {
		t.Fatalf("A held up to %d envelopes (%d bytes) for the slow B; want at most one push of 1 MiB (and one other): %s", bound.Depth, bound.Bytes, queued)
	}
	t.Logf("%d messages (%d MiB) sequenced with B slow: A queued at most %d envelopes, %d KiB for B; B was %d behind; heap in use %d MiB -> %d MiB",
		n, n*size>>20, bound.Depth, bound.Bytes>>10, n-int(subs[0].Next), heap0>>20, heap1>>20)
	for _, p := range proxies {
		p.Throttle(0, 0)
	}
	start := time.Now()
	s.settle(t, a, w.ps["b.example"], pushes)
	t.Logf("B caught up in %v once its link was fast again", time.Since(start))
}

// heapInuse is the process's heap in use after a collection.
func heapInuse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// describeQueue lists what p has queued for peer: id, type and body size of each.
func describeQueue(t *testing.T, p *providertest.Provider, peer string) string {
	qs, err := p.DB.Pending(context.Background(), peer, 0, 20, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, q := range qs {
		out = append(out, fmt.Sprintf("#%d 0x%04x %d bytes", q.ID, uint16(q.Type), len(q.Body)))
	}
	return strings.Join(out, ", ")
}
