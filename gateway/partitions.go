package gateway

import (
	"context"
	"maps"
	"runtime"
	"runtime/trace"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimids/mimids/protocol"
)

// PartitionEntry is one message sequenced to a partition, as pushed to subscribers.
type PartitionEntry = protocol.PartitionEntry

// PartitionSink receives a partition's entries in counter order, right after they
// are committed. Notify and Refetch must not block.
type PartitionSink = protocol.PartitionSink

// Partitions is what the gateway needs from the hub to push group traffic.
type Partitions interface {
	// Subscribe registers a sink for a partition (by masked key).
	Subscribe(masked []byte, s PartitionSink) (cancel func())
	// Fetch returns up to limit entries with counter > after (-1: from the start);
	// when it returns fewer than limit and the partition is terminated, the last
	// entry is the terminated event.
	Fetch(ctx context.Context, masked []byte, after int64, limit int) ([]PartitionEntry, error)
	// Masked checks that partitionKey opens a partition of a hosted group and
	// returns its masked key.
	Masked(ctx context.Context, partitionKey []byte) ([]byte, error)
}

// HintedPartitions is a Partitions that can also find a partition at a hub the
// client names (subscribe_at, docs/protocol.md §5.12).
type HintedPartitions interface {
	// MaskedAt is Masked, asking hub for a partition not hosted here and not
	// followed at a known hub.
	MaskedAt(ctx context.Context, hub string, partitionKey []byte) ([]byte, error)
}

// topic is the gateway's single hub subscription for one partition, fanned out to
// every subscribed session: the push frame is encoded once per message. The hub
// offers entries on its store's writer goroutine; the topic only queues them there
// and fans out on its own goroutine, so a partition with many subscribers does not
// hold up the next commit.
type topic struct {
	// Static after construction.
	masked []byte
	fanout *fanout

	mu       sync.Mutex
	sessions map[*session]*partSub // Guarded by mu.
	pending  []topicItem           // offered, not yet fanned out; Guarded by mu.
	running  bool                  // a fan-out goroutine runs; Guarded by mu.
	recent   recentFrames          // the newest push frames; Guarded by mu.
	cancel   func()                // Guarded by fanout.mu.

	// Owned by the fan-out goroutine (one runs at a time, handed on under mu).
	ahead     map[uint32]PartitionEntry // offered past the run's end, held for the entries before them
	fillTimer bool                      // a fill item is due after reorderWait
}

// recentFrames is a contiguous run of a partition's newest push frames (counters
// first, first+1, ...), encoded once: a subscriber that fell behind (its queue was
// full, or NATS dropped an entry) catches up from it, so that a thousand sockets
// behind by the same entries cost one store read, not a thousand. Bounded by
// maxRecentFrames and maxRecentBytes.
type recentFrames struct {
	first  uint32
	frames [][]byte
	bytes  int
	event  []byte // the terminated event, standing after the last frame; nil while open
}

// maxRecentFrames is four times a socket's default queue (send_queue_messages,
// 1,024): a socket that fell behind by a full queue still finds, once its queue
// drains, the frames it missed meanwhile in the run, instead of reading the store
// page by page (which costs an overloaded node the CPU it is short of, and made
// nodes at 0.2 of a core collapse under the cluster benchmark).
const (
	maxRecentFrames = 4096
	maxRecentBytes  = 4 << 20
)

// end is the counter after the run's last frame.
func (r *recentFrames) end() uint32 { return r.first + uint32(len(r.frames)) }

// add puts the frames of counters from, from+1, ... into the run: appended when
// they go on from its end (or overlap it), else they replace it if they are newer.
func (r *recentFrames) add(from uint32, frames [][]byte) {
	if r.event != nil {
		return // terminated: nothing comes after the event
	}
	end := r.end()
	switch {
	case len(r.frames) > 0 && from <= end && from >= r.first:
		frames = frames[min(int(end-from), len(frames)):]
	case len(r.frames) == 0 || from > end:
		r.first, r.frames, r.bytes = from, r.frames[:0], 0
	default: // older than the run: keep the run
		return
	}
	for _, f := range frames {
		r.frames = append(r.frames, f)
		r.bytes += len(f)
	}
	drop := 0
	for len(r.frames)-drop > maxRecentFrames || (r.bytes > maxRecentBytes && len(r.frames)-drop > 1) {
		r.bytes -= len(r.frames[drop])
		drop++
	}
	if drop > 0 {
		r.frames = append(r.frames[:0], r.frames[drop:]...)
		r.first += uint32(drop)
	}
}

