package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/protocol"
)

// partitionTracker follows one partition's pushes to every subscriber.
type partitionTracker struct {
	// Static after construction.
	group    *benchGroup
	run      [4]byte
	arrivals []atomic.Int32 // by counter: subscribers that received it
	// slots, when set, bounds the messages sent and not yet complete: a
	// completion frees one.
	slots chan struct{}

	subs     atomic.Int32 // subscriptions made: a message is complete when this many got it
	complete atomic.Int64 // messages every subscriber received
	lastDone atomic.Int64 // Unix ns of the last completion
	overflow atomic.Int64 // pushes with a counter beyond arrivals
	foreign  atomic.Int64 // pushes without this run's stamp
	lat      histogram    // send -> push received, over every delivery
}

// arrive records that a subscriber received the message at counter.
func (t *partitionTracker) arrive(counter uint32, msg []byte, now time.Time) {
	if _, _, sent, ok := parseStamp(msg, t.run); ok {
		t.lat.Record(now.Sub(sent))
	} else {
		t.foreign.Add(1)
	}
	if int(counter) >= len(t.arrivals) {
		t.overflow.Add(1)
		return
	}
	if t.arrivals[counter].Add(1) != t.subs.Load() {
		return
	}
	t.complete.Add(1)
	t.lastDone.Store(now.UnixNano())
	if t.slots != nil {
		select {
		case <-t.slots:
		default:
		}
	}
}

// subscription is one subscriber's view of one partition. next is written
// only by the socket's reader goroutine (OnPush).
type subscription struct {
	t        *partitionTracker
	next     atomic.Uint32 // the counter expected next
	received atomic.Int64
	dups     atomic.Int64 // counters below next (a resumed push)
	gaps     atomic.Int64 // counters above next: messages skipped
}

func (s *subscription) push(p *protocol.Push, now time.Time) {
	next := s.next.Load()
	if p.Counter < next {
		s.dups.Add(1)
		return
	}
	if p.Counter > next {
		s.gaps.Add(1)
	}
	s.next.Store(p.Counter + 1)
	s.received.Add(1)
	s.t.arrive(p.Counter, p.Message, now)
}

// subscriber is one subscriber socket.
type subscriber struct {
	gb       *groupBench
	c        *client.Client
	connects atomic.Int64
	events   atomic.Int64 // partition events (terminated, dropped)
	foreign  atomic.Int64 // pushes of partitions it did not subscribe to
	parts    atomic.Pointer[[]*subscription]
	ended    atomic.Bool // its client's terminal error was reported
	mu       sync.Mutex  // serializes subscribe calls and parts updates
}

func (s *subscriber) onPush(f protocol.Frame) {
	var subs []*subscription
	if p := s.parts.Load(); p != nil {
		subs = *p
	}
	switch f := f.(type) {
	case *protocol.Push:
		now := time.Now()
		for _, sub := range subs {
			if bytes.Equal(sub.t.group.masked, f.Masked) {
				sub.push(f, now)
				return
			}
		}
		s.foreign.Add(1)
	case *protocol.PartitionEvent:
		s.events.Add(1)
		if f.Event == protocol.EventDropped {
			go s.resubscribe()
		}
	}
}

// onConnect resubscribes after a reconnect (a new session has none of the
// old one's subscriptions). It runs before the session serves, so the calls
// go on their own goroutine.
func (s *subscriber) onConnect(client.SessionInfo) {
	if s.connects.Add(1) > 1 {
		go s.resubscribe()
	}
}

func (s *subscriber) resubscribe() {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.parts.Load()
	if p == nil {
		return
	}
	for _, sub := range *p {
		if err := s.subscribe(context.Background(), sub.t, sub.next.Load()); err != nil {
			s.gb.fail("resubscribe", err)
		}
	}
}

// join subscribes to t's partition from counter 0.
func (s *subscriber) join(ctx context.Context, t *partitionTracker) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := &subscription{t: t}
	var subs []*subscription
	if p := s.parts.Load(); p != nil {
		subs = *p
	}
	old := subs
	subs = append(subs[:len(subs):len(subs)], sub)
	s.parts.Store(&subs) // before the call: pushes may beat its answer
	if err := s.subscribe(ctx, t, 0); err != nil {
		s.parts.Store(&old)
		return err
	}
	return nil
}

