package federation

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mimids/mimids/protocol"
)

// peerState is everything about one allowed peer: its entry, its one link, the
// dialer's backoff, the recorded status, and the inbox state that dedups what the
// peer sends.
type peerState struct {
	// Static after construction.
	l      *Links
	domain string
	log    *slog.Logger

	stopDialer context.CancelFunc // set by startDialer under l.mu; read under l.mu

	mu      sync.Mutex
	peer    Peer          // the allow-list entry; Guarded by mu.
	cur     *link         // the link that is up, if any; Guarded by mu.
	changed chan struct{} // closed (and replaced) when cur or removed changes; Guarded by mu.
	removed bool          // Guarded by mu.
	backoff time.Duration // the last wait between dials; 0 after progress; Guarded by mu.
	status  PeerStatus    // Guarded by mu.
	httpc   *http.Client  // PeerHTTP's client, made on demand; Guarded by mu.

	statusMu sync.Mutex // orders status writes; never held with mu

	inStale atomic.Bool // the inbox state must be read again from the store

	// inMu serializes applying what the peer sends, across its links. It is held
	// while a handler runs: never take it with l.mu or mu held.
	inMu      sync.Mutex
	inLoaded  bool   // Guarded by inMu.
	inStream  uint64 // Guarded by inMu.
	inHighest uint64 // Guarded by inMu.
}

func newPeerState(l *Links, p Peer) *peerState {
	return &peerState{l: l, domain: p.Domain, peer: p, changed: make(chan struct{}),
		log:    l.log.With("peer", p.Domain),
		status: PeerStatus{Domain: p.Domain, State: StateAway, Since: time.Now()}}
}

func (ps *peerState) entry() Peer {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.peer
}

func (ps *peerState) snapshot() PeerStatus {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.status
}

// signal tells waiters that cur or removed changed. Call with mu held.
func (ps *peerState) signal() {
	close(ps.changed)
	ps.changed = make(chan struct{})
}

// update takes a new allow-list entry. A changed URL or trust closes the link, so
// that the next one is checked anew; a new stream (the peer was removed and added
// again: its queue and dedup records are gone) also forgets the inbox state.
func (ps *peerState) update(p Peer) {
	ps.mu.Lock()
	old := ps.peer
	ps.peer = p
	cur := ps.cur
	if old.URL != p.URL || string(old.CA) != string(p.CA) || string(old.Pin) != string(p.Pin) {
		ps.dropHTTP()
	}
	ps.mu.Unlock()
	if old.Stream != p.Stream {
		ps.inStale.Store(true) // not inMu: update runs under l.mu (lock order)
	}
	if cur != nil && entryChanged(old, p) {
		cur.c.Close(protocol.ClosePeerRemoved, "allow-list entry changed")
	}
}

// entryChanged reports whether p differs from old in what a link is checked
// against: the URL, the trust, the stream.
func entryChanged(old, p Peer) bool {
	return old.URL != p.URL || string(old.CA) != string(p.CA) || string(old.Pin) != string(p.Pin) || old.Stream != p.Stream
}

// stale reports whether the allow-list entry is no longer p (a link dialled with
// p must not stay up: update closes the link that is up, not one being dialled).
func (ps *peerState) stale(p Peer) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return entryChanged(p, ps.peer)
}

// remove ends everything of a peer taken off the allow-list. Call with l.mu held.
func (ps *peerState) remove() {
	if ps.stopDialer != nil {
		ps.stopDialer()
	}
	ps.mu.Lock()
	ps.removed = true
	cur := ps.cur
	ps.dropHTTP()
	ps.signal()
	ps.mu.Unlock()
	if cur != nil {
		cur.c.Close(protocol.ClosePeerRemoved, "removed from the allow-list")
	}
}

