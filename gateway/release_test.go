package gateway

import (
	"runtime"
	"testing"
	"time"
)

var sink [][]byte

// TestReleaseAfterBurst: once the fan-out has been idle for idleRelease after a
// burst that allocated at least releaseMin, memory is returned once and the
// watcher exits; an idle period after a burst that allocated little releases
// nothing.
func TestReleaseAfterBurst(t *testing.T) {
	var r releaser
	waitIdle := func() {
		t.Helper()
		for i := 0; r.watching.Load(); i++ {
			if i > 1000 {
				t.Fatal("the watcher did not exit")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	releaseIfWorth() // start from a release
	before := releasedAt.Load()
	for i := 0; i < 3; i++ { // a burst of fan-outs that allocates
		r.busy()
		for j := 0; j < 16; j++ {
			sink = append(sink, make([]byte, 1<<20))
		}
		sink = nil
		time.Sleep(100 * time.Millisecond)
	}
	start := time.Now()
	waitIdle()
	if d := time.Since(start); d < idleRelease-200*time.Millisecond {
		t.Errorf("released %v after the last fan-out, want about %v", d, idleRelease)
	}
	after := releasedAt.Load()
	if after-before < 3*16<<20 {
		t.Fatalf("no release after allocating 48 MiB: count %d -> %d", before, after)
	}
	r.busy() // a fan-out that allocates nothing much
	waitIdle()
	if releasedAt.Load() != after {
		t.Fatal("released again after a burst that allocated little")
	}
	runtime.KeepAlive(sink)
}
