package follower

import (
	"context"
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
	// FollowCopy records that hub hosts the partition with masked key masked,
	// unless a hub is recorded, and returns the recorded hub.
	FollowCopy(ctx context.Context, masked []byte, hub string) (recorded string, err error)
	// CopyHubs returns every followed partition's hub, by masked key.
	CopyHubs(ctx context.Context) (map[string]string, error)
	// AppendCopy stores the entries from the copy's next counter on (earlier ones
	// are already held; a gap stops the append) and returns what it stored and
	// where the copy stands. after runs once they are committed, in commit order.
	AppendCopy(ctx context.Context, masked []byte, entries []protocol.PushEntry, after func(applied []protocol.PushEntry)) (next uint32, done bool, err error)
	// FetchCopy returns up to limit entries with counter > after (-1: from the start).
	FetchCopy(ctx context.Context, masked []byte, after int64, limit int) ([]protocol.PushEntry, error)
}

// ErrNotYourPartition refuses a push from a peer that is not the hub this
// provider follows the partition at (or for a partition it does not follow): a
// hub can push only partitions of groups it hosts.
var ErrNotYourPartition = protocol.NewError(protocol.CodeUnauthorized, "follower: push for a partition not followed at this peer")

// ErrBadPush refuses a push envelope that does not parse.
var ErrBadPush = protocol.NewError(protocol.CodeMalformed, "follower: malformed push envelope")

// Copies serves partitions hosted elsewhere from their local copies. It
// implements the gateway's Partitions for them (Subscribe, Fetch, Masked) and
// Follows tells which masked keys are its.
type Copies struct {
	// Static after NewCopies.
	store   CopyStore
	link    Link
	routes  Routes
	timeout time.Duration
	log     *slog.Logger

	mu     sync.Mutex
	hubs   map[string]string                 // masked key -> hub; Guarded by mu.
	masked map[string][]byte                 // KeyDigest -> masked key, learned in this process; Guarded by mu.
	sinks  map[string]map[*copySink]struct{} // Guarded by mu.
}

type copySink struct{ s protocol.PartitionSink }

// NewCopies loads the followed partitions from store.
func NewCopies(ctx context.Context, store CopyStore, link Link, routes Routes, timeout time.Duration, log *slog.Logger) (*Copies, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	hubs, err := store.CopyHubs(ctx)
	if err != nil {
		return nil, fmt.Errorf("follower: copies: %w", err)
	}
	return &Copies{store: store, link: link, routes: routes, timeout: timeout, log: log.With("part", "copies"),
		hubs: hubs, masked: make(map[string][]byte), sinks: make(map[string]map[*copySink]struct{})}, nil
}

// Follows reports whether masked is a partition this provider follows elsewhere.
func (c *Copies) Follows(masked []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.hubs[string(masked)]
	return ok
}

// Masked subscribes at the partition's hub (known from the routes, §5.10) from
// where the local copy stands, and returns the masked key the hub answered.
func (c *Copies) Masked(ctx context.Context, partitionKey []byte) ([]byte, error) {
	if c.link == nil || c.routes == nil {
		return nil, ErrUnknownGroup
	}
	hub, ok, err := c.routes.PartitionHub(ctx, KeyDigest(partitionKey))
	if err != nil {
		return nil, fmt.Errorf("follower: subscribe: %w", err)
	}
	if !ok {
		return nil, ErrUnknownGroup
	}
	// The hub starts a new subscription from 0, keeps an existing one where it
	// stands, and continues from where each push's answer says the copy stands.
	// A push may arrive before the copy is recorded here and be refused: the hub
	// then waits for the next subscribe, so a partition seen for the first time is
	// subscribed twice.
	digest := KeyDigest(partitionKey)
	c.mu.Lock()
	known := c.masked[string(digest)]
	c.mu.Unlock()
	masked, err := c.subscribeAt(ctx, hub, partitionKey)
	if err != nil || string(known) == string(masked) {
		return masked, err
	}
	recorded, err := c.store.FollowCopy(ctx, masked, hub)
	if err != nil {
		return nil, fmt.Errorf("follower: subscribe: %w", err)
	}
	if recorded != hub {
		c.log.Warn("partition followed at another hub; subscription refused", "hub", hub, "recorded", recorded)
		return nil, ErrUnknownGroup
	}
	c.mu.Lock()
	c.hubs[string(masked)] = hub
	c.masked[string(digest)] = masked
	c.mu.Unlock()
	if _, err := c.subscribeAt(ctx, hub, partitionKey); err != nil {
		return nil, err
	}
	return masked, nil
}

func (c *Copies) subscribeAt(ctx context.Context, hub string, pk []byte) ([]byte, error) {
	body, err := (&protocol.PartitionSubscribe{PartitionKey: pk}).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("follower: subscribe: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	out, err := c.link.Call(cctx, hub, protocol.EnvelopeSubscribe, body)
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
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.sinks[string(masked)], k)
		if len(c.sinks[string(masked)]) == 0 {
			delete(c.sinks, string(masked))
		}
		c.mu.Unlock()
	}
}

// Fetch reads the local copy.
func (c *Copies) Fetch(ctx context.Context, masked []byte, after int64, limit int) ([]protocol.PartitionEntry, error) {
	es, err := c.store.FetchCopy(ctx, masked, after, limit)
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
	hub, ok := c.hubs[string(p.Masked)]
	c.mu.Unlock()
	if !ok || hub != peer {
		c.log.Warn("peer pushed a partition this provider does not follow at it; refused", "peer", peer,
			"masked", fmt.Sprintf("%x", p.Masked), "followed_at", hub)
		return nil, ErrNotYourPartition
	}
	next, done, err := c.store.AppendCopy(ctx, p.Masked, p.Entries, func(applied []protocol.PushEntry) {
		c.offer(p.Masked, applied)
	})
	if err != nil {
		return nil, fmt.Errorf("follower: push: %w", err)
	}
	return (&protocol.PushAnswer{Next: next, Done: done}).MarshalBinary()
}

// offer hands committed entries to the local subscribers (Notify does not block).
func (c *Copies) offer(masked []byte, applied []protocol.PushEntry) {
	if len(applied) == 0 {
		return
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
