package provider_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/mimids/fedproc"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
	"golang.org/x/sync/errgroup"
)

// The federation figures of docs/performance.md: fan-out and send-to-delivery
// latency of one group hosted on A, its subscribers on A itself (single provider)
// or spread over the followers B and C (across providers), measured in the same
// run on the same three providers.

// fanSub is one subscriber socket: how many pushes it got and when the last came.
type fanSub struct {
	n    atomic.Int64 // pushes received
	last atomic.Int64 // Unix ns of the last
	// lat, when set, takes the latency of each push (the latency benchmark).
	lat func(p *protocol.Push, now time.Time)
}

func (s *fanSub) onPush(f protocol.Frame) {
	p, ok := f.(*protocol.Push)
	if !ok {
		return
	}
	now := time.Now()
	if s.lat != nil {
		s.lat(p, now)
	}
	s.last.Store(now.UnixNano())
	s.n.Add(1)
}

// fanGroup is one group of the benchmark and its subscribers.
type fanGroup struct {
	name string
	g    *mlstest.Group
	subs []*fanSub
}

func (fg *fanGroup) received() (n int64, last int64) {
	for _, s := range fg.subs {
		n += s.n.Load()
		last = max(last, s.last.Load())
	}
	return n, last
}

// fanWorld is A, B and C; alice on A; the group "single" hosted on A with subs
// subscribers on A, and the group "cross" hosted on A with subs subscribers spread
// over B and C (its Welcome went to bob on B and carol on C, so both follow it).
func fanWorld(b *testing.B, ctx context.Context, subs int, lat func(group string) func(*protocol.Push, time.Time)) (alice *client.Client, single, cross *fanGroup) {
	w := newFedWorldWith(b, unlimited, "a.example", "b.example", "c.example")
	al, bob, carol := newBox(), newBox(), newBox()
	dialUser(b, w.ps["a.example"], "alice", al)
	dialUser(b, w.ps["b.example"], "bob", bob)
	dialUser(b, w.ps["c.example"], "carol", carol)
	remote, err := al.c.Remote(client.RemoteConfig{PeerURL: func(d string) string { return "http://" + w.gw[d] }})
	if err != nil {
		b.Fatal(err)
	}
	var refs [][]byte
	for _, u := range []struct {
		box *welcomeBox
		uri string
	}{{bob, "mimi://b.example/u/bob"}, {carol, "mimi://c.example/u/carol"}} {
		uploadKPs(b, u.box, u.uri, 1)
		dom, _, _, _ := protocol.ParseURI(u.uri)
		refs = append(refs, fetchRef(b, remote, dom, u.uri))
	}
	welcome, err := fedproc.WelcomeFor(refs)
	if err != nil {
		b.Fatal(err)
	}
	single, cross = &fanGroup{name: "single"}, &fanGroup{name: "cross"}
	for _, fg := range []*fanGroup{single, cross} {
		if fg.g, err = mlstest.NewGroup(mlstest.Options{Identities: []string{"mimi://a.example/u/alice"}}); err != nil {
			b.Fatal(err)
		}
		req := &protocol.CreateGroupRequest{GroupInfo: fg.g.GroupInfoMessage, PartitionKey: fg.g.PartitionKey}
		if fg == cross {
			req.WelcomeData = &protocol.WelcomeData{Welcome: welcome, ServiceProviders: []string{"b.example", "c.example"}}
		}
		if _, err := al.c.CreateGroup(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	for _, u := range []*welcomeBox{bob, carol} {
		poll(b, "the Welcome reaches B and C", func() bool { n, _ := u.count(cross.g.GroupID); return n == 1 })
		if _, err := u.c.Receive(ctx, cross.g.PartitionKey, 0); err != nil { // the follower learns the hub
			b.Fatal(err)
		}
	}
	for i := range subs {
		single.subs = append(single.subs, subscribe(b, ctx, w.ps["a.example"], single, i, lat))
		at := w.ps["b.example"]
		if i%2 == 1 {
			at = w.ps["c.example"]
		}
		cross.subs = append(cross.subs, subscribe(b, ctx, at, cross, i, lat))
	}
	return al.c, single, cross
}

// subscribe connects subscriber i of fg on p and subscribes it from counter 0.
func subscribe(b *testing.B, ctx context.Context, p *providertest.Provider, fg *fanGroup, i int, lat func(string) func(*protocol.Push, time.Time)) *fanSub {
	_, token, err := p.Dir.AddClient(ctx, "sub", fmt.Sprintf("%s%d", fg.name, i), true)
	if err != nil {
		b.Fatal(err)
	}
	s := &fanSub{}
	if lat != nil {
		s.lat = lat(fg.name)
	}
	c, err := client.Dial(ctx, client.Config{URL: p.Socket, Token: token, OnPush: s.onPush})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close(context.Background()) })
	if _, err := c.Subscribe(ctx, fg.g.PartitionKey, 0); err != nil {
		b.Fatal(err)
	}
	return s
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q", name, v)
	}
	return n
}

