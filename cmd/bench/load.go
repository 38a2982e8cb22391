package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mimids/mimids/client"
)

// tracker counts, for each notice in flight, the clients that have not received it.
type tracker struct {
	mu      sync.Mutex
	pending map[uint64]*noticeState
}

type noticeState struct {
	remaining int
	done      chan struct{} // closed when every client received the notice
}

func (t *tracker) add(id uint64, clients int) *noticeState {
	st := &noticeState{remaining: clients, done: make(chan struct{})}
	t.mu.Lock()
	t.pending[id] = st
	t.mu.Unlock()
	return st
}

func (t *tracker) arrive(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.pending[id]
	if st == nil {
		return
	}
	if st.remaining--; st.remaining == 0 {
		close(st.done)
		delete(t.pending, id)
	}
}

func (t *tracker) drop(id uint64) {
	t.mu.Lock()
	delete(t.pending, id)
	t.mu.Unlock()
}

// handler returns the delivery handler of a throughput socket.
func (b *bench) handler(bc *benchConn) client.Handler {
	return func(_ context.Context, d *client.Delivery) error {
		n, err := d.Notice()
		if err != nil {
			b.foreign.Add(1)
			return nil
		}
		id, sent, ok := parseNoticeText(n.Text, b.run)
		if !ok {
			b.foreign.Add(1)
			return nil
		}
		b.lat.Record(d.ReceivedAt.Sub(sent))
		b.received.Add(1)
		bc.received.Add(1)
		b.tracker.arrive(id)
		return nil
	}
}

// throughputResult is the report of the throughput phase.
type throughputResult struct {
	Mode                string         `json:"mode"` // closed_loop or open_loop
	InFlight            int            `json:"inflight"`
	Rate                float64        `json:"notices_per_second_target,omitempty"`
	Clients             int            `json:"clients"`
	Seconds             float64        `json:"seconds"`
	NoticesPosted       int64          `json:"notices_posted"`
	NoticesFailed       int64          `json:"notices_failed"`
	NoticesSkipped      int64          `json:"notices_skipped"`
	NoticesIncomplete   int64          `json:"notices_incomplete"`
	EnqueuedPerNotice   int64          `json:"enqueued_per_notice"`
	DeliveriesExpected  int64          `json:"deliveries_expected"`
	DeliveriesReceived  int64          `json:"deliveries_received"`
	DeliveriesAcked     int64          `json:"deliveries_acked"` // received, and their ack proved committed
	DeliveriesPerSecond float64        `json:"deliveries_per_second"`
	ClientsAckPending   int            `json:"clients_ack_pending"`
	Latency             latencySummary `json:"latency"`
	PostLatency         latencySummary `json:"post_latency"`
	Reconnects          uint64         `json:"reconnects"`
	Duplicates          uint64         `json:"duplicates"`
	Resyncs             uint64         `json:"resyncs"`
	Foreign             int64          `json:"foreign_deliveries"`
}

// postCounts are the outcomes of the notices posted in the throughput phase.
type postCounts struct {
	posted, failed, skipped, incomplete, enqueued atomic.Int64
}

// throughput posts notices to the run's mail user for o.Duration, each one
// enqueueing one durable entry per client of that user (and nobody else's), then
// confirms the acks and reports.
func (b *bench) throughput(ctx context.Context, conns []*benchConn) *throughputResult {
	o := b.o
	res := &throughputResult{Mode: "closed_loop", InFlight: o.InFlight, Clients: len(conns)}
	if o.Rate > 0 {
		res.Mode, res.Rate = "open_loop", o.Rate
	}
	start := time.Now()
	var pc postCounts
	b.postNotices(ctx, len(conns), &pc)
	elapsed := time.Since(start)
	res.DeliveriesAcked, res.ClientsAckPending = b.confirmAcks(ctx, conns)

	res.Seconds = seconds(elapsed)
	res.NoticesPosted, res.NoticesFailed = pc.posted.Load(), pc.failed.Load()
	res.NoticesSkipped, res.NoticesIncomplete = pc.skipped.Load(), pc.incomplete.Load()
	res.EnqueuedPerNotice = pc.enqueued.Load()
	res.DeliveriesExpected = res.NoticesPosted * int64(len(conns))
	res.DeliveriesReceived = b.received.Load()
	res.DeliveriesPerSecond = float64(res.DeliveriesAcked) / elapsed.Seconds()
	res.Latency, res.PostLatency = b.lat.Summary(), b.post.Summary()
	res.Foreign = b.foreign.Load()
	for _, bc := range conns {
		st := bc.c.Stats()
		res.Reconnects += st.Connects - 1
		res.Duplicates += st.Duplicates
		res.Resyncs += st.Resyncs
	}
	if res.EnqueuedPerNotice != int64(len(conns)) && res.NoticesPosted > 0 {
		b.log.Warn("bench: some of the run's clients are not connected; their mailboxes grow until the end",
			"enqueued_per_notice", res.EnqueuedPerNotice, "connected", len(conns))
	}
	return res
}