// subscribe asks for t's partition from counter on.
func (s *subscriber) subscribe(ctx context.Context, t *partitionTracker, counter uint32) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	w := protocol.NewWriter(nil)
	w.Opaque(t.group.g.PartitionKey)
	w.U32(counter)
	resp, err := s.c.Do(ctx, protocol.MethodSubscribe, w.Bytes())
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	r := protocol.NewReader(resp)
	masked := r.Opaque("masked_partition_key")
	if err := r.Done(); err != nil {
		return fmt.Errorf("subscribe answer: %w", err)
	}
	if !bytes.Equal(masked, t.group.masked) {
		return fmt.Errorf("subscribe: masked key %x, want %x", masked, t.group.masked)
	}
	return nil
}

// dialSubscribers connects one subscriber socket per credential.
func (gb *groupBench) dialSubscribers(ctx context.Context, creds []createdClient) []*subscriber {
	out := make([]*subscriber, len(creds))
	forEach(ctx, len(creds), gb.o.DialConcurrency, func(i int) {
		s := &subscriber{gb: gb}
		c, err := gb.dial(ctx, creds[i], func(cfg *client.Config) {
			cfg.OnPush, cfg.OnConnect = s.onPush, s.onConnect
		})
		if err != nil {
			gb.fail("connect subscriber", err)
			return
		}
		s.c = c
		out[i] = s
	})
	var subs []*subscriber
	for _, s := range out {
		if s != nil {
			subs = append(subs, s)
		}
	}
	return subs
}

// fanoutResult is the report of a push phase.
type fanoutResult struct {
	Mode                string         `json:"mode"` // closed_loop or open_loop
	Rate                float64        `json:"messages_per_second_target,omitempty"`
	InFlight            int            `json:"inflight,omitempty"` // closed loop: messages not yet pushed to all (0: unbounded)
	Senders             int            `json:"senders"`
	Subscribers         int            `json:"subscribers"`
	SendSeconds         float64        `json:"send_seconds"`
	Seconds             float64        `json:"seconds"` // until the last complete delivery
	Sequenced           int64          `json:"sequenced"`
	Failed              int64          `json:"failed"`
	RateLimited         int64          `json:"rate_limited"`
	Skipped             int64          `json:"skipped"` // open loop: ticks with every slot busy
	SequencedPerSecond  float64        `json:"sequenced_per_second"`
	LogLength           int64          `json:"log_length"`
	DeliveriesExpected  int64          `json:"deliveries_expected"`
	DeliveriesReceived  int64          `json:"deliveries_received"`
	DeliveriesPerSecond float64        `json:"deliveries_per_second"`
	SubscribersComplete int            `json:"subscribers_complete"`
	Gaps                int64          `json:"gaps"`
	Duplicates          int64          `json:"duplicates"`
	Foreign             int64          `json:"foreign"`
	Reconnects          int64          `json:"reconnects"`
	Latency             latencySummary `json:"latency"`
	SendLatency         latencySummary `json:"send_latency"`
	Memory              *memoryResult  `json:"memory,omitempty"`
}

// verdict reports whether every subscriber got every message in order.
func (r *fanoutResult) verdict(phase string) error {
	switch {
	case r.Sequenced == 0:
		return fmt.Errorf("%s: no message was sequenced", phase)
	case r.SubscribersComplete < r.Subscribers || r.Gaps > 0 || r.DeliveriesReceived != r.DeliveriesExpected:
		return fmt.Errorf("%s: %d of %d subscribers got every message in order (%d of %d deliveries, %d gaps)",
			phase, r.SubscribersComplete, r.Subscribers, r.DeliveriesReceived, r.DeliveriesExpected, r.Gaps)
	}
	return nil
}

// pushCounts are a push phase's send outcomes.
type pushCounts struct {
	next, sent, failed, skipped atomic.Int64
	maxCounter                  atomic.Int64 // highest counter answered, -1 if none
	lat                         histogram
}

func (pc *pushCounts) sentOne(counter uint32, d time.Duration) {
	pc.lat.Record(d)
	pc.sent.Add(1)
	for {
		old := pc.maxCounter.Load()
		if int64(counter) <= old || pc.maxCounter.CompareAndSwap(old, int64(counter)) {
			return
		}
	}
}

