package conn

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// A function never waits for a busy worker: with every worker blocked, a new one
// starts. Idle workers are reused, and exit after PoolIdle.
func TestPool(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := NewPool()
		release := make(chan struct{})
		var started sync.WaitGroup
		for range 5 {
			started.Add(1)
			p.run(func() { started.Done(); <-release })
		}
		started.Wait() // five workers, all blocked: none waited for another
		if n := p.Workers(); n != 5 {
			t.Fatalf("%d workers for 5 blocked functions", n)
		}
		close(release)
		synctest.Wait() // all five idle now
		done := make(chan struct{})
		p.run(func() { close(done) })
		<-done
		synctest.Wait()
		if n := p.Workers(); n != 5 {
			t.Fatalf("%d workers after reuse, want the 5 idle ones", n)
		}
		time.Sleep(PoolIdle + time.Second)
		synctest.Wait()
		if n := p.Workers(); n != 0 {
			t.Fatalf("%d workers left after PoolIdle", n)
		}
		// An empty pool still runs work.
		ran := make(chan struct{})
		p.run(func() { close(ran) })
		<-ran
		time.Sleep(PoolIdle + time.Second) // and its worker leaves in time
	})
}