// postNotices posts notices for o.Duration with at most o.InFlight of them not yet
// received by every client: as fast as they complete (closed loop) or at o.Rate
// (open loop; a tick with no free slot is skipped). It returns once the last one
// completed or timed out.
func (b *bench) postNotices(ctx context.Context, clients int, pc *postCounts) {
	o := b.o
	var tick <-chan time.Time
	if o.Rate > 0 {
		t := time.NewTicker(max(time.Duration(float64(time.Second)/o.Rate), time.Microsecond))
		defer t.Stop()
		tick = t.C
	}
	slots := make(chan struct{}, o.InFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	deadline := time.Now().Add(o.Duration)
	stop := time.NewTimer(o.Duration)
	defer stop.Stop()
	for id := uint64(1); id <= benchMaxNotices; id++ {
		if tick != nil {
			select {
			case <-tick:
			case <-stop.C:
				return
			case <-ctx.Done():
				return
			}
			select {
			case slots <- struct{}{}:
			default:
				pc.skipped.Add(1)
				continue
			}
		} else {
			select {
			case slots <- struct{}{}:
			case <-stop.C:
				return
			case <-ctx.Done():
				return
			}
		}
		if time.Now().After(deadline) {
			return // the timer and a free slot were ready together
		}
		wg.Go(func() {
			defer func() { <-slots }()
			n, err := b.sendNotice(ctx, id, clients)
			switch {
			case errors.Is(err, errIncomplete):
				pc.incomplete.Add(1)
			case err != nil:
				pc.failed.Add(1)
				b.fail("notice", err)
				return
			}
			pc.posted.Add(1)
			pc.enqueued.Store(int64(n))
		})
	}
}

var errIncomplete = errors.New("not delivered to every client in time")

// sendNotice posts notice id and waits until all clients received it. It returns
// how many entries the server enqueued.
func (b *bench) sendNotice(ctx context.Context, id uint64, clients int) (int, error) {
	st := b.tracker.add(id, clients)
	sent := time.Now()
	n, err := b.api.noticeUser(ctx, b.mailUser, noticeText(b.run, id, sent))
	b.post.Record(time.Since(sent))
	if err != nil {
		b.tracker.drop(id)
		return 0, err
	}
	t := time.NewTimer(b.o.NoticeTimeout)
	defer t.Stop()
	select {
	case <-st.done:
		return n, nil
	case <-t.C:
	case <-ctx.Done():
	}
	b.tracker.drop(id)
	return n, errIncomplete
}

// confirmAcks flushes every client's ack and waits until the server has committed
// it (client.Flush: an ack followed by a ping on the same socket). It returns the
// deliveries of clients whose every handled entry is acknowledged, and how many
// clients could not confirm that.
func (b *bench) confirmAcks(ctx context.Context, conns []*benchConn) (acked int64, pending int) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var deliveries, confirmed atomic.Int64
	forEach(ctx, len(conns), b.o.DialConcurrency, func(i int) {
		bc := conns[i]
		if got, err := bc.c.Flush(ctx); err == nil && got >= bc.c.LastSeq() {
			deliveries.Add(bc.received.Load())
			confirmed.Add(1)
		}
	})
	return deliveries.Load(), len(conns) - int(confirmed.Load())
}

func (t *throughputResult) print(w io.Writer) {
	mode := fmt.Sprintf("closed loop, %d notices in flight", t.InFlight)
	if t.Mode == "open_loop" {
		mode = fmt.Sprintf("open loop at %.0f notices/s, at most %d in flight", t.Rate, t.InFlight)
	}
	fmt.Fprintf(w, "throughput (%s, %d clients, %.1fs):\n", mode, t.Clients, t.Seconds)
	fmt.Fprintf(w, "  notices: %d posted, %d failed, %d skipped, %d incomplete; %d entries enqueued per notice\n",
		t.NoticesPosted, t.NoticesFailed, t.NoticesSkipped, t.NoticesIncomplete, t.EnqueuedPerNotice)
	fmt.Fprintf(w, "  durable deliveries: %d expected, %d received, %d acked (commit confirmed): %.0f deliveries/s\n",
		t.DeliveriesExpected, t.DeliveriesReceived, t.DeliveriesAcked, t.DeliveriesPerSecond)
	if t.ClientsAckPending > 0 {
		fmt.Fprintf(w, "  %d clients could not confirm their acks\n", t.ClientsAckPending)
	}
	fmt.Fprintf(w, "  end-to-end latency (POST sent -> client received): %s\n", t.Latency)
	fmt.Fprintf(w, "  notice POST latency (enqueue committed): %s\n", t.PostLatency)
	fmt.Fprintf(w, "  reconnects %d, duplicates dropped %d, resyncs %d, foreign deliveries %d\n",
		t.Reconnects, t.Duplicates, t.Resyncs, t.Foreign)
}