// pushPhase creates a group, subscribes every subscriber to it and sends
// for o.Duration: closed loop (with at most o.FanoutInFlight messages not
// yet pushed to every subscriber, if set), or (openLoop) at o.Rate from the
// senders in turn. It then waits for the pushes still on their way and
// checks that every subscriber got every message, in counter order.
func (gb *groupBench) pushPhase(ctx context.Context, senders []*client.Client, subs []*subscriber, openLoop bool) (*fanoutResult, error) {
	o := gb.o
	res := &fanoutResult{Mode: "closed_loop", InFlight: o.FanoutInFlight, Senders: len(senders)}
	capacity := o.MaxMessages
	if openLoop {
		res.Mode, res.Rate, res.InFlight = "open_loop", o.Rate, 0
		capacity = min(capacity, int(math.Ceil(o.Rate*o.Duration.Seconds())))
	}
	g, err := gb.createGroup(ctx, senders[0])
	if err != nil {
		return res, err
	}
	// The tracker is complete before any subscriber sees it (parts is
	// published atomically), and no push comes before the first send.
	t := &partitionTracker{group: g, run: gb.runTag, arrivals: make([]atomic.Int32, capacity)}
	if !openLoop && o.FanoutInFlight > 0 {
		t.slots = make(chan struct{}, o.FanoutInFlight)
	}
	var joined atomic.Int32
	forEach(ctx, len(subs), gb.o.DialConcurrency, func(i int) {
		if err := subs[i].join(ctx, t); err != nil {
			gb.fail("subscribe", err)
			return
		}
		joined.Add(1)
	})
	t.subs.Store(joined.Load())
	res.Subscribers = int(joined.Load())
	if res.Subscribers == 0 {
		return res, errors.New("no subscriber could subscribe")
	}
	gb.log.Info("bench-group: subscribed", "subscribers", res.Subscribers, "open_loop", openLoop)
	reconnects := subscriberReconnects(subs)
	limited := gb.rateLimited.Load()
	pc := &pushCounts{}
	pc.maxCounter.Store(-1)
	mem := gb.watchMemory(ctx)
	start := time.Now()
	if openLoop {
		gb.sendOpenLoop(ctx, senders, g, pc, capacity)
	} else {
		gb.sendClosedLoop(ctx, senders, g, t.slots, pc)
	}
	res.SendSeconds = seconds(time.Since(start))
	gb.drain(ctx, t, pc.maxCounter.Load()+1)
	end := time.Now()
	if done := t.lastDone.Load(); t.complete.Load() >= pc.maxCounter.Load()+1 && done > 0 {
		end = time.Unix(0, done)
	}
	res.Seconds = seconds(end.Sub(start))
	res.Sequenced, res.Failed, res.Skipped = pc.sent.Load(), pc.failed.Load(), pc.skipped.Load()
	res.RateLimited = gb.rateLimited.Load() - limited
	res.SequencedPerSecond = float64(res.Sequenced) / max(res.SendSeconds, 0.001)
	res.Reconnects = subscriberReconnects(subs) - reconnects
	res.Latency, res.SendLatency = t.lat.Summary(), pc.lat.Summary()
	res.Foreign = t.foreign.Load() + t.overflow.Load()
	gb.tally(res, t, subs, pc.maxCounter.Load()+1)
	res.DeliveriesPerSecond = float64(res.DeliveriesReceived) / max(end.Sub(start).Seconds(), 0.001)
	res.Memory = mem.settle(ctx, gb.o.Settle)
	return res, ctx.Err()
}

// tally checks every subscription of t: complete when it received every
// counter of the log, in order.
func (gb *groupBench) tally(res *fanoutResult, t *partitionTracker, subs []*subscriber, logLen int64) {
	var mine []*subscription
	for _, s := range subs {
		if s.c != nil && s.c.Err() != nil && !s.ended.Swap(true) {
			gb.fail("subscriber socket ended", s.c.Err())
		}
		if p := s.parts.Load(); p != nil {
			for _, sub := range *p {
				if sub.t == t {
					mine = append(mine, sub)
				}
			}
		}
	}
	for _, sub := range mine { // a message sequenced without its answer still counts
		logLen = max(logLen, int64(sub.next.Load()))
	}
	res.LogLength = logLen
	res.DeliveriesExpected = logLen * int64(len(mine))
	for _, sub := range mine {
		res.DeliveriesReceived += sub.received.Load()
		res.Gaps += sub.gaps.Load()
		res.Duplicates += sub.dups.Load()
		if int64(sub.next.Load()) == logLen && sub.gaps.Load() == 0 {
			res.SubscribersComplete++
		}
	}
}

