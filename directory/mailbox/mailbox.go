// Package mailbox is the durable per-client mailbox: anything addressed to one client
// (operator notices, Welcomes, stock warnings) is committed here before the producer is
// answered, pushed to the client's live sockets, and removed only when the client
// acknowledges it. After a reconnect a socket replays what is left, in order.
//
// Each client's mailbox is bounded by a Quota in entries and payload bytes, enforced by
// the store in the transaction that commits an entry: a producer whose entry does not
// fit gets ErrFull (wire code mailbox_full) and nothing is written for that client.
package mailbox

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/mimids/mimids/protocol"
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
	ErrTooLarge = protocol.NewError(protocol.CodeTooLarge, "mailbox: payload too large")
	// ErrFull means the recipient's mailbox holds as many entries or payload bytes as
	// its Quota allows; nothing was written for it. The producer may retry once the
	// client has acknowledged entries.
	ErrFull = protocol.NewError(protocol.CodeMailboxFull, "mailbox: mailbox full")
)

// MaxPayload bounds one entry's payload.
const MaxPayload = 1 << 20

// Quota bounds one client's mailbox: the entries stored and not yet acknowledged, and
// the sum of their payload lengths.
type Quota struct {
	MaxEntries int64
	MaxBytes   int64
}

// DefaultQuota is the quota of a Mailbox made by New: 10,000 entries, 64 MiB.
var DefaultQuota = Quota{MaxEntries: 10_000, MaxBytes: 64 << 20}

// Validate reports a quota that bounds nothing or cannot hold one entry of MaxPayload.
func (q Quota) Validate() error {
	var errs []error
	if q.MaxEntries < 1 {
		errs = append(errs, fmt.Errorf("mailbox: quota of %d entries, want >= 1", q.MaxEntries))
	}
	if q.MaxBytes < MaxPayload {
		errs = append(errs, fmt.Errorf("mailbox: quota of %d bytes, want >= %d (one entry of the largest payload)", q.MaxBytes, MaxPayload))
	}
	return errors.Join(errs...)
}

// fits reports whether one more entry of n payload bytes fits u under q.
func (q Quota) fits(u Usage, n int) bool {
	return u.Entries+1 <= q.MaxEntries && u.Bytes+int64(n) <= q.MaxBytes
}

// Usage is what a client's mailbox holds: entries not yet acknowledged and the sum of
// their payload lengths, with the quota they count against (zero from a Store).
type Usage struct {
	Entries int64
	Bytes   int64
	Quota   Quota
}

// Enqueued is what one EnqueueMailbox committed.
type Enqueued struct {
	// Entries are the committed entries, one per recipient that had room.
	Entries []Entry
	// Full counts the recipients refused because the entry did not fit their quota.
	Full int
}

// Store is what the mailbox needs from storage.
type Store interface {
	// EnqueueMailbox commits one entry to every active recipient of t whose mailbox
	// has room for it under q (one more entry, len(payload) more bytes), counts the
	// recipients without room, and then, before any later write commits, calls
	// published with the entries. Checking and writing are one transaction.
	EnqueueMailbox(ctx context.Context, t Target, kind uint16, payload []byte, at time.Time, q Quota, published func([]Entry)) (Enqueued, error)
	// FetchMailbox returns up to limit entries with seq > after, in seq order.
	FetchMailbox(ctx context.Context, clientID int64, after uint64, limit int) ([]Entry, error)
	// AckMailbox removes, for each client in acks, its entries with seq <= the
	// client's value, in one transaction, and frees their room.
	AckMailbox(ctx context.Context, acks map[int64]uint64) error
	MailboxStatus(ctx context.Context, clientID int64) (Status, error)
	// MailboxUsage returns what the client's mailbox holds (Quota left zero); zero
	// for an unknown client.
	MailboxUsage(ctx context.Context, clientID int64) (Usage, error)
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
	// Full counts n recipients refused an entry of kind because their mailbox was
	// full (by Enqueue, or by Room before a producer commits anything).
	Full func(kind uint16, n int)
}

