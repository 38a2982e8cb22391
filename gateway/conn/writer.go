package conn

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/coder/websocket"
)

// TryEnqueue queues msg for the writer if the queue has room in count and bytes,
// and the group budget (LimitBy) has room, and reports whether it did. It never
// blocks and does not start the writer: call Wake once done (a Handler may queue
// several messages under its own lock, then wake). msg must not change once queued;
// it may be shared with other connections. A refused message is the Refiller's to
// offer again: when the group budget refused it, the writer asks the Refiller again
// only once the budget has room.
func (c *Conn) TryEnqueue(msg []byte) bool { return c.enqueue(msg, true) }

// Enqueue queues msg and wakes the writer. It never blocks: a peer whose queue is
// full is a slow consumer, and the connection is closed with Config.SlowConsumer.
// The group budget is charged but does not refuse msg. It reports whether msg was
// queued.
func (c *Conn) Enqueue(msg []byte) bool {
	if !c.enqueue(msg, false) {
		c.Close(c.cfg.SlowConsumer, "send queue full")
		return false
	}
	c.Wake()
	return true
}

func (c *Conn) enqueue(msg []byte, refusable bool) bool {
	n := int64(len(msg))
	c.mu.Lock()
	if c.state == stateDone || len(c.queue) >= c.cfg.MaxQueueMessages || c.qbytes+len(msg) > c.cfg.MaxQueueBytes {
		c.mu.Unlock()
		return false
	}
	if g := c.group; g != nil {
		switch {
		case !refusable:
			g.charge(n)
		case !g.reserve(n):
			g.wait(c, n)
			c.mu.Unlock()
			return false
		}
	}
	c.queue = append(c.queue, msg)
	c.qbytes += len(msg)
	c.charged += n
	over := c.cfg.Total != nil && c.cfg.Total.charge(n)
	c.mu.Unlock()
	if over && c.cfg.OverBudget != nil {
		c.cfg.OverBudget()
	}
	return true
}

// uncharge gives back n bytes written or dropped to the budgets.
func (c *Conn) uncharge(n int64) {
	if n == 0 {
		return
	}
	c.mu.Lock()
	n = min(n, c.charged) // a Socket's flusher may end after dropQueue gave everything back
	c.charged -= n
	c.mu.Unlock()
	c.release(n)
}

func (c *Conn) release(n int64) {
	if c.cfg.Total != nil {
		c.cfg.Total.release(n)
	}
	if c.group != nil {
		c.group.release(n)
	}
}

// dropQueue forgets what is still queued once the connection has ended (no writer
// runs and nothing more can be queued) and gives its bytes back.
func (c *Conn) dropQueue() {
	c.mu.Lock()
	n := c.charged
	c.queue, c.qbytes, c.charged = nil, 0, 0
	c.rest, c.restSize = nil, 0
	c.mu.Unlock()
	c.release(n)
	if c.group != nil {
		c.group.forget(c)
	}
}

// Wake makes sure a writer goroutine will look at the queue (and the Refiller). It
// never blocks. Before Run it does nothing: Run wakes the writer itself.
func (c *Conn) Wake() {
	if c.takeWriter() {
		go c.writer()
	}
}

// Flush is Wake, except that on a Socket's connection (NewSocket) it writes what is
// queued on the caller's goroutine when no writer runs: the write never blocks (what
// the kernel does not take waits in the socket's backlog), so a fan-out can write
// to many sockets in turn without starting a goroutine for each. A writer goroutine
// is started for what it leaves (a Refill, or what was queued meanwhile). It never
// blocks.
func (c *Conn) Flush() {
	if c.out == nil || !c.out.inline() {
		c.Wake()
		return
	}
	if !c.takeWriter() {
		return
	}
	for c.ctx.Err() == nil {
		more, err := c.writeNext()
		if err != nil {
			c.writing.Store(false)
			c.writers.Done()
			c.Close(websocket.StatusAbnormalClosure, "") // unless closed with a better reason
			return
		}
		if !more {
			break
		}
	}
	c.writing.Store(false)
	more := c.pending() && c.ctx.Err() == nil
	c.writers.Done()
	if more {
		c.Wake()
	}
}

// takeWriter takes the writer role if no one has it and the connection runs; the
// caller then writes and calls writers.Done.
func (c *Conn) takeWriter() bool {
	if !c.writing.CompareAndSwap(false, true) {
		return false
	}
	// Taking the role is ordered with Run's end under mu, so that no writers.Add
	// can race the final writers.Wait.
	c.mu.Lock()
	if c.state != stateRunning {
		c.mu.Unlock()
		c.writing.Store(false)
		return false
	}
	c.writers.Add(1)
	c.mu.Unlock()
	return true
}

