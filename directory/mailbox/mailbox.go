// Package mailbox is the durable per-client mailbox: anything addressed to one client
// (operator notices, Welcomes, stock warnings) is committed here before the producer is
// answered, pushed to the client's live sockets, and removed only when the client
// acknowledges it. After a reconnect a socket replays what is left, in order.
package mailbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Entry is one mailbox entry. Seq increases by one per client for each entry.
type Entry struct {
	ClientID   int64
	Seq        uint64
	Kind       uint16
	EnqueuedAt time.Time
	Payload    []byte
}

// Target selects recipients: one client, every active client of one user, or every
// active client of the provider. Exactly one field is set.
type Target struct {
	ClientID int64
	UserID   int64
	All      bool
}

func (t Target) validate() error {
	n := 0
	if t.ClientID != 0 {
		n++
	}
	if t.UserID != 0 {
		n++
	}
	if t.All {
		n++
	}
	if n != 1 {
		return ErrTarget
	}
	return nil
}

// Status summarizes a client's mailbox.
type Status struct {
	Pending  uint64
	FirstSeq uint64
	LastSeq  uint64
}

var (
	ErrTarget   = errors.New("mailbox: target must name exactly one of client, user or all")
	ErrTooLarge = errors.New("mailbox: payload too large")
)

// MaxPayload bounds one entry's payload.
const MaxPayload = 1 << 20

// Store is what the mailbox needs from storage.
type Store interface {
	// EnqueueMailbox commits one entry per recipient and then, before any later write
	// commits, calls published with the entries.
	EnqueueMailbox(ctx context.Context, t Target, kind uint16, payload []byte, at time.Time, published func([]Entry)) ([]Entry, error)
	// FetchMailbox returns up to limit entries with seq > after, in seq order.
	FetchMailbox(ctx context.Context, clientID int64, after uint64, limit int) ([]Entry, error)
	// AckMailbox removes, for each client in acks, its entries with seq <= the
	// client's value, in one transaction.
	AckMailbox(ctx context.Context, acks map[int64]uint64) error
	MailboxStatus(ctx context.Context, clientID int64) (Status, error)
}

// Sink receives a client's entries as they are committed. Notify and Refetch must not
// block: a sink that cannot keep up refetches from the store.
type Sink interface {
	// Notify offers a newly committed entry.
	Notify(e Entry)
	// Refetch says entries may exist that were never offered (another process wrote them).
	Refetch()
}

// Metrics are counters the mailbox updates; any field may be nil.
type Metrics struct {
	Enqueued func(n int)
	Acked    func()
}

// Mailbox routes committed entries to live sinks.
type Mailbox struct {
	// Static after construction.
	store   Store
	metrics Metrics
	now     func() time.Time

	mu    sync.RWMutex
	sinks map[int64]map[Sink]struct{} // Guarded by mu.

	ackMu       sync.Mutex
	ackBatch    *ackBatch // acks waiting for the next flush; Guarded by ackMu.
	ackFlushing bool      // a flusher goroutine runs; Guarded by ackMu.
}

// ackBatch is the acks that one store transaction removes.
type ackBatch struct {
	acks map[int64]uint64
	done chan struct{}
	err  error // set before done is closed
}

// New returns a Mailbox over store.
func New(store Store, m Metrics) *Mailbox {
	return &Mailbox{store: store, metrics: m, now: time.Now, sinks: make(map[int64]map[Sink]struct{})}
}

// Enqueue commits an entry for every recipient of t and pushes it to their live sinks.
// It returns how many entries were committed.
func (m *Mailbox) Enqueue(ctx context.Context, t Target, kind uint16, payload []byte) (int, error) {
	if err := t.validate(); err != nil {
		return 0, err
	}
	if len(payload) > MaxPayload {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(payload), MaxPayload)
	}
	entries, err := m.store.EnqueueMailbox(ctx, t, kind, payload, m.now(), m.publish)
	if err != nil {
		return 0, fmt.Errorf("mailbox: enqueue: %w", err)
	}
	if m.metrics.Enqueued != nil {
		m.metrics.Enqueued(len(entries))
	}
	return len(entries), nil
}

func (m *Mailbox) publish(entries []Entry) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if len(m.sinks) == 0 {
		return
	}
	for _, e := range entries {
		for s := range m.sinks[e.ClientID] {
			s.Notify(e)
		}
	}
}

// Subscribe registers a live sink for a client and returns its cancel function. The
// sink should Refetch right after subscribing to catch up on stored entries.
func (m *Mailbox) Subscribe(clientID int64, s Sink) (cancel func()) {
	m.mu.Lock()
	set := m.sinks[clientID]
	if set == nil {
		set = make(map[Sink]struct{}, 1)
		m.sinks[clientID] = set
	}
	set[s] = struct{}{}
	m.mu.Unlock()
	return func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if set := m.sinks[clientID]; set != nil {
			delete(set, s)
			if len(set) == 0 {
				delete(m.sinks, clientID)
			}
		}
	}
}

// Poke makes the live sinks of clientID (0: every client) refetch from the store.
func (m *Mailbox) Poke(clientID int64) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if clientID != 0 {
		for s := range m.sinks[clientID] {
			s.Refetch()
		}
		return
	}
	for _, set := range m.sinks {
		for s := range set {
			s.Refetch()
		}
	}
}

// Fetch returns up to limit stored entries after seq.
func (m *Mailbox) Fetch(ctx context.Context, clientID int64, after uint64, limit int) ([]Entry, error) {
	return m.store.FetchMailbox(ctx, clientID, after, limit)
}

// Ack removes the client's entries up to seq and returns once the removal is
// committed. Concurrent acks share one transaction: while one batch commits, the
// next one collects.
func (m *Mailbox) Ack(ctx context.Context, clientID int64, seq uint64) error {
	m.ackMu.Lock()
	b := m.ackBatch
	if b == nil {
		b = &ackBatch{acks: make(map[int64]uint64), done: make(chan struct{})}
		m.ackBatch = b
	}
	if seq > b.acks[clientID] {
		b.acks[clientID] = seq
	}
	if !m.ackFlushing {
		m.ackFlushing = true
		go m.flushAcks()
	}
	m.ackMu.Unlock()
	select {
	case <-b.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if b.err != nil {
		return fmt.Errorf("mailbox: ack: %w", b.err)
	}
	if m.metrics.Acked != nil {
		m.metrics.Acked()
	}
	return nil
}

func (m *Mailbox) flushAcks() {
	for {
		m.ackMu.Lock()
		b := m.ackBatch
		m.ackBatch = nil
		if b == nil {
			m.ackFlushing = false
			m.ackMu.Unlock()
			return
		}
		m.ackMu.Unlock()
		b.err = m.store.AckMailbox(context.Background(), b.acks)
		close(b.done)
	}
}

// Status reports the client's pending entries.
func (m *Mailbox) Status(ctx context.Context, clientID int64) (Status, error) {
	return m.store.MailboxStatus(ctx, clientID)
}
