package hub

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"

	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// partState is the hub's in-memory view of one partition.
type partState struct {
	masked string

	// mu serializes the handshakes of the partition (check, sequence,
	// apply), so the proposal cache follows sequence order, and loading.
	mu     sync.Mutex
	loaded atomic.Bool
	// Set once by the first load, before loaded; read-only afterwards.
	groupID []byte
	suite   *mls.Suite
	epoch   uint64
	pol     *policy
	// Guarded by mu.
	view             *mls.PublicGroup // nil: the hub has no public view
	privateProposals bool             // a PrivateMessage proposal was sequenced
	// seen is the counter after the last handshake that view reflects: the
	// handshakes from seen on (other nodes' since) are applied by catchUp.
	seen uint32

	// Guarded by stateCache.mu.
	refs int
	elem *list.Element
}

// stateCache keeps partition states, evicting the least recently used
// unreferenced ones beyond max.
type stateCache struct {
	max int

	mu  sync.Mutex
	m   map[string]*partState // Guarded by mu.
	lru *list.List            // of *partState, most recent first. Guarded by mu.
}

func newStateCache(max int) *stateCache {
	return &stateCache{max: max, m: make(map[string]*partState), lru: list.New()}
}

// acquire returns the state of a partition (possibly not loaded yet) and
// holds it in the cache until release.
func (c *stateCache) acquire(masked []byte) *partState {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps := c.m[string(masked)]
	if ps == nil {
		ps = &partState{masked: string(masked)}
		ps.elem = c.lru.PushFront(ps)
		c.m[ps.masked] = ps
	} else {
		c.lru.MoveToFront(ps.elem)
	}
	ps.refs++
	return ps
}

func (c *stateCache) release(ps *partState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ps.refs--
	if ps.refs == 0 && !ps.loaded.Load() {
		c.remove(ps) // a failed load: do not keep unknown keys
	}
	for e := c.lru.Back(); len(c.m) > c.max && e != nil; {
		prev := e.Prev()
		if old := e.Value.(*partState); old.refs == 0 {
			c.remove(old)
		}
		e = prev
	}
}

func (c *stateCache) remove(ps *partState) {
	if c.m[ps.masked] == ps {
		delete(c.m, ps.masked)
		c.lru.Remove(ps.elem)
	}
}

// install adds the loaded state of a new partition unless one is cached.
func (c *stateCache) install(ps *partState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[ps.masked] != nil {
		return
	}
	ps.elem = c.lru.PushFront(ps)
	c.m[ps.masked] = ps
	for e := c.lru.Back(); len(c.m) > c.max && e != nil; {
		prev := e.Prev()
		if old := e.Value.(*partState); old.refs == 0 {
			c.remove(old)
		}
		e = prev
	}
}

// newLoadedState builds the state of a partition the hub just opened.
func newLoadedState(masked, groupID []byte, suite *mls.Suite, epoch uint64, view *mls.PublicGroup) *partState {
	ps := &partState{masked: string(masked), groupID: groupID, suite: suite, epoch: epoch, view: view}
	if view != nil {
		ps.pol, _ = policyOf(view.Extensions()) // a malformed list was refused before
	}
	ps.loaded.Store(true)
	return ps
}

// state acquires the loaded state of a partition; the caller must release it.
func (h *Hub) state(ctx context.Context, masked []byte) (*partState, error) {
	ps := h.states.acquire(masked)
	if ps.loaded.Load() {
		return ps, nil
	}
	ps.mu.Lock()
	err := h.load(ctx, ps)
	ps.mu.Unlock()
	if err != nil {
		h.states.release(ps)
		return nil, err
	}
	return ps, nil
}

// load reads a partition and rebuilds its public state. Caller holds ps.mu.
func (h *Hub) load(ctx context.Context, ps *partState) error {
	if ps.loaded.Load() {
		return nil
	}
	rec, err := h.store.Partition(ctx, []byte(ps.masked))
	if err != nil {
		return err
	}
	g, err := h.store.Group(ctx, rec.GroupID)
	if err != nil {
		return err
	}
	suite, err := g.CipherSuite.Suite()
	if err != nil {
		return fmt.Errorf("hub: group suite: %w", err)
	}
	view, priv, seen, err := h.rebuild(ctx, rec)
	if err != nil {
		return err
	}
	if ps.groupID == nil { // first load: the immutable fields
		ps.groupID, ps.suite, ps.epoch = rec.GroupID, suite, rec.Epoch
		if view != nil {
			ps.pol, _ = policyOf(view.Extensions())
		}
	}
	ps.view, ps.privateProposals, ps.seen = view, priv, seen
	ps.loaded.Store(true)
	if view != nil {
		h.metrics.rebuilds.Add(1)
	}
	return nil
}

// invalidate drops a state whose view may have diverged from the store (a
// write failed after the view changed); the next use rebuilds it. Caller
// holds ps.mu.
func (h *Hub) invalidate(ps *partState) {
	ps.view, ps.privateProposals, ps.seen = nil, false, 0
	ps.loaded.Store(false)
}