// writeNext writes, as the writer, the rest of a batch the socket stopped taking,
// or else what is queued, and reports whether it wrote something and the socket
// takes more. A batch stays charged to the budgets until all of it is written (on
// a Socket's connection: until its backlog is, too).
func (c *Conn) writeNext() (more bool, err error) {
	if c.out != nil && c.out.blocked() {
		return false, nil // the socket's flusher wakes the writer once it is done
	}
	c.mu.Lock()
	batch, size := c.rest, c.restSize
	if len(batch) == 0 {
		batch, size = c.queue, c.qbytes
		c.queue, c.qbytes = nil, 0
	}
	c.rest, c.restSize = nil, 0
	c.mu.Unlock()
	if len(batch) == 0 {
		return false, nil
	}
	n, err := c.writeBatch(batch)
	if err == nil && n < len(batch) {
		c.mu.Lock()
		c.rest, c.restSize = batch[n:], size
		c.mu.Unlock()
		return false, nil
	}
	if c.out == nil || !c.out.hold(int64(size)) {
		c.uncharge(int64(size)) // written, or dropped with the connection
	}
	return err == nil, err
}

// writer writes until the queue is empty and nothing is to be refilled, then exits.
// At most one runs; while it does, it is the only caller of Write for queued
// messages.
func (c *Conn) writer() {
	defer c.writers.Done()
	for {
		if err := c.drain(); err != nil {
			c.writing.Store(false)
			c.Close(websocket.StatusAbnormalClosure, "") // unless closed with a better reason
			return
		}
		c.writing.Store(false)
		// Work queued after drain looked but before writing was cleared would be
		// stranded: look again, and keep the writer role if there is some.
		if !c.pending() || c.ctx.Err() != nil || !c.writing.CompareAndSwap(false, true) {
			return
		}
	}
}

// pending reports whether the writer has work. The Refiller is asked outside mu: its
// lock is taken before mu, never after.
func (c *Conn) pending() bool {
	if c.out != nil && c.out.blocked() {
		return false // the socket's flusher wakes the writer once it is done
	}
	c.mu.Lock()
	n := len(c.queue) + len(c.rest)
	c.mu.Unlock()
	fill, ok := c.h.(Refiller)
	return n > 0 || (ok && !c.starved.Load() && fill.RefillPending())
}

// drain writes what is queued and refills until nothing is left, or the socket
// takes no more for now.
func (c *Conn) drain() error {
	fill, canFill := c.h.(Refiller)
	for c.ctx.Err() == nil {
		if c.out != nil && c.out.blocked() {
			return nil // the socket's flusher wakes the writer once it is done
		}
		refill := canFill && !c.starved.Load() && fill.RefillPending()
		wrote, err := c.writeNext()
		if err != nil {
			return err
		}
		if !wrote && !refill {
			return nil
		}
		if refill {
			if err := fill.Refill(c.ctx); err != nil {
				return fmt.Errorf("conn: refill: %w", err)
			}
		}
	}
	return nil
}

var batchPool = sync.Pool{New: func() any { return new([]byte) }}

// writeBatch writes queued messages, packing consecutive ones into one WebSocket
// message of up to Config.MaxBatchBytes, so a peer that is behind costs one write
// per batch instead of one per message. On a Socket's connection it stops once the
// socket has a backlog; it returns how many messages it wrote.
func (c *Conn) writeBatch(msgs [][]byte) (int, error) {
	for i := 0; i < len(msgs); {
		if i > 0 && c.out != nil && c.out.blocked() {
			return i, nil
		}
		j, size := i, 0
		for j < len(msgs) && (j == i || size+len(msgs[j]) <= c.cfg.MaxBatchBytes) {
			size += len(msgs[j])
			j++
		}
		if err := c.write(msgs[i:j]); err != nil {
			return i, err
		}
		i = j
	}
	return len(msgs), nil
}

// write sends msgs as one WebSocket message within the write timeout.
func (c *Conn) write(msgs [][]byte) error {
	obs, _ := c.h.(WriteObserver)
	if obs != nil {
		obs.Writing(msgs)
	}
	msg := msgs[0]
	if len(msgs) > 1 {
		bp := batchPool.Get().(*[]byte)
		defer func() { *bp = (*bp)[:0]; batchPool.Put(bp) }()
		for _, m := range msgs {
			*bp = append(*bp, m...)
		}
		msg = *bp
	}
	if c.out != nil {
		// The socket bounds the write itself, without a context (and without the
		// two timers and three allocations per write a deadline context costs).
		if err := c.ws.Write(context.Background(), websocket.MessageBinary, msg); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				c.Close(c.cfg.SlowConsumer, "write timeout")
			}
			return fmt.Errorf("conn: write: %w", err)
		}
		if obs != nil {
			obs.Wrote(msgs)
		}
		return nil
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.WriteTimeout)
	err := c.ws.Write(ctx, websocket.MessageBinary, msg)
	cancel()
	if err != nil {
		// The write's own deadline, not the connection ending: the peer stopped
		// reading. (coder/websocket drops the connection when a write times out, so
		// the reader may already have ended Run.)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			c.Close(c.cfg.SlowConsumer, "write timeout")
		}
		return fmt.Errorf("conn: write: %w", err)
	}
	if obs != nil {
		obs.Wrote(msgs)
	}
	return nil
}
