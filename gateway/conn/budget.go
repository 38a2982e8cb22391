package conn

import (
	"sync"
	"sync/atomic"
)

// Budget counts the bytes queued (waiting for the writer, or being written) by a
// set of connections against a limit. A connection uses a Budget in one of two ways:
//
//   - Config.Total, shared by every connection of a server, is charged for every
//     message queued and never refuses one; when a charge takes it over its limit,
//     Config.OverBudget is called, so the server can close the largest queues.
//   - A connection's group budget (Conn.LimitBy: the sockets of one client)
//     refuses what TryEnqueue offers when it would go over its limit. The connection
//     then waits, without spinning its writer, until a connection of the group
//     releases bytes, and its Refiller is asked again. Enqueue (answers that must be
//     sent) is charged but not refused: each connection's own queue bounds it.
//
// Bytes are released once written, or when the connection ends. A Budget is safe for
// concurrent use.
type Budget struct {
	// Static after construction.
	limit int64

	used atomic.Int64

	nwait   atomic.Int32       // len(waiters), read without mu on every release
	mu      sync.Mutex         // taken after a Conn's lock, never before
	waiters map[*Conn]struct{} // connections refused by this budget; Guarded by mu.
}

// NewBudget returns an empty budget of limit bytes.
func NewBudget(limit int64) *Budget {
	return &Budget{limit: limit, waiters: make(map[*Conn]struct{})}
}

// Limit returns the budget's limit in bytes.
func (b *Budget) Limit() int64 { return b.limit }

// Used returns the bytes charged now.
func (b *Budget) Used() int64 { return b.used.Load() }

// charge adds n unconditionally and reports whether the budget is over its limit.
func (b *Budget) charge(n int64) (over bool) { return b.used.Add(n) > b.limit }

// reserve adds n if that keeps the budget within its limit.
func (b *Budget) reserve(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// release gives n back and wakes the connections this budget refused. Call it with
// no Conn's lock held: waking takes the woken connection's.
func (b *Budget) release(n int64) {
	if n == 0 {
		return
	}
	b.used.Add(-n)
	if b.nwait.Load() == 0 {
		return
	}
	b.mu.Lock()
	woken := make([]*Conn, 0, len(b.waiters))
	for c := range b.waiters {
		woken = append(woken, c)
		delete(b.waiters, c)
	}
	b.nwait.Store(0)
	b.mu.Unlock()
	for _, c := range woken {
		c.starved.Store(false)
		c.Wake()
	}
}

// wait registers c, which this budget just refused n bytes, to be woken on the next
// release. If the room came back meanwhile (a release that found no waiter), c is
// not starved after all and wait reports false.
func (b *Budget) wait(c *Conn, n int64) bool {
	c.starved.Store(true)
	b.mu.Lock()
	b.waiters[c] = struct{}{}
	b.nwait.Store(int32(len(b.waiters)))
	b.mu.Unlock()
	if b.used.Load()+n <= b.limit {
		b.forget(c)
		c.starved.Store(false)
		return false
	}
	return true
}

// forget drops c from the waiters (its connection ended).
func (b *Budget) forget(c *Conn) {
	b.mu.Lock()
	delete(b.waiters, c)
	b.nwait.Store(int32(len(b.waiters)))
	b.mu.Unlock()
}
