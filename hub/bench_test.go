package hub_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
	"github.com/mimids/mimids/sqlite"
)

// benchHub is a hub over a fresh SQLite file with n synthetic groups.
func benchHub(b *testing.B, sync string, n int, tune ...func(*hub.Config)) (*hub.Hub, [][]byte, [][]byte) {
	b.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), sqlite.Options{Synchronous: sync})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	cfg := hub.Config{Domain: "a.example"}
	for _, f := range tune {
		f(&cfg)
	}
	h, err := hub.New(cfg, db, &fakeRouter{refs: map[string]int64{}}, &fakeMailbox{got: map[int64][][]byte{}})
	if err != nil {
		b.Fatal(err)
	}
	var ids, keys [][]byte
	for i := range n {
		id := fmt.Appendf(nil, "bench group %d", i)
		gi, pk := syntheticGroup(b, id)
		if _, err := h.CreateGroup(context.Background(), protocol.Sender{ClientID: 1, UserURI: "mimi://a.example/u/alice", Local: true},
			&protocol.CreateGroupRequest{GroupInfo: gi, PartitionKey: pk}); err != nil {
			b.Fatal(err)
		}
		ids, keys = append(ids, id), append(keys, pk)
	}
	return h, ids, keys
}

// benchSend sequences application messages of 300 bytes from 16 concurrent
// senders into groups[i % len].
func benchSend(b *testing.B, h *hub.Hub, ids, keys [][]byte) {
	var next atomic.Uint64
	b.ReportAllocs()
	b.SetParallelism(8) // 16 goroutines on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			g := int(i % uint64(len(ids)))
			msg := syntheticApp(b, ids[g], i, 256)
			if _, err := h.Send(context.Background(), protocol.Sender{}, &protocol.SendRequest{Message: msg, PartitionKey: keys[g]}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

func BenchmarkSequenceOneGroup(b *testing.B) {
	for _, sync := range []string{"normal", "full"} {
		b.Run(sync, func(b *testing.B) {
			h, ids, keys := benchHub(b, sync, 1)
			benchSend(b, h, ids, keys)
		})
	}
}

func BenchmarkSequence1000Groups(b *testing.B) {
	h, ids, keys := benchHub(b, "normal", 1000)
	benchSend(b, h, ids, keys)
}

// BenchmarkReceive reads ReceiveResponses of 100 messages from a partition
// of 2,000, and encodes them.
func BenchmarkReceive(b *testing.B) {
	h, ids, keys := benchHub(b, "normal", 1, func(c *hub.Config) { c.ReceiveMaxMessages = 100 })
	ctx := context.Background()
	for i := range 2000 {
		if _, err := h.Send(ctx, protocol.Sender{}, &protocol.SendRequest{Message: syntheticApp(b, ids[0], uint64(i), 256), PartitionKey: keys[0]}); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c := uint32(n.Add(1)*100) % 1900
			resp, err := h.Receive(ctx, &protocol.ReceiveRequest{PartitionKey: keys[0], Counter: c})
			if err != nil || len(resp.Epoch.Messages) != 100 {
				b.Fatalf("receive: %d messages, %v", len(resp.Epoch.Messages), err)
			}
			if _, err := resp.MarshalBinary(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "msgs/s")
}

// counter is a Sink that counts and records when it saw each counter.
type counterSink struct {
	n    atomic.Int64
	seen func(hub.Entry)
}

func (c *counterSink) Notify(e hub.Entry) {
	c.n.Add(1)
	if c.seen != nil {
		c.seen(e)
	}
}
func (c *counterSink) Refetch() {}

// BenchmarkFanout1000 sequences into a group with 1,000 live subscribers:
// deliveries/s counts Notify calls (the hand-off to the socket layer).
func BenchmarkFanout1000(b *testing.B) {
	h, ids, keys := benchHub(b, "normal", 1)
	sinks := make([]*counterSink, 1000)
	masked := maskedOf(b, h, keys[0])
	for i := range sinks {
		sinks[i] = &counterSink{}
		defer h.Subscribe(masked, sinks[i])()
	}
	benchSend(b, h, ids, keys)
	var total int64
	for _, s := range sinks {
		total += s.n.Load()
	}
	if total != int64(b.N)*1000 {
		b.Fatalf("%d deliveries, want %d", total, b.N*1000)
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkLatencyAt100PerSecond sends 100 messages/s for two seconds to a
// group with 1,000 subscribers and reports the time from Send to the last
// subscriber's Notify: sequencing, commit (synchronous=normal: durable
// across a process crash; full: across power loss) and publish.
func BenchmarkLatencyAt100PerSecond(b *testing.B) {
	for _, sync := range []string{"normal", "full"} {
		b.Run(sync, func(b *testing.B) { benchLatency(b, sync) })
	}
}

func benchLatency(b *testing.B, syncMode string) {
	h, ids, keys := benchHub(b, syncMode, 1)
	masked := maskedOf(b, h, keys[0])
	var starts sync.Map // message -> time.Time
	var mu sync.Mutex
	var lat []time.Duration
	last := &counterSink{seen: func(e hub.Entry) {
		if t, ok := starts.Load(string(e.Message)); ok {
			mu.Lock()
			lat = append(lat, time.Since(t.(time.Time)))
			mu.Unlock()
		}
	}}
	for range 999 {
		defer h.Subscribe(masked, &counterSink{})()
	}
	defer h.Subscribe(masked, last)()
	ctx := context.Background()
	var seq atomic.Uint64
	for b.Loop() {
		tick := time.NewTicker(10 * time.Millisecond)
		var wg sync.WaitGroup
		for range 200 {
			<-tick.C
			msg := syntheticApp(b, ids[0], seq.Add(1), 256)
			wg.Go(func() {
				starts.Store(string(msg), time.Now())
				if _, err := h.Send(ctx, protocol.Sender{}, &protocol.SendRequest{Message: msg, PartitionKey: keys[0]}); err != nil {
					b.Error(err)
				}
			})
		}
		wg.Wait()
		tick.Stop()
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

func maskedOf(b *testing.B, h *hub.Hub, key []byte) []byte {
	info, err := h.PartitionByKey(context.Background(), key)
	if err != nil {
		b.Fatal(err)
	}
	return info.Masked
}

// BenchmarkHandshakes sequences PrivateMessage proposals, one at a time, into a
// group whose public state the hub has: the handshake path (the partition's lock,
// the catch-up read, the conditional append) without MLS signature checks.
func BenchmarkHandshakes(b *testing.B) {
	h, ids, keys := benchHub(b, "normal", 1)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		msg := remarshal(b, syntheticApp(b, ids[0], uint64(i), 256), func(m *mls.MLSMessage) { m.PrivateMessage.ContentType = mls.ContentTypeProposal })
		if _, err := h.Send(ctx, protocol.Sender{}, &protocol.SendRequest{Message: msg, PartitionKey: keys[0]}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
