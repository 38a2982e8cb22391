package conn

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/coder/websocket"
)

// TryEnqueue queues msg for the writer if the queue has room in count and bytes,
// and reports whether it did. It never blocks and does not start the writer: call
// Wake once done (a Handler may queue several messages under its own lock, then
// wake). msg must not change once queued.
func (c *Conn) TryEnqueue(msg []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.queue) >= c.cfg.MaxQueueMessages || c.qbytes+len(msg) > c.cfg.MaxQueueBytes {
		return false
	}
	c.queue = append(c.queue, msg)
	c.qbytes += len(msg)
	return true
}

// Enqueue queues msg and wakes the writer. It never blocks: a peer whose queue is
// full is a slow consumer, and the connection is closed with Config.SlowConsumer.
// It reports whether msg was queued.
func (c *Conn) Enqueue(msg []byte) bool {
	if !c.TryEnqueue(msg) {
		c.Close(c.cfg.SlowConsumer, "send queue full")
		return false
	}
	c.Wake()
	return true
}

// Wake makes sure a writer goroutine will look at the queue (and the Refiller). It
// never blocks. Before Run it does nothing: Run wakes the writer itself.
func (c *Conn) Wake() {
	if !c.writing.CompareAndSwap(false, true) {
		return
	}
	// Starting a writer is ordered with Run's end under mu, so that no writers.Add
	// can race the final writers.Wait.
	c.mu.Lock()
	if c.state != stateRunning {
		c.mu.Unlock()
		c.writing.Store(false)
		return
	}
	c.writers.Add(1)
	c.mu.Unlock()
	go c.writer()
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
	c.mu.Lock()
	n := len(c.queue)
	c.mu.Unlock()
	fill, ok := c.h.(Refiller)
	return n > 0 || (ok && fill.RefillPending())
}

// drain writes what is queued and refills until nothing is left.
func (c *Conn) drain() error {
	fill, canFill := c.h.(Refiller)
	for c.ctx.Err() == nil {
		c.mu.Lock()
		batch := c.queue
		c.queue, c.qbytes = nil, 0
		c.mu.Unlock()
		refill := canFill && fill.RefillPending()
		if len(batch) == 0 && !refill {
			return nil
		}
		if err := c.writeBatch(batch); err != nil {
			return err
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
// per batch instead of one per message.
func (c *Conn) writeBatch(msgs [][]byte) error {
	for i := 0; i < len(msgs); {
		j, size := i, 0
		for j < len(msgs) && (j == i || size+len(msgs[j]) <= c.cfg.MaxBatchBytes) {
			size += len(msgs[j])
			j++
		}
		if err := c.write(msgs[i:j]); err != nil {
			return err
		}
		i = j
	}
	return nil
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