// join adds frames read from the store (counters from, from+1, ...) only where
// they join the run: into an empty run, going on from inside it, or just before
// it (within the bounds). Unlike add it never starts a new run over an old one, so
// the run's end stays the newest frame offered: whatever comes after it is still to
// be offered, or comes through a Refetch.
func (r *recentFrames) join(from uint32, frames [][]byte) {
	if r.event != nil && len(r.frames) == 0 {
		return
	}
	end := r.end()
	switch {
	case len(r.frames) == 0 && r.event == nil:
		r.add(from, frames)
	case from >= r.first && from <= end:
		if r.event == nil {
			r.add(from, frames)
		}
	case from < r.first && from+uint32(len(frames)) >= r.first:
		head := frames[:r.first-from]
		bytes := r.bytes
		for _, f := range head {
			bytes += len(f)
		}
		if len(head)+len(r.frames) > maxRecentFrames || bytes > maxRecentBytes {
			return
		}
		r.frames = append(slices.Clone(head), r.frames...)
		r.first, r.bytes = from, bytes
	}
}

// terminate records the terminated event after counter length-1; it is kept
// only where it goes on from the run.
func (r *recentFrames) terminate(length uint32, frame []byte) {
	if r.end() == length || len(r.frames) == 0 {
		if len(r.frames) == 0 {
			r.first = length
		}
		r.event = frame
	}
}

// from returns up to limit frames from counter next on, if the run holds next
// (the terminated event last, when the run holds it and limit allows).
func (r *recentFrames) from(next uint32, limit int) [][]byte {
	end := r.end()
	if next < r.first || next > end || (next == end && r.event == nil) {
		return nil
	}
	fs := r.frames[next-r.first:]
	fs = fs[:min(limit, len(fs))]
	if len(fs) < limit && next+uint32(len(fs)) == end && r.event != nil {
		fs = append(slices.Clip(fs), r.event)
	}
	return fs
}

// refill replaces each refetch item (entries may exist that were never offered)
// with what the store holds after the topic's run, read once for every subscriber.
// Where the topic has no run, or the read fails or finds more than a few pages,
// the item stays: each subscriber then reads the store itself.
func (t *topic) refill(items []topicItem) []topicItem {
	if !slices.ContainsFunc(items, func(it topicItem) bool { return it.refetch }) {
		return items
	}
	out := make([]topicItem, 0, len(items))
	for _, it := range items {
		if !it.refetch {
			out = append(out, it)
			continue
		}
		es, ok := t.readAfterRun()
		if !ok {
			out = append(out, it)
			continue
		}
		for _, e := range es {
			out = append(out, topicItem{e: e})
		}
	}
	return out
}

// readAfterRun reads the partition's entries after the end of the topic's run.
func (t *topic) readAfterRun() ([]PartitionEntry, bool) {
	t.mu.Lock()
	end, open, held := t.recent.end(), t.recent.event == nil, len(t.recent.frames) > 0 || t.recent.event != nil
	t.mu.Unlock()
	if !held {
		return nil, false
	}
	if !open {
		return nil, true // terminated: nothing comes after the event
	}
	return t.readFrom(end)
}

// readFrom reads the partition's entries from counter end on (at most a few
// pages; false when there are more, or the read fails).
func (t *topic) readFrom(end uint32) ([]PartitionEntry, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []PartitionEntry
	for range 4 {
		count(t.fanout.topicReads)
		es, err := t.fanout.src.Fetch(ctx, t.masked, int64(end)-1, maxRecentFrames)
		if err != nil {
			return nil, false
		}
		out = append(out, es...)
		if len(es) < maxRecentFrames {
			return out, true
		}
		end = es[len(es)-1].Counter + 1
	}
	return nil, false
}

