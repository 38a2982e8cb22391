package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/trace"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// Sink receives a partition's entries as they are sequenced. Notify and
// Refetch must not block: a sink that cannot keep up drops what it was
// offered and refetches from the store by counter.
type Sink interface {
	// Notify offers a newly sequenced entry, or a terminated event. Entries
	// of one partition are offered in counter order.
	Notify(e Entry)
	// Refetch says entries may exist that were never offered (another
	// process wrote them): read from the store after the last counter seen.
	Refetch()
}

// Hub sequences the groups this provider hosts.
type Hub struct {
	// Static after construction.
	cfg     Config
	store   Store
	router  WelcomeRouter
	mailbox Mailbox
	log     *slog.Logger
	states  *stateCache
	groups  *groupCache
	metrics counters

	subMu   sync.RWMutex
	subs    map[string]map[Sink]struct{} // by masked key. Guarded by subMu.
	watches map[string]func()            // cancels of cfg.Bus's watches, by masked key; Guarded by subMu.
}

// counters are the hub's running totals.
type counters struct {
	sequenced, duplicates, refused, commits, forks, rebuilds, checked, unchecked, welcomesLocal, welcomesRemote, catchUps, rechecks atomic.Int64
}

// Stats is a snapshot of the hub's counters.
type Stats struct {
	Sequenced      int64 // messages sequenced
	Duplicates     int64 // retried requests answered from the log
	Refused        int64 // requests refused for bad input or policy
	Commits        int64 // partitions opened by commits
	Forks          int64 // commits sequenced to a partition that already had one
	Rebuilds       int64 // public states rebuilt from the store
	Checked        int64 // handshakes verified against a public state
	Unchecked      int64 // handshakes sequenced without a public state
	WelcomesLocal  int64 // Welcomes delivered to local mailboxes
	WelcomesRemote int64 // Welcomes stored for other providers
	CatchUps       int64 // partition states brought up to handshakes other nodes sequenced
	Rechecks       int64 // handshakes checked again: another node sequenced one to the partition meanwhile
	CachedStates   int   // partition states in memory
}

// New returns a Hub over store. router and mailbox route Welcomes to this
// provider's clients.
func New(cfg Config, store Store, router WelcomeRouter, mailbox Mailbox) (*Hub, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.applyDefaults()
	if store == nil || router == nil || mailbox == nil {
		return nil, errors.New("hub: store, router and mailbox are required")
	}
	h := &Hub{
		cfg: cfg, store: store, router: router, mailbox: mailbox, log: cfg.Logger,
		states: newStateCache(cfg.StateCacheSize),
		groups: &groupCache{m: map[string]mls.CipherSuite{}},
		subs:   make(map[string]map[Sink]struct{}),
	}
	if cfg.Bus != nil {
		h.watches = make(map[string]func())
	}
	return h, nil
}

// Stats returns the hub's counters.
func (h *Hub) Stats() Stats {
	h.states.mu.Lock()
	n := len(h.states.m)
	h.states.mu.Unlock()
	m := &h.metrics
	return Stats{Sequenced: m.sequenced.Load(), Duplicates: m.duplicates.Load(), Refused: m.refused.Load(),
		Commits: m.commits.Load(), Forks: m.forks.Load(), Rebuilds: m.rebuilds.Load(),
		Checked: m.checked.Load(), Unchecked: m.unchecked.Load(),
		WelcomesLocal: m.welcomesLocal.Load(), WelcomesRemote: m.welcomesRemote.Load(),
		CatchUps: m.catchUps.Load(), Rechecks: m.rechecks.Load(), CachedStates: n}
}