// fanOut sends m messages to fg from alice (4 at a time) and returns deliveries
// per second: every subscriber's pushes, from the first send to the last push.
func fanOut(b *testing.B, ctx context.Context, alice *client.Client, fg *fanGroup, m int) float64 {
	msgs := make([][]byte, m)
	for i := range msgs {
		var err error
		if msgs[i], err = fg.g.RandomApplication(200); err != nil {
			b.Fatal(err)
		}
	}
	base, _ := fg.received()
	want := base + int64(m*len(fg.subs))
	start := time.Now()
	var eg errgroup.Group
	eg.SetLimit(4)
	for _, msg := range msgs {
		eg.Go(func() error {
			_, err := alice.Send(ctx, &protocol.SendRequest{Message: msg, PartitionKey: fg.g.PartitionKey})
			return err
		})
	}
	if err := eg.Wait(); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		n, last := fg.received()
		if n >= want {
			return float64(m*len(fg.subs)) / time.Unix(0, last).Sub(start).Seconds()
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: %d of %d deliveries", fg.name, n-base, want-base)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// BenchmarkFanoutAcrossProviders: each iteration fans MIMIDS_FANOUT_MSGS (100)
// messages out to MIMIDS_FANOUT_SUBS (1,000) subscribers, once on A alone and once
// across providers (A hub, the subscribers on B and C), and reports both rates
// and their ratio.
//
//	go test -run '^$' -bench FanoutAcrossProviders -benchtime 3x ./cmd/provider
func BenchmarkFanoutAcrossProviders(b *testing.B) {
	subs, m := envInt(b, "MIMIDS_FANOUT_SUBS", 1000), envInt(b, "MIMIDS_FANOUT_MSGS", 100)
	ctx := context.Background()
	alice, single, cross := fanWorld(b, ctx, subs, nil)
	fanOut(b, ctx, alice, single, 5) // warm up both paths
	fanOut(b, ctx, alice, cross, 5)
	var rs, rc []float64
	b.ResetTimer()
	for range b.N {
		rs = append(rs, fanOut(b, ctx, alice, single, m))
		rc = append(rc, fanOut(b, ctx, alice, cross, m))
	}
	b.StopTimer()
	s, c := median(rs), median(rc)
	b.ReportMetric(s, "single-deliveries/s")
	b.ReportMetric(c, "cross-deliveries/s")
	b.ReportMetric(c/s, "cross/single")
}

func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// latencies keeps send-to-delivery times by group: the send time of each message
// (noted before the send) and the latency of each push of it.
type latencies struct {
	sent sync.Map // string(message) -> time.Time
	mu   sync.Mutex
	got  map[string][]time.Duration // group -> latencies; Guarded by mu.
}

func (l *latencies) sink(group string) func(*protocol.Push, time.Time) {
	return func(p *protocol.Push, now time.Time) {
		var m protocol.Message
		if err := m.UnmarshalBinary(p.Message); err != nil {
			return
		}
		if t, ok := l.sent.Load(string(m.Message)); ok {
			l.mu.Lock()
			l.got[group] = append(l.got[group], now.Sub(t.(time.Time)))
			l.mu.Unlock()
		}
	}
}

// BenchmarkLatencyAcrossProviders: alice sends 100 messages/s to each group for
// MIMIDS_LATENCY_SECONDS (5) per iteration, the two groups' sends interleaved;
// each group has MIMIDS_LATENCY_SUBS (10) subscribers, on A or on B and C. It
// reports p50 and p99 from send to push received, for each, and the p99 ratio.
//
//	go test -run '^$' -bench LatencyAcrossProviders -benchtime 1x ./cmd/provider
func BenchmarkLatencyAcrossProviders(b *testing.B) {
	subs, secs := envInt(b, "MIMIDS_LATENCY_SUBS", 10), envInt(b, "MIMIDS_LATENCY_SECONDS", 5)
	ctx := context.Background()
	l := &latencies{got: map[string][]time.Duration{}}
	alice, single, cross := fanWorld(b, ctx, subs, l.sink)
	b.ResetTimer()
	for range b.N {
		var eg errgroup.Group
		tick := time.NewTicker(5 * time.Millisecond) // 200/s: 100/s to each group
		for i := range 200 * secs {
			<-tick.C
			fg := []*fanGroup{single, cross}[i%2]
			msg, err := fg.g.RandomApplication(200)
			if err != nil {
				b.Fatal(err)
			}
			eg.Go(func() error {
				l.sent.Store(string(msg), time.Now())
				_, err := alice.Send(ctx, &protocol.SendRequest{Message: msg, PartitionKey: fg.g.PartitionKey})
				return err
			})
		}
		tick.Stop()
		if err := eg.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	want := int64(b.N * 100 * secs * subs)
	poll(b, "every push arrives", func() bool {
		ns, _ := single.received()
		nc, _ := cross.received()
		return ns >= want && nc >= want
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	q := func(group string, p float64) float64 {
		ds := slices.Clone(l.got[group])
		slices.Sort(ds)
		return float64(ds[int(p*float64(len(ds)-1))]) / float64(time.Millisecond)
	}
	b.ReportMetric(q("single", 0.5), "single-p50-ms")
	b.ReportMetric(q("single", 0.99), "single-p99-ms")
	b.ReportMetric(q("cross", 0.5), "cross-p50-ms")
	b.ReportMetric(q("cross", 0.99), "cross-p99-ms")
	b.ReportMetric(q("cross", 0.99)/q("single", 0.99), "p99-cross/single")
}