// rememberFetched adds entries read from the store (and their frames) to the
// topic's run where they join it (recentFrames.join).
func (t *topic) rememberFetched(entries []PartitionEntry, frames [][]byte) {
	n := 0
	for n < len(entries) && !entries[n].Terminated && frames[n] != nil && (n == 0 || entries[n].Counter == entries[n-1].Counter+1) {
		n++
	}
	if n == 0 {
		return
	}
	t.mu.Lock()
	t.recent.join(entries[0].Counter, frames[:n])
	t.mu.Unlock()
}

// remember adds an entry's frame to the topic's run.
func (t *topic) remember(e PartitionEntry, frame []byte) {
	t.mu.Lock()
	if e.Terminated {
		t.recent.terminate(e.Counter, frame)
	} else {
		t.recent.add(e.Counter, [][]byte{frame})
	}
	t.mu.Unlock()
}

// recentFrom returns the topic's frames from counter next on (at most limit), or
// nil if it does not hold next.
func (t *topic) recentFrom(next uint32, limit int) [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.recent.from(next, limit))
}

type topicItem struct {
	e       PartitionEntry
	refetch bool // entries may exist that were never offered
	fill    bool // the reorder wait is over: read the store for what is missing
}

// reorderWait is how long a topic holds an entry offered past its run's end for
// the entries before it. On several nodes (natsbus) each node publishes its own
// commits, so entries of one partition sequenced on different nodes may arrive in
// another order than their counters. Without the wait, every subscribed socket
// would see the gap and read the store itself; with it, the missing entry usually
// arrives, and when it does not, the topic reads the store once for all of them
// (the missing entries are committed: a later counter is).
const reorderWait = 3 * time.Millisecond

// maxAhead bounds the entries a topic holds past a gap: past it, the topic reads
// the store at once.
const maxAhead = 256

// order puts a batch of offered items in counter order after the topic's run:
// entries past the run's end wait in t.ahead until the ones before them come, or
// until a fill item (reorderWait later) makes the topic read the missing ones from
// the store; whatever the read does not settle is passed on in counter order, and
// the subscribers catch up as before. Items at or before the run's end, refetch
// items and everything of a topic with no run pass unchanged.
func (t *topic) order(items []topicItem) []topicItem {
	t.mu.Lock()
	end, held, open := t.recent.end(), len(t.recent.frames) > 0, t.recent.event == nil
	t.mu.Unlock()
	fill := false
	out := make([]topicItem, 0, len(items))
	for _, it := range items {
		switch {
		case it.fill:
			fill, t.fillTimer = true, false
		case it.refetch || !held || !open || it.e.Counter < end:
			out = append(out, it)
		case it.e.Counter == end:
			out = append(out, it)
			if !it.e.Terminated {
				end++
			}
			end = t.drainAhead(end, &out)
		default:
			if t.ahead == nil {
				t.ahead = make(map[uint32]PartitionEntry)
			}
			t.ahead[it.e.Counter] = it.e
		}
	}
	if len(t.ahead) == 0 {
		return out
	}
	if !fill && len(t.ahead) < maxAhead {
		if !t.fillTimer {
			t.fillTimer = true
			time.AfterFunc(reorderWait, func() { t.offer(topicItem{fill: true}) })
		}
		return out
	}
	// Read what is missing once, for every subscriber; then pass on what is held,
	// merged with what was read, in counter order. A held entry the run holds by now
	// (a socket's own read joined it) is passed too: sockets that did not read it
	// still wait for it, and the others skip it.
	es, ok := t.readFrom(end)
	if ok {
		// The read began after every refetch item of the batch and holds all
		// after the run: refill need not read the store again for them.
		out = slices.DeleteFunc(out, func(it topicItem) bool { return it.refetch })
	} else {
		out = append(out, topicItem{refetch: true})
	}
	for _, e := range es {
		t.ahead[e.Counter] = e
	}
	for _, c := range slices.Sorted(maps.Keys(t.ahead)) {
		out = append(out, topicItem{e: t.ahead[c]})
	}
	clear(t.ahead)
	return out
}

