package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func frameOf(c uint32) []byte { return []byte(fmt.Sprintf("f%d", c)) }

func framesFrom(from, n uint32) [][]byte {
	var fs [][]byte
	for c := from; c < from+n; c++ {
		fs = append(fs, frameOf(c))
	}
	return fs
}

// checkRun fails unless r holds exactly the frames of counters first..end-1.
func checkRun(t *testing.T, r *recentFrames, first, end uint32) {
	t.Helper()
	if r.first != first || r.first+uint32(len(r.frames)) != end {
		t.Fatalf("run %d..%d, want %d..%d", r.first, r.first+uint32(len(r.frames)), first, end)
	}
	for i, f := range r.frames {
		if string(f) != string(frameOf(first+uint32(i))) {
			t.Fatalf("frame %d is %q", first+uint32(i), f)
		}
	}
}

// The run of recent frames stays one contiguous run of the newest frames: it goes
// on from its end (overlaps skipped), restarts after a gap, ignores older frames,
// keeps at most maxRecentFrames, and serves from a counter it holds only.
func TestRecentFrames(t *testing.T) {
	var r recentFrames
	if r.from(0, 10) != nil {
		t.Fatal("an empty run served frames")
	}
	r.add(5, framesFrom(5, 3))
	checkRun(t, &r, 5, 8)
	r.add(6, framesFrom(6, 4)) // overlaps: 8 and 9 are new
	checkRun(t, &r, 5, 10)
	r.add(2, framesFrom(2, 2)) // older: kept out
	checkRun(t, &r, 5, 10)
	if fs := r.from(7, 2); len(fs) != 2 || string(fs[0]) != "f7" || string(fs[1]) != "f8" {
		t.Fatalf("from 7: %q", fs)
	}
	for _, c := range []uint32{4, 10, 11} {
		if fs := r.from(c, 10); fs != nil {
			t.Fatalf("from %d (not held): %q", c, fs)
		}
	}
	r.add(12, framesFrom(12, 1)) // a gap (10, 11 never offered): a new run
	checkRun(t, &r, 12, 13)
	r.add(13, framesFrom(13, maxRecentFrames+5))
	checkRun(t, &r, 18, 13+maxRecentFrames+5)
	r.terminate(13+maxRecentFrames+5, []byte("end"))
	end := uint32(13 + maxRecentFrames + 5)
	if fs := r.from(end-1, 10); len(fs) != 2 || string(fs[1]) != "end" {
		t.Fatalf("from the last frame: %q, want it and the terminated event", fs)
	}
	if fs := r.from(end, 10); len(fs) != 1 || string(fs[0]) != "end" {
		t.Fatalf("from the end: %q, want the terminated event", fs)
	}
	if fs := r.from(end-1, 1); len(fs) != 1 || string(fs[0]) != string(frameOf(end-1)) {
		t.Fatalf("limit 1: %q", fs)
	}
	r.add(end, framesFrom(end, 1)) // nothing comes after the event
	checkRun(t, &r, 18, end)

	var big recentFrames // the byte bound keeps at least the newest frame
	big.add(0, [][]byte{make([]byte, maxRecentBytes), make([]byte, maxRecentBytes)})
	if big.first != 1 || len(big.frames) != 1 {
		t.Fatalf("byte bound: run %d+%d", big.first, len(big.frames))
	}
	var ev recentFrames // a terminated partition with no message seen
	ev.terminate(7, []byte("end"))
	if fs := ev.from(7, 4); len(fs) != 1 || ev.from(6, 4) != nil {
		t.Fatalf("event only: %q", fs)
	}
}

// Frames read from the store join the run only where they meet it: into an empty
// run, from inside it, or just before it; never as a new run over an old one.
func TestRecentFramesJoin(t *testing.T) {
	var r recentFrames
	r.join(10, framesFrom(10, 5))
	checkRun(t, &r, 10, 15)
	r.join(13, framesFrom(13, 4))
	checkRun(t, &r, 10, 17)
	r.join(7, framesFrom(7, 4)) // 7..10: just before, overlapping
	checkRun(t, &r, 7, 17)
	r.join(2, framesFrom(2, 3)) // 2..4: apart from the run
	checkRun(t, &r, 7, 17)
	r.join(20, framesFrom(20, 3)) // after a gap: not a new run
	checkRun(t, &r, 7, 17)
	r.join(0, framesFrom(0, maxRecentFrames)) // only 0..6 are new: they go first
	checkRun(t, &r, 0, 17)

	var full recentFrames
	full.add(100, framesFrom(100, maxRecentFrames-2))
	full.join(95, framesFrom(95, 5)) // would pass the bound
	checkRun(t, &full, 100, 100+maxRecentFrames-2)
}

// orderSrc is a partition log for topic.order: Fetch serves log (or fails), and
// counts its reads.
type orderSrc struct {
	Partitions
	log   []PartitionEntry
	fail  bool
	reads int
}

func (s *orderSrc) Fetch(_ context.Context, _ []byte, after int64, limit int) ([]PartitionEntry, error) {
	s.reads++
	if s.fail {
		return nil, errors.New("store down")
	}
	return logAfter(s.log, after, limit), nil
}