func subscriberReconnects(subs []*subscriber) int64 {
	var n int64
	for _, s := range subs {
		n += max(s.connects.Load()-1, 0)
	}
	return n
}

// drain waits until the first logLen messages reached every subscriber, or
// o.DrainTimeout.
func (gb *groupBench) drain(ctx context.Context, t *partitionTracker, logLen int64) {
	deadline := time.Now().Add(gb.o.DrainTimeout)
	for t.complete.Load() < logLen && time.Now().Before(deadline) && ctx.Err() == nil {
		sleepCtx(ctx, 2*time.Millisecond)
	}
}

// sendClosedLoop has every sender send as fast as its answers come: with
// slots, a slot is taken before a send and freed when the message reached
// every subscriber (or its send failed); without, only the answers pace it.
func (gb *groupBench) sendClosedLoop(ctx context.Context, senders []*client.Client, g *benchGroup, slots chan struct{}, pc *pushCounts) {
	o := gb.o
	deadline := time.Now().Add(o.Duration)
	ctx2, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	done := ctx2.Done() // stops taking slots; sends use ctx
	acquire := func() bool {
		if slots == nil {
			return ctx2.Err() == nil
		}
		select {
		case slots <- struct{}{}:
			return true
		case <-done:
			return false
		}
	}
	release := func() { // never blocks: a completion may have freed it already
		select {
		case <-slots:
		default:
		}
	}
	var wg sync.WaitGroup
	for si, c := range senders {
		mk := gb.newMaker(uint32(si))
		for range min(o.InFlight, groupBenchServerInFlight) {
			wg.Go(func() {
				for acquire() {
					seq := pc.next.Add(1)
					if seq > int64(o.MaxMessages) || time.Now().After(deadline) {
						release()
						return
					}
					t0 := time.Now()
					counter, err := mk.send(ctx, c, g, uint64(seq))
					if err == nil {
						pc.sentOne(counter, time.Since(t0))
						continue
					}
					release() // this message will never complete
					if ctx.Err() != nil {
						return
					}
					if errorCode(err) != protocol.CodeRateLimited {
						pc.failed.Add(1)
					}
					if gb.sendFailed(ctx, err) {
						return
					}
				}
			})
		}
	}
	wg.Wait()
}

// sendOpenLoop sends at o.Rate for o.Duration on a fixed schedule (message
// k is due at k/rate; late ones go at once, so a stall does not lower the
// rate), the senders in turn, each with at most the server's in-flight limit
// at a time (a message whose sender has none free is skipped), up to limit
// messages.
func (gb *groupBench) sendOpenLoop(ctx context.Context, senders []*client.Client, g *benchGroup, pc *pushCounts, limit int) {
	o := gb.o
	makers := make([]*msgMaker, len(senders))
	slots := make([]chan struct{}, len(senders))
	for i := range senders {
		makers[i], slots[i] = gb.newMaker(uint32(i)), make(chan struct{}, groupBenchServerInFlight)
	}
	interval := max(time.Duration(float64(time.Second)/o.Rate), time.Microsecond)
	start := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for k := 0; k < limit; k++ {
		due := start.Add(time.Duration(k) * interval)
		if due.Sub(start) >= o.Duration {
			return
		}
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
		seq := pc.next.Add(1)
		i := int(seq) % len(senders)
		select {
		case slots[i] <- struct{}{}:
		default:
			pc.skipped.Add(1)
			continue
		}
		wg.Go(func() {
			defer func() { <-slots[i] }()
			t0 := time.Now()
			counter, err := makers[i].send(ctx, senders[i], g, uint64(seq))
			if err == nil {
				pc.sentOne(counter, time.Since(t0))
				return
			}
			if ctx.Err() == nil {
				if errorCode(err) != protocol.CodeRateLimited {
					pc.failed.Add(1)
				}
				gb.sendFailed(ctx, err)
			}
		})
	}
}