// drainAhead moves the held entries that go on from end to out, and returns the
// new end.
func (t *topic) drainAhead(end uint32, out *[]topicItem) uint32 {
	for len(t.ahead) > 0 {
		e, ok := t.ahead[end]
		if !ok {
			break
		}
		delete(t.ahead, end)
		*out = append(*out, topicItem{e: e})
		if e.Terminated {
			break
		}
		end++
	}
	return end
}

// maxTopicBacklog bounds the entries a topic holds for its fan-out goroutine; past
// it, they are dropped and every subscriber catches up from the log instead.
const maxTopicBacklog = 4096

func (t *topic) Notify(e PartitionEntry) { t.offer(topicItem{e: e}) }
func (t *topic) Refetch()                { t.offer(topicItem{refetch: true}) }

func (t *topic) offer(it topicItem) {
	t.mu.Lock()
	if len(t.pending) >= maxTopicBacklog {
		t.pending = append(t.pending[:0], topicItem{refetch: true})
	}
	t.pending = append(t.pending, it)
	start := !t.running
	t.running = true
	t.mu.Unlock()
	if start {
		go t.deliver()
	}
}

type sessionSub struct {
	ss  *session
	sub *partSub
}

// deliver fans out what is pending until nothing is, then exits.
func (t *topic) deliver() {
	var subs []sessionSub
	var frames [][]byte
	for {
		t.mu.Lock()
		items := t.pending
		t.pending = nil
		if len(items) == 0 {
			t.running = false
			t.mu.Unlock()
			return
		}
		subs = subs[:0]
		for ss, sub := range t.sessions {
			subs = append(subs, sessionSub{ss, sub})
		}
		t.mu.Unlock()
		items = t.refill(t.order(items))
		if len(items) == 0 {
			continue // held for the entries before them (topic.order)
		}
		frames = frames[:0]
		for _, it := range items {
			var f []byte
			if !it.refetch {
				f = encodePartitionEntry(t.masked, it.e) // once for every subscriber
				if f != nil {
					t.remember(it.e, f)
				}
			}
			frames = append(frames, f)
		}
		traced := trace.IsEnabled()
		if traced {
			for _, it := range items {
				traceLog("fanout", it.e.Counter)
			}
		}
		t.fanout.release.busy()
		fanOut(subs, items, frames)
		if traced {
			for _, it := range items {
				traceLog("fanout-queued", it.e.Counter)
			}
		}
	}
}

// fanShard is about the fewest subscribers worth a goroutine of their own in fanOut.
const fanShard = 128

// fanOut queues items to every subscriber, then writes each subscriber's socket
// once (conn.Conn.Flush): pushes that are due at once leave as one WebSocket
// message, and no writer goroutine is started per push. The subscribers are split
// among up to GOMAXPROCS goroutines, each writing its share in turn; fanOut returns
// once all are done, so every subscriber gets the entries in order.
func fanOut(subs []sessionSub, items []topicItem, frames [][]byte) {
	shards := min(runtime.GOMAXPROCS(0), (len(subs)+fanShard-1)/fanShard)
	if shards <= 1 {
		fanOutTo(subs, items, frames)
		return
	}
	var wg sync.WaitGroup
	per := (len(subs) + shards - 1) / shards
	for i := per; i < len(subs); i += per {
		part := subs[i:min(i+per, len(subs))]
		wg.Go(func() { fanOutTo(part, items, frames) })
	}
	fanOutTo(subs[:per], items, frames)
	wg.Wait()
}

func fanOutTo(subs []sessionSub, items []topicItem, frames [][]byte) {
	for _, s := range subs {
		for i, it := range items {
			if it.refetch {
				s.ss.refetchPartition(s.sub)
			} else if frames[i] != nil {
				s.ss.notifyPartition(s.sub, it.e.Counter, frames[i])
			}
		}
		s.ss.c.Flush() // written here unless a writer runs
	}
}