// idleResult is the report of the idle-memory phase.
type idleResult struct {
	Sockets         int     `json:"sockets"`
	ConnectSeconds  float64 `json:"connect_seconds"`
	ConnectedBefore int     `json:"connected_before"`
	ConnectedAfter  int     `json:"connected_after"`
	RSSBefore       int64   `json:"rss_before_bytes"`
	RSSAfter        int64   `json:"rss_after_bytes"`
	KiBPerSocket    float64 `json:"kib_per_idle_socket"`
	// The server's own accounting after a forced GC, per extra socket: what the
	// RSS figure is made of, without the page-level noise of the RSS.
	HeapBytesPerSocket  float64 `json:"heap_bytes_per_idle_socket"`
	StackBytesPerSocket float64 `json:"stack_bytes_per_idle_socket"`
	GoroutinesPerSocket float64 `json:"goroutines_per_idle_socket"`
}

// idlePhase measures the server's resident memory per idle authenticated socket:
// RSS after GC before and after opening o.Idle more sockets.
func (b *bench) idlePhase(ctx context.Context) (*idleResult, error) {
	creds, err := b.createDevices(ctx, idleRole, b.o.Idle)
	if err != nil {
		return nil, err
	}
	before, err := b.settledSample(ctx)
	if err != nil {
		return nil, err
	}
	res := &idleResult{ConnectedBefore: before.Connected, RSSBefore: before.RSS}
	start := time.Now()
	idle := b.connect(ctx, creds, nil)
	res.Sockets, res.ConnectSeconds = len(idle), seconds(time.Since(start))
	if len(idle) == 0 {
		return res, errors.New("no idle socket could be connected")
	}
	b.log.Info("bench: idle sockets connected", "n", len(idle), "seconds", res.ConnectSeconds)
	want := before.Connected + len(idle)
	deadline := time.Now().Add(60 * time.Second)
	for {
		s, err := b.api.sample(ctx)
		if err != nil {
			return res, err
		}
		res.ConnectedAfter = s.Connected
		if s.Connected >= want {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return res, fmt.Errorf("server counts %d sockets, want %d", s.Connected, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	after, err := b.settledSample(ctx)
	if err != nil {
		return res, err
	}
	res.RSSAfter = after.RSS
	n := float64(len(idle))
	res.KiBPerSocket = float64(after.RSS-before.RSS) / 1024 / n
	res.HeapBytesPerSocket = float64(after.Heap-before.Heap) / n
	res.StackBytesPerSocket = float64(after.Stacks-before.Stacks) / n
	res.GoroutinesPerSocket = float64(after.Goroutines-before.Goroutines) / n
	return res, nil
}

// settledSample forces a GC on the server (twice, so that finalizers run and freed
// spans return to the OS) and reads its metrics.
func (b *bench) settledSample(ctx context.Context) (serverSample, error) {
	for range 2 {
		if err := b.api.gc(ctx); err != nil {
			return serverSample{}, err
		}
	}
	return b.api.sample(ctx)
}

func (r *idleResult) print(w io.Writer) {
	const mib = 1 << 20
	fmt.Fprintf(w, "idle memory: %d extra sockets connected in %.1fs (server counts %d -> %d)\n",
		r.Sockets, r.ConnectSeconds, r.ConnectedBefore, r.ConnectedAfter)
	fmt.Fprintf(w, "  server RSS after GC: %.1f MiB -> %.1f MiB: %.1f KiB per idle socket\n",
		float64(r.RSSBefore)/mib, float64(r.RSSAfter)/mib, r.KiBPerSocket)
	fmt.Fprintf(w, "  server heap after GC: %.0f B, goroutine stacks: %.0f B, goroutines: %.2f per idle socket\n",
		r.HeapBytesPerSocket, r.StackBytesPerSocket, r.GoroutinesPerSocket)
}
