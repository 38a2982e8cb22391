package follower

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mimids/mimids/protocol"
)

// Local copies of partitions hosted elsewhere (docs/protocol.md §5.12): when a
// local client subscribes to a partition this provider does not host, the
// follower subscribes at the partition's hub (a subscribe envelope); the hub
// pushes the partition's log (push envelopes, several entries each) and the
// follower keeps it in its own store, then serves its clients' subscriptions from
// there with the ordering and resume guarantees of a local partition.

// CopyStore is the durable local copy of followed partitions.
type CopyStore interface {
	// FollowCopy records that hub hosts the partition with masked key masked and
	// key digest digest (KeyDigest), unless a hub is recorded, marks it used at at,
	// and returns the record (with the recorded hub).
	FollowCopy(ctx context.Context, masked, digest []byte, hub string, at time.Time) (CopyRecord, error)
	// CopyRecords returns every followed partition.
	CopyRecords(ctx context.Context) ([]CopyRecord, error)
	// TouchCopies marks the copies used at at.
	TouchCopies(ctx context.Context, masked [][]byte, at time.Time) error
	// RemoveCopy deletes a copy: its record and its entries.
	RemoveCopy(ctx context.Context, masked []byte) error
	// AppendCopy stores the entries from the copy's next counter on (earlier ones
	// are already held; a gap stops the append) and returns what it stored and
	// where the copy stands. after runs once they are committed, in commit order.
	AppendCopy(ctx context.Context, masked []byte, entries []protocol.PushEntry, after func(applied []protocol.PushEntry)) (next uint32, done bool, err error)
	// FetchCopy returns up to limit entries with counter > after (-1: from the start).
	FetchCopy(ctx context.Context, masked []byte, after int64, limit int) ([]protocol.PushEntry, error)
}

// CopyRecord is a followed partition as the store holds it.
type CopyRecord struct {
	Masked []byte
	Digest []byte // KeyDigest of the partition key; nil for a record older than it
	Hub    string
	Next   uint32 // the first counter the copy does not hold
	Done   bool   // the copy holds the terminated event
	UsedAt time.Time
}

// ErrNotYourPartition refuses a push from a peer that is not the hub this
// provider follows the partition at (or for a partition it does not follow): a
// hub can push only partitions of groups it hosts.
var ErrNotYourPartition = protocol.NewError(protocol.CodeUnauthorized, "follower: push for a partition not followed at this peer")

// ErrBadPush refuses a push envelope that does not parse.
var ErrBadPush = protocol.NewError(protocol.CodeMalformed, "follower: malformed push envelope")

// CopiesConfig configures Copies.
type CopiesConfig struct {
	Store  CopyStore
	Link   Link   // nil: nothing is followed (no federation)
	Routes Routes // the partition routes (§5.10)
	// Timeout bounds the wait for a hub's answer (default DefaultTimeout).
	Timeout time.Duration
	// Idle is how long a copy goes without a local subscriber before the follower
	// unsubscribes at its hub (default DefaultCopyIdle).
	Idle time.Duration
	// Retention is how long a copy goes without a local subscriber before it is
	// deleted (default DefaultCopyRetention; at least Idle).
	Retention time.Duration
	Now       func() time.Time // default time.Now
	Logger    *slog.Logger
	// Bus, if set, joins the copies of the nodes of one provider (scale-out): a
	// push applied on the node that runs the hub's link wakes the sinks of the
	// others. Nil: a single node.
	Bus CopyBus
}

// CopyBus tells the other nodes of this provider what the local copies commit
// (natsbus.Bus). It may lose notices: sinks read the store on a gap.
type CopyBus interface {
	// CopyCommitted announces new entries of the copy of masked.
	CopyCommitted(masked []byte)
	// WatchCopy asks for the other nodes' announcements of masked (until cancel)
	// and makes its sinks read the store once it holds (Copies.Poke).
	WatchCopy(masked []byte) (cancel func())
}

// Defaults of the copies' lifecycle (docs/protocol.md §5.14).
const (
	DefaultCopyIdle      = 10 * time.Minute
	DefaultCopyRetention = 7 * 24 * time.Hour
)