// traceLog records a step of a partition entry's way under runtime/trace
// (docs/performance.md, "Latency budget").
func traceLog(step string, counter uint32) {
	trace.Log(context.Background(), "mimids", step+" "+strconv.FormatUint(uint64(counter), 10))
}

// tracePushes records the push frames among frames.
func tracePushes(step string, frames [][]byte) {
	for _, b := range frames {
		if protocol.FrameType(b[0]) != protocol.TypePush {
			continue
		}
		if f, _, err := protocol.Next(b); err == nil {
			traceLog(step, f.(*protocol.Push).Counter)
		}
	}
}

func encodePartitionEntry(masked []byte, e PartitionEntry) []byte {
	if e.Terminated {
		return protocol.Encode(&protocol.PartitionEvent{Masked: masked, Event: protocol.EventTerminated})
	}
	// Encoded here, on the fan-out goroutine (once for every subscriber), never on
	// the store's writer.
	m, err := e.Message.MarshalBinary()
	if err != nil {
		return nil
	}
	return protocol.Encode(&protocol.Push{Masked: masked, Counter: e.Counter, Message: m})
}

// fanout holds the topics of a gateway.
type fanout struct {
	src     Partitions
	release releaser
	pages   *pageCache
	// Catch-up counters (mimids_partition_catchups_total); nil in unit tests.
	socketReads, topicReads, recentHits, pageReads, pageHits prometheus.Counter

	mu     sync.Mutex
	topics map[string]*topic // Guarded by mu.
}

func count(c prometheus.Counter) {
	if c != nil {
		c.Inc()
	}
}

func newFanout(src Partitions) *fanout {
	return &fanout{src: src, pages: newPageCache(pageCacheBytes), topics: make(map[string]*topic)}
}

// join adds a session's subscription to the partition's topic.
func (f *fanout) join(ss *session, sub *partSub) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.topics[string(sub.masked)]
	if t == nil {
		t = &topic{masked: sub.masked, fanout: f, sessions: make(map[*session]*partSub)}
		t.cancel = f.src.Subscribe(sub.masked, t)
		f.topics[string(sub.masked)] = t
	}
	t.mu.Lock()
	t.sessions[ss] = sub
	t.mu.Unlock()
}

// topicOf is the partition's topic, or nil.
func (f *fanout) topicOf(masked []byte) *topic {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.topics[string(masked)]
}

// leave removes a session from a topic, dropping the hub subscription with the last.
func (f *fanout) leave(ss *session, masked []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.topics[string(masked)]
	if t == nil {
		return
	}
	t.mu.Lock()
	delete(t.sessions, ss)
	empty := len(t.sessions) == 0
	t.mu.Unlock()
	if empty {
		t.cancel()
		delete(f.topics, string(masked))
	}
}

// partSub is one session's subscription to one partition. Guarded by the session's mu.
type partSub struct {
	masked   []byte
	next     uint32 // the next counter to queue
	refetch  bool   // entries from next on may be in the store only
	mustRead bool   // entries may exist that were never offered: read the store, not the topic's run
	done     bool   // terminated: nothing more will come
}

// notifyPartition queues a live entry (or the terminated event, which stands at the
// position after the last message) if it is the next one for the subscription;
// otherwise the subscription catches up from the store. The caller then writes the
// socket (conn.Conn.Flush).
func (ss *session) notifyPartition(sub *partSub, counter uint32, frame []byte) {
	event := protocol.FrameType(frame[0]) == protocol.TypePartitionEvent
	ss.mu.Lock()
	switch {
	case sub.done:
	case !event && counter < sub.next:
		// Already queued by catch-up.
	case sub.refetch || counter != sub.next || !ss.c.TryEnqueue(frame):
		sub.refetch, ss.partRefetch = true, true
	case event:
		sub.done = true
	default:
		sub.next = counter + 1
	}
	ss.mu.Unlock()
}