// logAfter is up to limit entries of log with counter > after, as Fetch returns them.
func logAfter(log []PartitionEntry, after int64, limit int) []PartitionEntry {
	var out []PartitionEntry
	for _, e := range log {
		if int64(e.Counter) > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out
}

// orderTopic is a topic whose run holds counters 0..2; running is set, so offers
// (the fill timer's) only queue, and the test hands them to order itself.
func orderTopic(src *orderSrc) *topic {
	t := &topic{masked: []byte("m"), fanout: newFanout(src), sessions: map[*session]*partSub{}, running: true}
	t.recent.add(0, framesFrom(0, 3))
	return t
}

func counters(items []topicItem) []string {
	var out []string
	for _, it := range items {
		switch {
		case it.refetch:
			out = append(out, "refetch")
		case it.e.Terminated:
			out = append(out, fmt.Sprintf("end@%d", it.e.Counter))
		default:
			out = append(out, fmt.Sprint(it.e.Counter))
		}
	}
	return out
}

func live(cs ...uint32) []topicItem {
	var out []topicItem
	for _, c := range cs {
		out = append(out, topicItem{e: PartitionEntry{Counter: c}})
	}
	return out
}

// passed records what order passed on in the topic's run, as deliver does.
func passed(t *topic, items []topicItem) {
	for _, it := range items {
		if !it.refetch {
			t.remember(it.e, frameOf(it.e.Counter))
		}
	}
}

// waitFill waits for the fill item the reorder timer offers.
func waitFill(t *testing.T, tp *topic) []topicItem {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		tp.mu.Lock()
		items := tp.pending
		tp.pending = nil
		tp.mu.Unlock()
		if len(items) > 0 {
			return items
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("no fill item after the reorder wait")
	return nil
}

// Entries of one partition that arrive out of counter order (sequenced on several
// nodes) leave the topic in order: a later one waits for the ones before it, and
// when they do not come within reorderWait the topic reads them from the store
// once, for every subscriber.
func TestTopicOrder(t *testing.T) {
	src := &orderSrc{}
	for c := range uint32(12) {
		src.log = append(src.log, PartitionEntry{Counter: c})
	}
	tp := orderTopic(src)
	check := func(got []topicItem, want string) {
		t.Helper()
		if g := strings.Join(counters(got), " "); g != want {
			t.Fatalf("passed %q, want %q", g, want)
		}
		passed(tp, got)
	}
	check(tp.order(live(3, 5, 4, 1)), "3 4 5 1") // 5 waits for 4; 1 is behind the run: passed
	if src.reads != 0 || len(tp.ahead) != 0 {
		t.Fatalf("reads %d, held %d: want none", src.reads, len(tp.ahead))
	}
	check(tp.order(live(8, 7)), "") // 6 is missing: both wait
	check(tp.order(waitFill(t, tp)), "6 7 8 9 10 11")
	if src.reads != 1 || len(tp.ahead) != 0 || tp.fillTimer {
		t.Fatalf("after the fill: reads %d, held %d, timer %v", src.reads, len(tp.ahead), tp.fillTimer)
	}
	check(tp.order(live(9, 11)), "9 11") // behind the run now: passed, the sockets skip them

	// The terminated event (at the length) waits for the last messages too.
	src.log = append(src.log, PartitionEntry{Counter: 12}, PartitionEntry{Counter: 13, Terminated: true})
	ev := topicItem{e: PartitionEntry{Counter: 13, Terminated: true}}
	check(tp.order([]topicItem{ev}), "")
	check(tp.order(live(12)), "12 end@13")

	// Past maxAhead held entries the topic reads the store at once.
	src2 := &orderSrc{}
	for c := range uint32(maxAhead + 10) {
		src2.log = append(src2.log, PartitionEntry{Counter: c})
	}
	tp2 := orderTopic(src2)
	var many []uint32
	for c := uint32(4); c < maxAhead+10; c++ {
		many = append(many, c)
	}
	if got := tp2.order(live(many...)); len(got) != maxAhead+7 || got[0].e.Counter != 3 || src2.reads != 1 {
		t.Fatalf("past maxAhead: passed %d from %v, reads %d", len(got), counters(got[:1]), src2.reads)
	}

	// A held entry that a socket's own read put in the run meanwhile is still passed
	// on at the fill: the sockets that did not read it wait for it.
	src4 := &orderSrc{}
	for c := range uint32(10) {
		src4.log = append(src4.log, PartitionEntry{Counter: c})
	}
	tp4 := orderTopic(src4)
	tp4.order(live(5))
	tp4.rememberFetched(src4.log[3:7], framesFrom(3, 4)) // the run is 0..6 now
	if got := strings.Join(counters(tp4.order(waitFill(t, tp4))), " "); got != "5 7 8 9" {
		t.Fatalf("held entry inside the run at the fill: passed %q, want 5 7 8 9", got)
	}

	// A refetch item in the batch of the fill: the fill's read (after the run,
	// begun after the refetch came) serves it, and refill does not read again.
	src5 := &orderSrc{}
	for c := range uint32(9) {
		src5.log = append(src5.log, PartitionEntry{Counter: c})
	}
	tp5 := orderTopic(src5)
	tp5.order(live(6, 4))
	items := append([]topicItem{{refetch: true}}, waitFill(t, tp5)...)
	if got := strings.Join(counters(tp5.refill(tp5.order(items))), " "); got != "3 4 5 6 7 8" || src5.reads != 1 {
		t.Fatalf("refetch with the fill: passed %q after %d reads, want 3 4 5 6 7 8 after 1", got, src5.reads)
	}

	// A store that fails: the held entries go on in order after a refetch item,
	// and every subscriber catches up as before.
	src3 := &orderSrc{fail: true}
	tp3 := orderTopic(src3)
	tp3.order(live(6, 4))
	if got := strings.Join(counters(tp3.order(waitFill(t, tp3))), " "); got != "refetch 4 6" {
		t.Fatalf("store down: passed %q", got)
	}
}
