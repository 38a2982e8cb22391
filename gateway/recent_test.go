package gateway

import (
	"fmt"
	"testing"
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