func (ss *session) refetchPartition(sub *partSub) {
	ss.mu.Lock()
	if !sub.done {
		sub.refetch, sub.mustRead, ss.partRefetch = true, true, true
	}
	ss.mu.Unlock()
	ss.c.Wake()
}

// catchUpPartitions reads one page for every subscription marked for catch-up.
func (ss *session) catchUpPartitions(ctx context.Context) error {
	type want struct {
		sub      *partSub
		next     uint32
		mustRead bool
	}
	ss.mu.Lock()
	ss.partRefetch = false
	var wants []want
	for _, sub := range ss.subs {
		if sub.refetch && !sub.done {
			wants = append(wants, want{sub, sub.next, sub.mustRead})
			sub.refetch, sub.mustRead = false, false
		}
	}
	ss.mu.Unlock()
	limit := ss.srv.cfg.ReplayBatch
	f := ss.srv.fanout
	for _, w := range wants {
		if !w.mustRead && ss.catchUpFromTopic(w.sub, w.next, limit) {
			continue
		}
		r, err := f.pages.read(ctx, f.src, w.sub.masked, w.next, w.mustRead)
		switch {
		case r.shared:
			count(f.pageHits)
		case r.kept:
			count(f.pageReads)
		default: // read for this socket alone: the head of the partition, or a read it could not share
			count(f.socketReads)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			ss.log.Error("partition fetch", "err", err)
			ss.fail(protocol.CloseGoingAway, protocol.CodeInternal, "group log unavailable")
			return err
		}
		if t := f.topicOf(w.sub.masked); t != nil && r.entries != nil {
			t.rememberFetched(r.entries, r.frames) // the next socket behind here reads it from the topic
		}
		ss.mu.Lock()
		// A gap cannot come from one ordered read: the queue stops there.
		if ss.queueRun(w.sub, r.counter, r.frames) == runFull || r.whole {
			w.sub.refetch, ss.partRefetch = true, true // more may follow
		}
		ss.mu.Unlock()
	}
	return nil
}

// runEnd is where queueRun stopped.
type runEnd int

const (
	runDone runEnd = iota // every frame queued or already held
	runGap                // a frame's counter is not the subscription's next
	runFull               // the socket's queue is full (or a frame is missing)
)

// queueRun queues a run of push frames (the frame of counter(i) at i; a terminated
// event stands after the last message) to a subscription from its next counter on,
// skipping what it holds. The caller holds ss.mu.
func (ss *session) queueRun(sub *partSub, counter func(i int) uint32, frames [][]byte) runEnd {
	for i, f := range frames {
		event := f != nil && protocol.FrameType(f[0]) == protocol.TypePartitionEvent
		c := counter(i)
		if sub.done || (!event && c < sub.next) {
			continue
		}
		if c != sub.next {
			return runGap
		}
		if f == nil || !ss.c.TryEnqueue(f) {
			return runFull
		}
		if event {
			sub.done = true
			return runDone
		}
		sub.next++
	}
	return runDone
}

// catchUpFromTopic queues a subscription's frames from next on out of its topic's
// run of recent frames (recentFrames), without reading the store; it reports false
// if the run does not hold next. What the run holds is everything offered up to
// now, so a subscription served to the run's end needs no read: the entries after
// it are still to be offered, and reach it live. Entries that were never offered
// (written elsewhere, or offers dropped) come through the topic's Refetch, which
// reads the store once for every subscriber (topic.refill).
func (ss *session) catchUpFromTopic(sub *partSub, next uint32, limit int) bool {
	t := ss.srv.fanout.topicOf(sub.masked)
	if t == nil {
		return false
	}
	frames := t.recentFrom(next, limit)
	if frames == nil {
		return false
	}
	count(ss.srv.fanout.recentHits)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.queueRun(sub, func(i int) uint32 { return next + uint32(i) }, frames) != runDone {
		sub.refetch, ss.partRefetch = true, true // full, or moved meanwhile: read again
		return true
	}
	if len(frames) == limit {
		sub.refetch, ss.partRefetch = true, true // the run may hold more
	}
	return true
}