// Mailbox routes committed entries to live sinks.
type Mailbox struct {
	// Static after construction.
	store   Store
	metrics Metrics
	quota   Quota
	now     func() time.Time

	bus Bus // nil: a single node

	mu      sync.RWMutex
	sinks   map[int64]map[Sink]struct{} // Guarded by mu.
	watches map[int64]func()            // cancels of bus's watches; Guarded by mu.

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

// New returns a Mailbox over store with DefaultQuota.
func New(store Store, m Metrics) *Mailbox { return NewWithQuota(store, m, DefaultQuota) }

// NewWithQuota returns a Mailbox over store whose clients' mailboxes are bounded by q;
// a field of q that is zero or less takes DefaultQuota's value.
func NewWithQuota(store Store, m Metrics, q Quota) *Mailbox { return NewClustered(store, m, q, nil) }

// Bus carries the entries this node commits to the other nodes of its provider
// (package natsbus), and learns whose mailboxes this node's sinks follow. The store
// stays the source of truth: a node told of new entries, or that may have missed
// some, makes its sinks refetch (Poke).
type Bus interface {
	// MailboxCommitted is called with the entries of every Enqueue this node
	// committed, after the commit, on the store's writer: it must not block, and
	// must not keep entries past its return.
	MailboxCommitted(entries []Entry)
	// WatchMailbox says this node has sinks for the client from now until cancel
	// is called. Neither it nor cancel may block.
	WatchMailbox(clientID int64) (cancel func())
}

// NewClustered is NewWithQuota for one node of several sharing one store: bus (nil:
// a single node) tells the other nodes of the entries this one commits.
func NewClustered(store Store, m Metrics, q Quota, bus Bus) *Mailbox {
	if q.MaxEntries <= 0 {
		q.MaxEntries = DefaultQuota.MaxEntries
	}
	if q.MaxBytes <= 0 {
		q.MaxBytes = DefaultQuota.MaxBytes
	}
	mb := &Mailbox{store: store, metrics: m, quota: q, now: time.Now, bus: bus, sinks: make(map[int64]map[Sink]struct{})}
	if bus != nil {
		mb.watches = make(map[int64]func())
	}
	return mb
}

// Quota returns the quota of every client's mailbox.
func (m *Mailbox) Quota() Quota { return m.quota }

// Enqueue commits an entry for every recipient of t that has room for it and pushes
// it to their live sinks. It returns how many entries were committed. A recipient
// whose mailbox is full is skipped; when t names one client, or every recipient was
// skipped, Enqueue fails with ErrFull and nothing was written.
func (m *Mailbox) Enqueue(ctx context.Context, t Target, kind uint16, payload []byte) (int, error) {
	if err := t.validate(); err != nil {
		return 0, err
	}
	if len(payload) > MaxPayload {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(payload), MaxPayload)
	}
	res, err := m.store.EnqueueMailbox(ctx, t, kind, payload, m.now(), m.quota, m.publish)
	if err != nil {
		return 0, fmt.Errorf("mailbox: enqueue: %w", err)
	}
	n := len(res.Entries)
	if m.metrics.Enqueued != nil {
		m.metrics.Enqueued(n)
	}
	if res.Full > 0 {
		if m.metrics.Full != nil {
			m.metrics.Full(kind, res.Full)
		}
		if n == 0 {
			return 0, m.fullError(t, res.Full)
		}
	}
	return n, nil
}

func (m *Mailbox) fullError(t Target, full int) error {
	q := m.quota
	if t.ClientID != 0 {
		return fmt.Errorf("%w: client %d is at its quota of %d entries or %d bytes", ErrFull, t.ClientID, q.MaxEntries, q.MaxBytes)
	}
	return fmt.Errorf("%w: all %d recipients are at their quota of %d entries or %d bytes", ErrFull, full, q.MaxEntries, q.MaxBytes)
}

// Room reports whether one entry of size payload bytes would fit the client's mailbox
// now: ErrFull if not, ErrTooLarge over MaxPayload. Producers that must not commit
// anything they cannot deliver (the hub, before it sequences a Welcome) ask first;
// Enqueue checks again atomically.
func (m *Mailbox) Room(ctx context.Context, clientID int64, kind uint16, size int) error {
	if size > MaxPayload {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, MaxPayload)
	}
	u, err := m.store.MailboxUsage(ctx, clientID)
	if err != nil {
		return fmt.Errorf("mailbox: room: %w", err)
	}
	if m.quota.fits(u, size) {
		return nil
	}
	if m.metrics.Full != nil {
		m.metrics.Full(kind, 1)
	}
	return fmt.Errorf("%w: client %d holds %d entries and %d bytes, quota %d entries and %d bytes",
		ErrFull, clientID, u.Entries, u.Bytes, m.quota.MaxEntries, m.quota.MaxBytes)
}

// Usage returns what the client's mailbox holds and its quota, for dashboards and the
// admin CLI.
func (m *Mailbox) Usage(ctx context.Context, clientID int64) (Usage, error) {
	u, err := m.store.MailboxUsage(ctx, clientID)
	if err != nil {
		return Usage{}, fmt.Errorf("mailbox: usage: %w", err)
	}
	u.Quota = m.quota
	return u, nil
}

func (m *Mailbox) publish(entries []Entry) {
	if m.bus != nil {
		m.bus.MailboxCommitted(entries)
	}
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
		if m.bus != nil {
			m.watches[clientID] = m.bus.WatchMailbox(clientID)
		}
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
				if cancel := m.watches[clientID]; cancel != nil {
					delete(m.watches, clientID)
					cancel()
				}
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