// Copies serves partitions hosted elsewhere from their local copies. It
// implements the gateway's Partitions for them (Subscribe, Fetch, Masked,
// MaskedAt) and Follows tells which masked keys are its. Run unsubscribes and
// prunes the copies no local client follows (copies_life.go).
type Copies struct {
	// Static after NewCopies.
	cfg CopiesConfig
	log *slog.Logger

	// lifeMu orders recording a copy (follow) against deleting one (prune), so
	// that a copy followed again is never deleted under its new subscriber.
	lifeMu sync.Mutex

	mu     sync.Mutex
	state  map[string]*copyState             // by masked key; Guarded by mu.
	masked map[string][]byte                 // KeyDigest -> masked key; Guarded by mu.
	sinks  map[string]map[*copySink]struct{} // Guarded by mu.
	// watches cancels cfg.Bus's watches, by masked key; Guarded by mu.
	watches map[string]func()
}

// copyState is a followed partition in memory. Guarded by Copies.mu.
type copyState struct {
	op         sync.RWMutex // subscribes share it; an unsubscribe holds it alone (not Guarded by mu)
	hub        string       // Static.
	digest     []byte
	next       uint32
	usedAt     time.Time
	subscribed bool // as far as this process knows, the hub holds our subscription
}

type copySink struct{ s protocol.PartitionSink }

// NewCopies loads the followed partitions from the store.
func NewCopies(ctx context.Context, cfg CopiesConfig) (*Copies, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Idle <= 0 {
		cfg.Idle = DefaultCopyIdle
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultCopyRetention
	}
	cfg.Retention = max(cfg.Retention, cfg.Idle)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	recs, err := cfg.Store.CopyRecords(ctx)
	if err != nil {
		return nil, fmt.Errorf("follower: copies: %w", err)
	}
	c := &Copies{cfg: cfg, log: cfg.Logger.With("part", "copies"), state: make(map[string]*copyState, len(recs)),
		masked: make(map[string][]byte, len(recs)), sinks: make(map[string]map[*copySink]struct{}),
		watches: make(map[string]func())}
	for _, r := range recs {
		c.state[string(r.Masked)] = &copyState{hub: r.Hub, digest: r.Digest, next: r.Next, usedAt: r.UsedAt, subscribed: true}
		if r.Digest != nil {
			c.masked[string(r.Digest)] = r.Masked
		}
	}
	return c, nil
}

// Follows reports whether masked is a partition this provider follows elsewhere.
func (c *Copies) Follows(masked []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.state[string(masked)]
	return ok
}

// Masked subscribes at the partition's hub (known from the routes, §5.10) from
// where the local copy stands, and returns the masked key the hub answered.
func (c *Copies) Masked(ctx context.Context, partitionKey []byte) ([]byte, error) {
	if c.cfg.Link == nil || c.cfg.Routes == nil {
		return nil, ErrUnknownGroup
	}
	hub, ok, err := c.cfg.Routes.PartitionHub(ctx, KeyDigest(partitionKey))
	if err != nil {
		return nil, fmt.Errorf("follower: subscribe: %w", err)
	}
	if !ok {
		return nil, ErrUnknownGroup
	}
	return c.follow(ctx, hub, partitionKey)
}

// MaskedAt is Masked at the hub the client names (subscribe_at), unless the
// partition's hub is known: then the known one is asked. A partition the named hub
// answered teaches the follower its route.
func (c *Copies) MaskedAt(ctx context.Context, hinted string, partitionKey []byte) ([]byte, error) {
	if c.cfg.Link == nil || c.cfg.Routes == nil {
		return nil, ErrUnknownGroup
	}
	digest := KeyDigest(partitionKey)
	hub, known, err := c.cfg.Routes.PartitionHub(ctx, digest)
	if err != nil {
		return nil, fmt.Errorf("follower: subscribe_at: %w", err)
	}
	if !known {
		hub = hinted
	}
	masked, err := c.follow(ctx, hub, partitionKey)
	if err == nil && !known {
		if err := c.cfg.Routes.SetPartitionHub(ctx, digest, hub); err != nil {
			c.log.Warn("follower: route not recorded", "route", "partition hub", "err", err)
		}
	}
	return masked, err
}