// subscribe starts pushing a partition from counter on; the answer is the masked key.
func (ss *session) subscribe(ctx context.Context, body []byte) ([]byte, error) {
	pk, counter, err := decodeSubscribe(body)
	if err != nil {
		return nil, err
	}
	masked, err := ss.srv.deps.Partitions.Masked(ctx, pk)
	if err != nil {
		return nil, err
	}
	return ss.subscribed(masked, counter)
}

// subscribeAt is subscribe naming the partition's hub (a HubHinted body).
func (ss *session) subscribeAt(ctx context.Context, body []byte) ([]byte, error) {
	hinted, ok := ss.srv.deps.Partitions.(HintedPartitions)
	if !ok {
		return nil, &protocol.Error{Code: protocol.CodeUnknownMethod, Message: protocol.MethodSubscribeAt.String()}
	}
	var h protocol.HubHinted
	if err := h.UnmarshalBinary(body); err != nil {
		return nil, &protocol.Error{Code: protocol.CodeMalformed, Message: "subscribe_at: " + err.Error()}
	}
	pk, counter, err := decodeSubscribe(h.Body)
	if err != nil {
		return nil, err
	}
	masked, err := hinted.MaskedAt(ctx, h.Hub, pk)
	if err != nil {
		return nil, err
	}
	return ss.subscribed(masked, counter)
}

func decodeSubscribe(body []byte) (pk []byte, counter uint32, err error) {
	r := protocol.NewReader(body)
	pk = r.Opaque("subscribe.partition_key")
	counter = r.U32("subscribe.counter")
	if err := r.Done(); err != nil {
		return nil, 0, &protocol.Error{Code: protocol.CodeMalformed, Message: "subscribe: " + err.Error()}
	}
	return pk, counter, nil
}

// subscribed registers (or moves) this socket's subscription to masked.
func (ss *session) subscribed(masked []byte, counter uint32) ([]byte, error) {
	ss.mu.Lock()
	if old := ss.subs[string(masked)]; old != nil {
		// Re-subscribing moves the position.
		old.next, old.refetch, old.done = counter, true, false
		ss.partRefetch = true
		ss.mu.Unlock()
		ss.c.Wake()
		return encodeMasked(masked), nil
	}
	if len(ss.subs) >= ss.srv.cfg.MaxSubscriptions {
		ss.mu.Unlock()
		return nil, &protocol.Error{Code: protocol.CodeTooLarge, Message: "too many subscriptions on this socket"}
	}
	if ss.subs == nil {
		ss.subs = make(map[string]*partSub)
	}
	sub := &partSub{masked: masked, next: counter, refetch: true}
	ss.subs[string(masked)] = sub
	ss.partRefetch = true
	ss.mu.Unlock()
	ss.srv.fanout.join(ss, sub)
	ss.c.Wake()
	return encodeMasked(masked), nil
}

func encodeMasked(masked []byte) []byte {
	w := protocol.NewWriter(nil)
	w.Opaque(masked)
	return w.Bytes()
}

// unsubscribe stops pushing a partition.
func (ss *session) unsubscribe(_ context.Context, body []byte) ([]byte, error) {
	r := protocol.NewReader(body)
	masked := r.Opaque("unsubscribe.masked_partition_key")
	if err := r.Done(); err != nil {
		return nil, &protocol.Error{Code: protocol.CodeMalformed, Message: "unsubscribe: " + err.Error()}
	}
	ss.mu.Lock()
	sub, ok := ss.subs[string(masked)]
	if ok {
		sub.done = true // the fan-out may still hold it
	}
	delete(ss.subs, string(masked))
	ss.mu.Unlock()
	if !ok {
		return nil, &protocol.Error{Code: protocol.CodeNotFound, Message: "not subscribed"}
	}
	ss.srv.fanout.leave(ss, masked)
	return nil, nil
}

// leaveAll drops every subscription of an ending session.
func (ss *session) leaveAll() {
	ss.mu.Lock()
	subs := ss.subs
	ss.subs = nil
	ss.mu.Unlock()
	for m := range subs {
		ss.srv.fanout.leave(ss, []byte(m))
	}
}