// shutdown stops the dialer; the link closes with Run's context.
func (ps *peerState) shutdown() {
	ps.l.mu.Lock()
	stop := ps.stopDialer
	ps.l.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// wake tells the link that is up that the queue has more.
func (ps *peerState) wake() {
	ps.mu.Lock()
	cur := ps.cur
	ps.mu.Unlock()
	if cur != nil {
		cur.wake()
	}
}

// attach makes lk the peer's link unless the link that is up wins over it. The
// rule (docs/protocol.md §5.2): of two links dialled by the same side, the newer
// wins; otherwise the one dialled by the provider whose domain sorts first wins,
// if it is alive: it must answer a ping within Config.ProbeTimeout, else it is
// dropped as stale (reason 4008, no close handshake) and lk takes its place. The loser is closed with 4020.
// It reports whether lk won. It may wait for the probe; call it before lk runs.
func (ps *peerState) attach(lk *link) bool {
	for range 3 { // a link that came while probing is probed in turn, a few times
		ps.mu.Lock()
		if ps.removed {
			ps.mu.Unlock()
			return false
		}
		old := ps.cur
		if old == nil || !ps.keeps(old, lk) {
			ps.install(lk) // unlocks
			if old != nil {
				old.c.Close(protocol.CloseDuplicateLink, "replaced by another link")
			}
			return true
		}
		ps.mu.Unlock()
		if ps.alive(old) {
			return false
		}
		ps.mu.Lock()
		if ps.cur != old || ps.removed {
			ps.mu.Unlock()
			continue
		}
		ps.install(lk) // unlocks
		ps.log.Warn("federation: the link that was up did not answer a probe; replaced by the peer's new link",
			"dialer", lk.dialer, "probe_timeout", ps.l.cfg.ProbeTimeout)
		old.c.Abort(protocol.CloseSlowConsumer, "stale: no answer to a probe")
		return true
	}
	return false
}

// keeps reports whether old, the link that is up, wins over lk by the rule of
// §5.2 (before the probe). Call with mu held.
func (ps *peerState) keeps(old, lk *link) bool {
	return old.dialer != lk.dialer && old.dialer == min(ps.l.cfg.Domain, ps.domain)
}

// install makes lk the link that is up. Call with mu held; it unlocks.
func (ps *peerState) install(lk *link) {
	ps.cur = lk
	ps.status.State, ps.status.Dialer, ps.status.Since, ps.status.Attempts = StateUp, lk.dialer, time.Now(), 0
	ps.signal()
	ps.mu.Unlock()
	ps.log.Info("federation link up", "dialer", lk.dialer)
	ps.recordStatus()
}

// alive pings old and reports whether it answered within Config.ProbeTimeout.
func (ps *peerState) alive(old *link) bool {
	ctx, cancel := context.WithTimeout(context.Background(), ps.l.cfg.ProbeTimeout)
	defer cancel()
	return old.c.Ping(ctx) == nil
}

// detach forgets lk once it ended, and records why.
func (ps *peerState) detach(lk *link, err error) {
	reason, _ := lk.c.Reason()
	ps.mu.Lock()
	if lk.progress.Load() {
		ps.backoff = 0
	}
	if ps.cur != lk {
		ps.mu.Unlock()
		return
	}
	ps.cur = nil
	ps.status.State, ps.status.Dialer, ps.status.Since = StateAway, "", time.Now()
	if reason.Code != 1000 {
		msg := "link closed: " + protocol.LinkCloseReason(int(reason.Code))
		if reason.Text != "" {
			msg += " (" + reason.Text + ")"
		}
		ps.setError(msg)
	}
	ps.signal()
	ps.mu.Unlock()
	ps.log.Info("federation link down", "reason", protocol.LinkCloseReason(int(reason.Code)), "detail", reason.Text, "err", err)
	ps.recordStatus()
}

// setError records the last error. Call with mu held.
func (ps *peerState) setError(msg string) {
	ps.status.LastError, ps.status.LastErrorAt = msg, time.Now()
}

// noteError records an error the peer reported about the link.
func (ps *peerState) noteError(msg string) {
	ps.mu.Lock()
	ps.setError(msg)
	ps.mu.Unlock()
}

// recordStatus writes the current status to the store for `mimids peer list`:
// only the node that runs the link does (Config.Owns), so the others do not
// overwrite its state with theirs.
func (ps *peerState) recordStatus() {
	if !ps.l.owns(ps.domain) {
		return
	}
	ps.statusMu.Lock()
	defer ps.statusMu.Unlock()
	ps.mu.Lock()
	st := ps.status
	ps.mu.Unlock()
	st.UpdatedAt = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ps.l.store.SetPeerStatus(ctx, st); err != nil {
		ps.log.Debug("federation: record link status", "err", err)
	}
}

func (ps *peerState) recordStopped() {
	ps.mu.Lock()
	ps.status.State, ps.status.Dialer, ps.status.Since = StateStopped, "", time.Now()
	ps.mu.Unlock()
	ps.recordStatus()
}

// dialLoop dials the peer whenever no link is up, with exponential backoff and
// jitter between attempts, until ctx ends or the peer is removed.
func (ps *peerState) dialLoop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for ctx.Err() == nil {
		if !ps.waitAway(ctx) {
			return
		}
		timer.Reset(ps.delay())
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		ps.mu.Lock()
		up, p := ps.cur != nil, ps.peer
		ps.mu.Unlock()
		if up {
			continue // the peer dialled us meanwhile
		}
		if !ps.l.owns(p.Domain) {
			// Another node of this provider runs the link: look again soon (no
			// backoff), so that a lease taken over is used at once.
			ps.mu.Lock()
			ps.backoff = 0
			ps.mu.Unlock()
			continue
		}
		ws, stream, err := ps.l.dial(ctx, p)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			ps.mu.Lock()
			ps.status.Attempts++
			ps.setError(err.Error())
			ps.mu.Unlock()
			ps.log.Debug("federation dial failed", "err", err)
			ps.recordStatus()
			continue
		}
		ps.l.serveLink(ps, ws, ps.l.cfg.Domain, stream, &p)
	}
}