// follow subscribes at hub from where the local copy stands. The hub starts a new
// subscription at the copy's next counter, keeps an existing one where it stands,
// and continues from where each push's answer says the copy stands. A push may
// arrive before the copy is recorded here and be refused: the hub then waits for
// the next subscribe, so a partition not followed yet is subscribed twice. A
// subscribe of a followed copy holds its op lock shared, so it is never sent
// while the sweep's unsubscribe of that copy is in flight (copies_life.go).
func (c *Copies) follow(ctx context.Context, hub string, partitionKey []byte) ([]byte, error) {
	digest := KeyDigest(partitionKey)
	c.mu.Lock()
	known := c.masked[string(digest)]
	st := c.state[string(known)]
	c.mu.Unlock()
	if st != nil && st.hub == hub {
		masked, ok, err := c.resubscribe(ctx, st, known, partitionKey)
		if err != nil || ok {
			return masked, err
		}
	}
	masked, err := c.subscribeAt(ctx, hub, partitionKey, 0)
	if err != nil {
		return nil, err
	}
	c.lifeMu.Lock()
	rec, err := c.cfg.Store.FollowCopy(ctx, masked, digest, hub, c.cfg.Now())
	if err == nil && rec.Hub == hub {
		c.mu.Lock()
		if st = c.state[string(masked)]; st == nil {
			st = &copyState{hub: hub, next: rec.Next}
			c.state[string(masked)] = st
		}
		st.digest, st.usedAt = digest, c.cfg.Now()
		c.masked[string(digest)] = masked
		c.mu.Unlock()
	}
	c.lifeMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("follower: subscribe: %w", err)
	}
	if rec.Hub != hub {
		c.log.Warn("partition followed at another hub; subscription refused", "hub", hub, "recorded", rec.Hub)
		return nil, ErrUnknownGroup
	}
	if _, ok, err := c.resubscribe(ctx, st, masked, partitionKey); err != nil || !ok {
		return nil, errors.Join(err, fmt.Errorf("%w: copy deleted meanwhile", ErrHubUnreachable))
	}
	return masked, nil
}

// resubscribe subscribes a followed copy from where it stands; ok is false if
// the hub answered another masked key or the copy was deleted meanwhile.
func (c *Copies) resubscribe(ctx context.Context, st *copyState, masked, partitionKey []byte) ([]byte, bool, error) {
	st.op.RLock()
	defer st.op.RUnlock()
	c.mu.Lock()
	from := st.next
	c.mu.Unlock()
	got, err := c.subscribeAt(ctx, st.hub, partitionKey, from)
	if err != nil {
		return nil, false, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if string(got) != string(masked) || c.state[string(masked)] != st {
		return got, false, nil
	}
	st.usedAt, st.subscribed = c.cfg.Now(), true
	return got, true, nil
}

func (c *Copies) subscribeAt(ctx context.Context, hub string, pk []byte, from uint32) ([]byte, error) {
	body, err := (&protocol.PartitionSubscribe{PartitionKey: pk, From: from}).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("follower: subscribe: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	out, err := c.cfg.Link.Call(cctx, hub, protocol.EnvelopeSubscribe, body)
	switch {
	case err == nil:
	case protocol.Refusal(err):
		return nil, err
	case cctx.Err() != nil && ctx.Err() == nil:
		return nil, fmt.Errorf("%w: subscribe at %s", ErrHubUnreachable, hub)
	default:
		return nil, fmt.Errorf("follower: subscribe at %s: %w", hub, err)
	}
	r := protocol.NewReader(out)
	masked := r.OpaqueMax("subscribe.masked_partition_key", protocol.MaxMaskedLen)
	if err := r.Done(); err != nil || len(masked) == 0 {
		return nil, fmt.Errorf("follower: subscribe at %s: bad answer: %v", hub, err)
	}
	return masked, nil
}

// Subscribe registers a sink for a followed partition.
func (c *Copies) Subscribe(masked []byte, s protocol.PartitionSink) (cancel func()) {
	k := &copySink{s}
	c.mu.Lock()
	set := c.sinks[string(masked)]
	if set == nil {
		set = make(map[*copySink]struct{})
		c.sinks[string(masked)] = set
	}
	set[k] = struct{}{}
	if c.cfg.Bus != nil && c.watches[string(masked)] == nil {
		c.watches[string(masked)] = c.cfg.Bus.WatchCopy(masked)
	}
	c.mu.Unlock()
	return func() {
		var unwatch func()
		c.mu.Lock()
		delete(c.sinks[string(masked)], k)
		if len(c.sinks[string(masked)]) == 0 {
			delete(c.sinks, string(masked))
			unwatch = c.watches[string(masked)]
			delete(c.watches, string(masked))
		}
		c.mu.Unlock()
		if unwatch != nil {
			unwatch()
		}
	}
}

// Poke makes the sinks of masked's copy (every copy's, for nil) read the store:
// another node of this provider appended to it (CopiesConfig.Bus).
func (c *Copies) Poke(masked []byte) {
	var sinks []protocol.PartitionSink
	c.mu.Lock()
	for m, set := range c.sinks {
		if masked != nil && m != string(masked) {
			continue
		}
		for k := range set {
			sinks = append(sinks, k.s)
		}
	}
	c.mu.Unlock()
	for _, s := range sinks {
		s.Refetch()
	}
}

// Fetch reads the local copy.
func (c *Copies) Fetch(ctx context.Context, masked []byte, after int64, limit int) ([]protocol.PartitionEntry, error) {
	es, err := c.cfg.Store.FetchCopy(ctx, masked, after, limit)
	if err != nil {
		return nil, fmt.Errorf("follower: fetch copy: %w", err)
	}
	out := make([]protocol.PartitionEntry, 0, len(es))
	for _, e := range es {
		pe, err := entryOf(e)
		if err != nil {
			return nil, fmt.Errorf("follower: fetch copy: %w", err)
		}
		out = append(out, pe)
	}
	return out, nil
}

func entryOf(e protocol.PushEntry) (protocol.PartitionEntry, error) {
	if e.Terminated {
		return protocol.PartitionEntry{Counter: e.Counter, Terminated: true}, nil
	}
	pe := protocol.PartitionEntry{Counter: e.Counter}
	if err := pe.Message.UnmarshalBinary(e.Message); err != nil {
		return pe, err
	}
	return pe, nil
}

// Push applies a push envelope from peer: only the hub this provider follows the
// partition at may push it. The entries it has not yet are stored, then offered
// to the local subscribers; the answer says where the copy stands. It is
// idempotent (entries already held are skipped).
func (c *Copies) Push(ctx context.Context, peer string, body []byte) ([]byte, error) {
	var p protocol.PartitionPush
	if err := p.UnmarshalBinary(body); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadPush, err)
	}
	c.mu.Lock()
	var hub string
	st, ok := c.state[string(p.Masked)]
	if ok {
		hub = st.hub
	}
	c.mu.Unlock()
	if !ok && c.cfg.Bus != nil {
		hub, ok = c.load(ctx, p.Masked)
	}
	if !ok || hub != peer {
		c.log.Warn("peer pushed a partition this provider does not follow at it; refused", "peer", peer,
			"masked", fmt.Sprintf("%x", p.Masked), "followed_at", hub)
		return nil, ErrNotYourPartition
	}
	next, done, err := c.cfg.Store.AppendCopy(ctx, p.Masked, p.Entries, func(applied []protocol.PushEntry) {
		c.offer(p.Masked, applied)
	})
	c.mu.Lock()
	st, ok = c.state[string(p.Masked)]
	if ok && err == nil {
		st.next = next
	}
	c.mu.Unlock()
	if err != nil && !ok {
		return nil, fmt.Errorf("%w: pruned meanwhile", ErrNotYourPartition)
	}
	if err != nil {
		return nil, fmt.Errorf("follower: push: %w", err)
	}
	return (&protocol.PushAnswer{Next: next, Done: done}).MarshalBinary()
}