// catchUp brings ps's view to the end of the partition's log: it applies the
// proposals that other nodes of this provider sequenced since ps.seen (commits
// do not change the partition's own state). Caller holds ps.mu, with ps loaded.
// Without a view there is nothing to check against and nothing to read.
func (h *Hub) catchUp(ctx context.Context, ps *partState) error {
	if ps.view == nil {
		return nil
	}
	hs, err := h.store.HandshakesFrom(ctx, []byte(ps.masked), int64(ps.seen))
	if err != nil {
		return fmt.Errorf("hub: catch up: %w", err)
	}
	if len(hs) == 0 {
		return nil
	}
	if replayProposals(ps.view, hs) {
		ps.privateProposals = true
	}
	ps.seen = hs[len(hs)-1].Counter + 1
	h.metrics.catchUps.Add(1)
	return nil
}

// maxRebuildChain bounds how many partitions a rebuild walks back to find
// one with a GroupInfo and tree.
const maxRebuildChain = 4096

// rebuild computes a partition's public state from the store: from the
// nearest partition at or above it that has its opening GroupInfo and tree,
// replaying each partition's proposals up to the commit that opened the
// next, then the target's proposals. It returns nil when the hub has no
// view (a PrivateMessage commit, or a commit that could not be verified,
// opened a partition without a usable GroupInfo and tree). seen is the counter
// after the target's last handshake.
func (h *Hub) rebuild(ctx context.Context, target Partition) (view *mls.PublicGroup, private bool, seen uint32, err error) {
	chain := []Partition{target}
	for cur := target; !hasOpening(cur); {
		if cur.Parent == nil || !cur.Verified || len(chain) > maxRebuildChain {
			return nil, false, 0, nil
		}
		parent, err := h.store.Partition(ctx, cur.Parent)
		if err != nil {
			return nil, false, 0, err
		}
		chain = append(chain, parent)
		cur = parent
	}
	view, err = viewFromOpening(chain[len(chain)-1], h.cfg.MLS)
	if err != nil {
		h.log.Warn("hub: stored GroupInfo does not build a public state", "partition", fmt.Sprintf("%x", chain[len(chain)-1].Masked), "err", err)
		return nil, false, 0, nil
	}
	for i := len(chain) - 1; ; i-- {
		before := int64(math.MaxUint32) + 1
		if i > 0 {
			before = int64(chain[i-1].OpenedBy) + 1
		}
		hs, err := h.store.Handshakes(ctx, chain[i].Masked, before)
		if err != nil {
			return nil, false, 0, err
		}
		if i == 0 {
			if len(hs) > 0 {
				seen = hs[len(hs)-1].Counter + 1
			}
			return view, replayProposals(view, hs), seen, nil
		}
		if len(hs) == 0 || hs[len(hs)-1].Counter != chain[i-1].OpenedBy {
			return nil, false, 0, fmt.Errorf("hub: rebuild: commit %d of partition %x missing", chain[i-1].OpenedBy, chain[i].Masked)
		}
		replayProposals(view, hs[:len(hs)-1])
		if view, err = replayCommit(view, hs[len(hs)-1]); err != nil {
			h.log.Warn("hub: stored commit does not apply", "partition", fmt.Sprintf("%x", chain[i].Masked), "seq", chain[i-1].OpenedBy, "err", err)
			return nil, false, 0, nil
		}
	}
}

func hasOpening(p Partition) bool { return p.GroupInfo != nil }

func viewFromOpening(p Partition, opts mls.Options) (*mls.PublicGroup, error) {
	m, err := mls.DecodeMLSMessage(p.GroupInfo)
	if err != nil {
		return nil, err
	}
	if m.GroupInfo == nil {
		return nil, protocol.ErrNotGroupInfo
	}
	var tree mls.RatchetTree
	if p.RatchetTree != nil {
		if tree, err = mls.DecodeRatchetTree(p.RatchetTree); err != nil {
			return nil, err
		}
	}
	return mls.NewPublicGroup(m.GroupInfo, tree, opts)
}

// replayProposals caches the public proposals of hs in view and reports
// whether any proposal was a PrivateMessage.
func replayProposals(view *mls.PublicGroup, hs []Entry) bool {
	private := false
	for _, e := range hs {
		if e.ContentType != mls.ContentTypeProposal {
			continue
		}
		if !e.Public {
			private = true
			continue
		}
		if m, err := mls.DecodeMLSMessage(e.Message); err == nil && m.PublicMessage != nil {
			view.ProcessProposal(m.PublicMessage) // it was checked when sequenced
		}
	}
	return private
}

func replayCommit(view *mls.PublicGroup, e Entry) (*mls.PublicGroup, error) {
	if !e.Public || e.ContentType != mls.ContentTypeCommit {
		return nil, errors.New("not a public commit")
	}
	m, err := mls.DecodeMLSMessage(e.Message)
	if err != nil {
		return nil, err
	}
	if m.PublicMessage == nil {
		return nil, errors.New("not a public commit")
	}
	next, _, err := view.ProcessCommit(m.PublicMessage)
	return next, err
}