// Run retries local Welcome deliveries that failed (and those left by a
// crash between sequencing and delivery) until ctx ends.
func (h *Hub) Run(ctx context.Context) error {
	t := time.NewTicker(h.cfg.WelcomeRetry)
	defer t.Stop()
	for {
		if err := h.RedeliverWelcomes(ctx); err != nil && ctx.Err() == nil {
			h.log.Warn("hub: redeliver Welcomes", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Subscribe registers a live sink for a partition (by masked key) and
// returns its cancel function. The caller must have checked that the
// subscriber knows the partition key (PartitionByKey). Entries committed
// after Subscribe returns are offered to s; the sink should then Fetch from
// its counter to catch up, dropping duplicates by counter.
func (h *Hub) Subscribe(masked []byte, s Sink) (cancel func()) {
	key := string(masked)
	h.subMu.Lock()
	set := h.subs[key]
	if set == nil {
		set = make(map[Sink]struct{}, 1)
		h.subs[key] = set
		if h.cfg.Bus != nil {
			h.watches[key] = h.cfg.Bus.WatchPartition(masked)
		}
	}
	set[s] = struct{}{}
	h.subMu.Unlock()
	return func() {
		h.subMu.Lock()
		defer h.subMu.Unlock()
		if set := h.subs[key]; set != nil {
			delete(set, s)
			if len(set) == 0 {
				delete(h.subs, key)
				if cancel := h.watches[key]; cancel != nil {
					delete(h.watches, key)
					cancel()
				}
			}
		}
	}
}

// publish offers an entry this node committed to the partition's sinks and to
// the other nodes. It runs on the store's writer, in commit order.
func (h *Hub) publish(e Entry) {
	if trace.IsEnabled() { // docs/performance.md, "Latency budget"
		trace.Log(context.Background(), "mimids", "committed "+strconv.FormatUint(uint64(e.Counter), 10))
	}
	h.fanout(e)
	if h.cfg.Bus != nil {
		h.cfg.Bus.PartitionCommitted(e)
	}
}

// fanout offers a committed entry to this node's sinks of its partition.
func (h *Hub) fanout(e Entry) {
	h.subMu.RLock()
	defer h.subMu.RUnlock()
	for s := range h.subs[string(e.Masked)] {
		s.Notify(e)
	}
}

// Poke makes the sinks of a partition (nil: of every partition) refetch:
// call it when another process changed the log (termination by the CLI).
func (h *Hub) Poke(masked []byte) {
	h.subMu.RLock()
	defer h.subMu.RUnlock()
	if masked != nil {
		for s := range h.subs[string(masked)] {
			s.Refetch()
		}
		return
	}
	for _, set := range h.subs {
		for s := range set {
			s.Refetch()
		}
	}
}

// Fetch returns up to limit entries of a partition with counter > after
// (-1: from the start), within the receive byte limit.
func (h *Hub) Fetch(ctx context.Context, masked []byte, after int64, limit int) ([]Entry, error) {
	if limit <= 0 || limit > h.cfg.ReceiveMaxMessages {
		limit = h.cfg.ReceiveMaxMessages
	}
	es, err := h.store.Entries(ctx, masked, after, limit, h.cfg.ReceiveMaxBytes)
	if err != nil {
		return nil, fmt.Errorf("hub: fetch: %w", err)
	}
	return es, nil
}

// PartitionInfo describes a partition.
type PartitionInfo struct {
	Masked       []byte
	GroupID      []byte
	Parent       []byte
	OpenedBy     uint32
	Epoch        uint64
	Length       uint32 // messages sequenced: the next counter
	Terminated   bool
	TerminatedAt time.Time
	CreatedAt    time.Time
	HasGroupInfo bool
	Verified     bool // the hub verified the opening commit against the parent's public state
}

func infoOf(p Partition) PartitionInfo {
	return PartitionInfo{Masked: p.Masked, GroupID: p.GroupID, Parent: p.Parent, OpenedBy: p.OpenedBy,
		Epoch: p.Epoch, Length: p.Length, Terminated: p.Terminated, TerminatedAt: p.TerminatedAt,
		CreatedAt: p.CreatedAt, HasGroupInfo: p.GroupInfo != nil, Verified: p.Verified}
}

// Partition describes the partition with a masked key.
func (h *Hub) Partition(ctx context.Context, masked []byte) (PartitionInfo, error) {
	p, err := h.store.Partition(ctx, masked)
	if err != nil {
		return PartitionInfo{}, err
	}
	return infoOf(p), nil
}

// PartitionByKey finds the partition of a partition key: its masked key is
// the key's hash under one of the supported suites' hashes.
func (h *Hub) PartitionByKey(ctx context.Context, partitionKey []byte) (PartitionInfo, error) {
	if len(partitionKey) != protocol.PartitionKeySize {
		return PartitionInfo{}, fmt.Errorf("%w: partition key of %d bytes", ErrMalformed, len(partitionKey))
	}
	for _, s := range hashSuites() {
		p, err := h.store.Partition(ctx, s.Hash(partitionKey))
		if err == nil {
			return infoOf(p), nil
		}
		if !errors.Is(err, ErrUnknownPartition) {
			return PartitionInfo{}, err
		}
	}
	return PartitionInfo{}, ErrUnknownPartition
}

// Partitions lists a group's partitions in the order they were opened.
func (h *Hub) Partitions(ctx context.Context, groupID []byte) ([]PartitionInfo, error) {
	ps, err := h.store.Partitions(ctx, groupID)
	if err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, ErrUnknownGroup
	}
	out := make([]PartitionInfo, len(ps))
	for i, p := range ps {
		out[i] = infoOf(p)
	}
	return out, nil
}

// Groups lists hosted groups with ID greater than after, in ID order.
func (h *Hub) Groups(ctx context.Context, after []byte, limit int) ([]Group, error) {
	return h.store.Groups(ctx, after, limit)
}

// Terminate blocks a partition of a group (an admin action): later sends are
// refused with ErrTerminated, and subscribers get a terminated event.
// Terminating a terminated partition does nothing.
func (h *Hub) Terminate(ctx context.Context, groupID, masked []byte) error {
	p, err := h.store.Partition(ctx, masked)
	if err != nil {
		return err
	}
	if string(p.GroupID) != string(groupID) {
		return fmt.Errorf("%w: partition %x is not in group %x", ErrWrongPartition, masked, groupID)
	}
	if _, err := h.store.Terminate(ctx, masked, h.cfg.Now(), h.publish); err != nil {
		return fmt.Errorf("hub: terminate: %w", err)
	}
	h.log.Info("hub: partition terminated", "group_id", fmt.Sprintf("%x", groupID), "partition", fmt.Sprintf("%x", masked))
	return nil
}

// groupCache maps group IDs to cipher suites (immutable once created).
type groupCache struct {
	mu sync.RWMutex
	m  map[string]mls.CipherSuite // Guarded by mu.
}

const maxCachedGroups = 1 << 16

func (h *Hub) groupSuite(ctx context.Context, groupID []byte) (*mls.Suite, error) {
	h.groups.mu.RLock()
	cs, ok := h.groups.m[string(groupID)]
	h.groups.mu.RUnlock()
	if !ok {
		g, err := h.store.Group(ctx, groupID)
		if err != nil {
			return nil, err
		}
		cs = g.CipherSuite
		h.groups.mu.Lock()
		if len(h.groups.m) >= maxCachedGroups {
			clear(h.groups.m)
		}
		h.groups.m[string(groupID)] = cs
		h.groups.mu.Unlock()
	}
	return cs.Suite()
}

// hashSuites returns one supported suite per distinct hash function, for
// masking a partition key whose group is not known.
func hashSuites() []*mls.Suite {
	hashSuitesOnce.Do(func() {
		seen := map[int]bool{}
		for cs := mls.CipherSuite(1); cs <= 7; cs++ {
			s, err := cs.Suite()
			if err != nil || seen[s.HashSize()] {
				continue
			}
			seen[s.HashSize()] = true
			hashSuitesList = append(hashSuitesList, s)
		}
	})
	return hashSuitesList
}

var (
	hashSuitesOnce sync.Once
	hashSuitesList []*mls.Suite
)
