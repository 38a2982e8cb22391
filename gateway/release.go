package gateway

import (
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync/atomic"
	"time"
)

// Memory after a burst of pushes (docs/performance.md, "Memory"). While the
// fan-out pushes, the heap grows to the GC's goal (twice what is live, by default)
// with garbage the pushes left; when they stop, nothing allocates, no GC runs, and
// the runtime keeps those pages: the process stays at its peak for minutes. So once
// the fan-out has been idle for idleRelease after allocating at least releaseMin, it
// returns the free memory to the OS once (a GC and a scavenge), and the process goes
// back to what its sockets hold.
const (
	idleRelease = 2 * time.Second
	releaseMin  = 16 << 20
)

// releaser watches one gateway's fan-out for the end of a burst.
type releaser struct {
	last     atomic.Int64 // UnixNano of the last fan-out
	watching atomic.Bool  // a watcher goroutine runs
}

// releasedAt is the heap's allocation count at the last release, for every gateway
// of the process (they share the heap).
var releasedAt atomic.Uint64

// busy records a fan-out. It never blocks; it starts the watcher if none runs.
func (r *releaser) busy() {
	r.last.Store(time.Now().UnixNano())
	if r.watching.CompareAndSwap(false, true) {
		go r.watch()
	}
}

// watch waits until the fan-out has been idle for idleRelease, then releases
// memory if the burst allocated enough, and exits: it runs only during and just
// after a burst.
func (r *releaser) watch() {
	t := time.NewTimer(idleRelease)
	defer t.Stop()
	for {
		<-t.C
		if idle := time.Since(time.Unix(0, r.last.Load())); idle < idleRelease {
			t.Reset(idleRelease - idle)
			continue
		}
		r.watching.Store(false)
		// A fan-out between the look and the Store started no watcher: keep
		// watching for it.
		if time.Since(time.Unix(0, r.last.Load())) < idleRelease && r.watching.CompareAndSwap(false, true) {
			t.Reset(idleRelease)
			continue
		}
		releaseIfWorth()
		return
	}
}

// releaseIfWorth returns free memory to the OS if at least releaseMin was allocated
// since the last release.
func releaseIfWorth() {
	s := []rtmetrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindUint64 {
		return
	}
	now := s[0].Value.Uint64()
	if last := releasedAt.Load(); now-last < releaseMin || !releasedAt.CompareAndSwap(last, now) {
		return
	}
	debug.FreeOSMemory()
}
