package conn

import (
	"sync/atomic"
	"time"
)

// Pool runs the functions connections start with Go on long-lived goroutines. A
// function goes to an idle worker, or starts a new one when none is idle, so the pool
// never makes a function wait; a worker idle for PoolIdle exits. Workers keep the
// stacks that earlier requests grew, so a request does not pay again for growing a
// fresh goroutine's stack (which the runtime starts at the average size of all
// goroutines: small, on a server with many idle sockets). A Pool is shared by every
// connection of a server and is safe for concurrent use; its zero value is not
// usable, use NewPool.
type Pool struct {
	work    chan func() // unbuffered: a send succeeds only when a worker is idle
	workers atomic.Int32
}

// PoolIdle is how long an idle worker waits for work before it exits.
const PoolIdle = 10 * time.Second

// NewPool returns an empty pool.
func NewPool() *Pool { return &Pool{work: make(chan func())} }

// run runs f on an idle worker or a new one.
func (p *Pool) run(f func()) {
	select {
	case p.work <- f:
	default:
		go p.worker(f)
	}
}

// Workers reports how many workers exist, busy or idle.
func (p *Pool) Workers() int { return int(p.workers.Load()) }

func (p *Pool) worker(f func()) {
	p.workers.Add(1)
	defer p.workers.Add(-1)
	t := time.NewTimer(PoolIdle)
	defer t.Stop()
	for {
		f()
		f = nil // let the finished request's closure go while idle
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(PoolIdle)
		select {
		case f = <-p.work:
		case <-t.C:
			return
		}
	}
}