// load reads a copy another node of this provider followed (a client of that
// node subscribed) from the store, so that this node, which runs the hub's link,
// takes its pushes; it returns the copy's hub.
func (c *Copies) load(ctx context.Context, masked []byte) (string, bool) {
	recs, err := c.cfg.Store.CopyRecords(ctx)
	if err != nil {
		c.log.Warn("follower: read the copies", "err", err)
		return "", false
	}
	for _, r := range recs {
		if string(r.Masked) != string(masked) {
			continue
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		st := c.state[string(masked)]
		if st == nil {
			st = &copyState{hub: r.Hub, digest: r.Digest, next: r.Next, usedAt: r.UsedAt, subscribed: true}
			c.state[string(masked)] = st
			if r.Digest != nil {
				c.masked[string(r.Digest)] = r.Masked
			}
		}
		return st.hub, true
	}
	return "", false
}

// offer hands committed entries to the local subscribers (Notify does not block),
// and tells the other nodes.
func (c *Copies) offer(masked []byte, applied []protocol.PushEntry) {
	if len(applied) == 0 {
		return
	}
	if c.cfg.Bus != nil {
		c.cfg.Bus.CopyCommitted(masked)
	}
	c.mu.Lock()
	sinks := make([]protocol.PartitionSink, 0, len(c.sinks[string(masked)]))
	for k := range c.sinks[string(masked)] {
		sinks = append(sinks, k.s)
	}
	c.mu.Unlock()
	if len(sinks) == 0 {
		return
	}
	for _, e := range applied {
		pe, err := entryOf(e)
		if err != nil {
			for _, s := range sinks {
				s.Refetch()
			}
			return
		}
		for _, s := range sinks {
			s.Notify(pe)
		}
	}
}