// waitAway returns once no link is up; false if ctx ended or the peer was removed.
func (ps *peerState) waitAway(ctx context.Context) bool {
	for {
		ps.mu.Lock()
		up, removed, ch := ps.cur != nil, ps.removed, ps.changed
		ps.mu.Unlock()
		if removed || ctx.Err() != nil {
			return false
		}
		if !up {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		}
	}
}

// delay is the wait before the next dial: after a link that made progress (or at
// the start), a random wait below MinBackoff; then twice the previous wait, up to
// MaxBackoff, of which the second half is random ("equal jitter").
func (ps *peerState) delay() time.Duration {
	cfg := &ps.l.cfg
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.backoff == 0 {
		ps.backoff = cfg.MinBackoff / 2
		return rand.N(cfg.MinBackoff)
	}
	ps.backoff = min(max(2*ps.backoff, cfg.MinBackoff), cfg.MaxBackoff)
	return ps.backoff/2 + rand.N(ps.backoff/2+1)
}

// apply applies one envelope the peer sent, once: a retry gets the recorded reply.
// An error means the reply is not known (nothing was recorded): the link closes
// with 1013 and the peer sends the envelope again.
func (ps *peerState) apply(ctx context.Context, stream uint64, e *protocol.Envelope) (Reply, error) {
	ps.inMu.Lock()
	defer ps.inMu.Unlock()
	st := ps.l.store
	if ps.inStale.Swap(false) {
		ps.inLoaded = false
	}
	if !ps.inLoaded || ps.inStream != stream {
		s, h, err := st.InboxState(ctx, ps.domain)
		if err != nil {
			return Reply{}, err
		}
		if s != stream {
			if err := st.ResetInbox(ctx, ps.domain, stream); err != nil {
				return Reply{}, err
			}
			h = 0
			ps.log.Info("federation: the peer started a new stream", "stream", formatStream(stream))
		}
		ps.inLoaded, ps.inStream, ps.inHighest = true, stream, h
	}
	if e.ID <= ps.inHighest {
		rep, ok, err := st.Reply(ctx, ps.domain, e.ID)
		if err != nil {
			return Reply{}, err
		}
		if ok {
			ps.l.counters.dupes.Add(1)
			return rep, nil
		}
		return Reply{Code: protocol.CodeConflict, Body: fmt.Appendf(nil,
			"envelope %d is at or below the highest applied (%d) and its answer is no longer kept", e.ID, ps.inHighest)}, nil
	}
	in := &Inbound{Peer: ps.domain, ID: e.ID, Type: e.Type, Body: e.Body}
	fn, err := ps.l.handlerFor(ctx, in)
	if err != nil {
		return Reply{}, err
	}
	rep, err := st.Record(ctx, ps.domain, e.ID, fn)
	if err != nil {
		return Reply{}, err
	}
	ps.inHighest = e.ID
	ps.l.counters.applied.Add(1)
	return rep, nil
}

// ErrUnknownType answers an envelope type no handler is registered for.
var ErrUnknownType = protocol.NewError(protocol.CodeUnknownMethod, "federation: unknown envelope type")

// handlerFor returns what Record runs for in: an atomic handler itself, or the
// outcome of a plain handler run here, outside the transaction. An error is a
// plain handler's failure that is not a refusal.
func (l *Links) handlerFor(ctx context.Context, in *Inbound) (func(context.Context) ([]byte, error), error) {
	h, ok := l.handlers[in.Type]
	switch {
	case !ok:
		err := fmt.Errorf("%w 0x%04x", ErrUnknownType, uint16(in.Type))
		return func(context.Context) ([]byte, error) { return nil, err }, nil
	case h.atomic:
		return func(ctx context.Context) ([]byte, error) { return h.fn(ctx, in) }, nil
	}
	body, err := h.fn(ctx, in)
	if err != nil && !protocol.Refusal(err) {
		return nil, err
	}
	return func(context.Context) ([]byte, error) { return body, err }, nil
}