func (r *fanoutResult) print(w io.Writer) {
	if r.Mode == "open_loop" {
		fmt.Fprintf(w, "latency at %.0f messages/s to %d subscribers (open loop, %d senders in turn, %.1fs):\n",
			r.Rate, r.Subscribers, r.Senders, r.SendSeconds)
	} else {
		bound := fmt.Sprintf("at most %d messages not yet pushed to all", r.InFlight)
		if r.InFlight == 0 {
			bound = "paced by the send answers only"
		}
		fmt.Fprintf(w, "fanout to %d subscribers (%d senders, closed loop, %s, %.1fs):\n", r.Subscribers, r.Senders, bound, r.SendSeconds)
	}
	fmt.Fprintf(w, "  %d sequenced (%.0f/s), %d failed, %d rate-limited, %d skipped\n",
		r.Sequenced, r.SequencedPerSecond, r.Failed, r.RateLimited, r.Skipped)
	fmt.Fprintf(w, "  deliveries: %d expected, %d received in %.2fs: %.0f deliveries/s\n",
		r.DeliveriesExpected, r.DeliveriesReceived, r.Seconds, r.DeliveriesPerSecond)
	fmt.Fprintf(w, "  %d/%d subscribers got all %d messages in counter order; gaps %d, duplicates %d, foreign %d, reconnects %d\n",
		r.SubscribersComplete, r.Subscribers, r.LogLength, r.Gaps, r.Duplicates, r.Foreign, r.Reconnects)
	fmt.Fprintf(w, "  latency (send -> push received, every delivery): %s\n", r.Latency)
	fmt.Fprintf(w, "  send latency (request -> counter, after the commit): %s\n", r.SendLatency)
	if m := r.Memory; m != nil {
		const mib = 1 << 20
		fmt.Fprintf(w, "  server RSS (no GC forced): %.1f MiB subscribed, %.1f MiB peak while pushing, %.1f MiB %.0fs after the last push (%+.0f%%)\n",
			float64(m.ConnectedRSS)/mib, float64(m.PeakRSS)/mib, float64(m.AfterRSS)/mib, m.SettleSeconds,
			100*float64(m.AfterRSS-m.ConnectedRSS)/float64(max(m.ConnectedRSS, 1)))
	}
}

// memoryResult is the server's resident memory around a push phase, read from its
// /metrics without forcing a GC: what an operator would see.
type memoryResult struct {
	ConnectedRSS  int64   `json:"rss_subscribed_bytes"` // before the first send
	PeakRSS       int64   `json:"rss_peak_bytes"`       // highest reading until the last push
	AfterRSS      int64   `json:"rss_after_bytes"`      // SettleSeconds after the last push
	SettleSeconds float64 `json:"settle_seconds"`
}

// memoryWatch reads the server's RSS every memorySampleEvery while a phase runs.
type memoryWatch struct {
	gb   *groupBench
	stop context.CancelFunc
	done chan struct{}
	res  memoryResult // written by the watcher until done is closed
}

const memorySampleEvery = 200 * time.Millisecond

// watchMemory starts reading the server's RSS; nil if -settle is 0 or /metrics
// cannot be read.
func (gb *groupBench) watchMemory(ctx context.Context) *memoryWatch {
	if gb.o.Settle == 0 {
		return nil
	}
	first, err := gb.api.sample(ctx)
	if err != nil {
		gb.log.Warn("bench-group: server RSS not read", "err", err)
		return nil
	}
	wctx, stop := context.WithCancel(ctx)
	m := &memoryWatch{gb: gb, stop: stop, done: make(chan struct{})}
	m.res.ConnectedRSS, m.res.PeakRSS = first.RSS, first.RSS
	go func() {
		defer close(m.done)
		t := time.NewTicker(memorySampleEvery)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			if s, err := gb.api.sample(wctx); err == nil {
				m.res.PeakRSS = max(m.res.PeakRSS, s.RSS)
			}
		}
	}()
	return m
}

// settle stops the watch, waits d and reads the RSS once more.
func (m *memoryWatch) settle(ctx context.Context, d time.Duration) *memoryResult {
	if m == nil {
		return nil
	}
	m.stop()
	<-m.done
	select {
	case <-ctx.Done():
		return nil
	case <-time.After(d):
	}
	s, err := m.gb.api.sample(ctx)
	if err != nil {
		return nil
	}
	res := m.res
	res.AfterRSS, res.SettleSeconds = s.RSS, d.Seconds()
	return &res
}
