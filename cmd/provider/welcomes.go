package provider

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/follower"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/protocol"
)

// Welcomes across providers (docs/protocol.md §5.9). The hub stores a Welcome for
// each other provider WelcomeData names; welcomeSender offers it to that provider
// (welcome_init), sends it for the refs the provider accepted (welcome) in the
// transaction that commits the answer, and removes it in the transaction that
// commits the provider's ack. The follower side is follower.Welcomes.
const (
	// welcomeInterval is how often the sender looks for stored Welcomes of peers.
	welcomeInterval = 250 * time.Millisecond
	// welcomeInFlight bounds the Welcomes offered to one peer and not yet answered.
	welcomeInFlight = 128
	// welcomeBatch is how many new Welcomes of one peer one pass offers at most.
	welcomeBatch = 32
)

// followerRefs answers the follower's served-ref question with the hub's
// (HubRouter): one record of what this provider served, for both.
type followerRefs struct{ r HubRouter }

func (f followerRefs) ServedClient(ctx context.Context, ref []byte) (int64, bool, error) {
	s, ok, err := f.r.ServedRef(ctx, ref)
	return s.ClientID, ok, err
}

// registerWelcomes installs both sides of the Welcome flow on the link layer.
func (p *Provider) registerWelcomes() {
	fw := follower.NewWelcomes(followerRefs{HubRouter{p.KPs}}, HubMailbox{p.Mailbox}, p.DB, p.Log)
	p.Federation.Handle(protocol.EnvelopeWelcomeInit, func(ctx context.Context, in *federation.Inbound) ([]byte, error) {
		return fw.Init(ctx, in.Peer, in.Body) // reads only: idempotent
	})
	p.Federation.HandleAtomic(protocol.EnvelopeWelcome, func(ctx context.Context, in *federation.Inbound) ([]byte, error) {
		return fw.Deliver(ctx, in.Peer, in.Body) // mailbox entries commit with the dedup record
	})
	p.welcomes = &welcomeSender{hub: p.Hub, links: p.Federation, db: p.DB, log: p.Log.With("part", "welcomes"),
		owns: p.owns, inflight: map[string]*peerWelcomes{}}
	p.Federation.OnAnswer(protocol.EnvelopeWelcomeInit, p.welcomes.initAnswered)
	p.Federation.OnAnswer(protocol.EnvelopeWelcome, p.welcomes.pushAnswered)
}

// welcomeSender offers the hub's stored Welcomes to the providers they are for.
type welcomeSender struct {
	// Static after registerWelcomes.
	hub   *hub.Hub
	links *federation.Links
	db    Store
	log   *slog.Logger
	// owns says whether this node runs the peer's link: only that node offers
	// the peer its Welcomes (two nodes scanning one queue would offer one twice).
	owns func(peer string) bool
	// inflight holds, per peer, the ids of the Welcomes with an envelope in the
	// peer's queue (welcome_init or welcome); a peer is missing until its queue was
	// scanned. Used by run's goroutine only.
	inflight map[string]*peerWelcomes
}

// peerWelcomes are the Welcomes in flight to one peer, on one outbound stream: a
// peer removed and added again has a new stream and an empty queue.
type peerWelcomes struct {
	stream uint64
	ids    map[int64]bool
}

func (s *welcomeSender) run(ctx context.Context) error {
	t := time.NewTicker(welcomeInterval)
	defer t.Stop()
	for {
		if err := s.drain(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("offer Welcomes to peers", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// drain offers each allow-listed peer its oldest stored Welcomes not offered yet.
// A failure with one peer is logged and does not hold up the others.
func (s *welcomeSender) drain(ctx context.Context) error {
	peers, err := s.db.Peers(ctx)
	if err != nil {
		return err
	}
	listed := make(map[string]bool, len(peers))
	for _, p := range peers {
		if !s.owns(p.Domain) {
			delete(s.inflight, p.Domain) // its owner changes the queue: scan it again when this node runs it
			continue
		}
		listed[p.Domain] = true
		if err := s.drainPeer(ctx, p); err != nil && ctx.Err() == nil {
			s.log.Warn("offer Welcomes", "peer", p.Domain, "err", err)
		}
	}
	for d := range s.inflight {
		if !listed[d] {
			delete(s.inflight, d) // removed with its queue
		}
	}
	return nil
}

// drainPeer queues a welcome_init for each stored Welcome of peer that has no
// envelope queued. Welcomes are offered oldest first and removed only when
// answered, so those in flight are always the oldest stored: listing as many plus
// a batch shows every one still stored, and one not listed is gone.
func (s *welcomeSender) drainPeer(ctx context.Context, p federation.Peer) error {
	peer := p.Domain
	inflight, err := s.queued(ctx, p)
	if err != nil {
		return err
	}
	ws, err := s.hub.PendingWelcomes(ctx, peer, len(inflight)+welcomeBatch)
	if err != nil {
		return err
	}
	listed := make(map[int64]bool, len(ws))
	for _, w := range ws {
		listed[w.ID] = true
	}
	for id := range inflight {
		if !listed[id] {
			delete(inflight, id)
		}
	}
	for _, w := range ws {
		if len(inflight) >= welcomeInFlight {
			break
		}
		if inflight[w.ID] {
			continue
		}
		body, err := (&protocol.WelcomeInit{WelcomeID: uint64(w.ID),
			Request: protocol.WelcomeInitRequest{KeyPackageRefs: w.KeyPackageRefs}}).MarshalBinary()
		if err != nil {
			return err
		}
		if _, err := s.links.Send(ctx, peer, protocol.EnvelopeWelcomeInit, body); err != nil {
			return err
		}
		inflight[w.ID] = true
	}
	return nil
}

// queued returns the Welcomes in flight to p, scanning the peer's outbound queue
// the first time (and when its stream changed): what a previous run queued is not
// queued again.
func (s *welcomeSender) queued(ctx context.Context, p federation.Peer) (map[int64]bool, error) {
	peer := p.Domain
	if pw, ok := s.inflight[peer]; ok && pw.stream == p.Stream {
		return pw.ids, nil
	}
	m := map[int64]bool{}
	var after uint64
	for {
		qs, err := s.db.Pending(ctx, peer, after, 256, 1<<20)
		if err != nil {
			return nil, err
		}
		if len(qs) == 0 {
			break
		}
		for _, q := range qs {
			after = q.ID
			if q.Type != protocol.EnvelopeWelcomeInit && q.Type != protocol.EnvelopeWelcome {
				continue
			}
			if id, ok := welcomeID(q.Body); ok {
				m[id] = true
			}
		}
	}
	s.inflight[peer] = &peerWelcomes{stream: p.Stream, ids: m}
	return m, nil
}

// welcomeID reads the welcome_id that starts both envelopes' bodies.
func welcomeID(body []byte) (int64, bool) {
	r := protocol.NewReader(body)
	id := r.U64("welcome_id")
	return int64(id), r.Err() == nil
}

// initAnswered sends the Welcome for the refs the peer accepted, in the
// transaction that commits the answer; a refusal removes the Welcome.
func (s *welcomeSender) initAnswered(ctx context.Context, a *federation.Answer) error {
	var q protocol.WelcomeInit
	if err := q.UnmarshalBinary(a.Sent); err != nil {
		s.log.Error("welcome_init we sent does not parse", "peer", a.Peer, "err", err)
		return nil
	}
	id := int64(q.WelcomeID)
	if a.Err != nil {
		s.log.Warn("peer refused a Welcome", "peer", a.Peer, "welcome_id", id, "code", a.Err.Code, "message", a.Err.Message)
		return s.remove(ctx, id)
	}
	var ans protocol.WelcomeInitAnswer
	if err := ans.UnmarshalBinary(a.Body); err != nil {
		s.log.Warn("peer's welcome_init answer does not parse; Welcome dropped", "peer", a.Peer, "welcome_id", id, "err", err)
		return s.remove(ctx, id)
	}
	// Only refs this Welcome named for the peer: the peer cannot add others.
	var accepted [][]byte
	for _, ref := range q.Request.KeyPackageRefs {
		for _, r := range ans.Accepted {
			if string(r) == string(ref) {
				accepted = append(accepted, ref)
				break
			}
		}
	}
	if n := len(q.Request.KeyPackageRefs) - len(accepted); n > 0 {
		s.log.Warn("peer refused KeyPackageRefs of a Welcome", "peer", a.Peer, "welcome_id", id,
			"refused", n, "of", len(q.Request.KeyPackageRefs))
	}
	if len(accepted) == 0 {
		return s.remove(ctx, id)
	}
	w, err := s.hub.RemoteWelcome(ctx, id)
	if errors.Is(err, hub.ErrNotFound) {
		return nil // removed meanwhile
	}
	if err != nil {
		return err
	}
	if w.Provider != a.Peer {
		s.log.Error("welcome_init answered by a peer it was not for", "peer", a.Peer, "for", w.Provider, "welcome_id", id)
		return nil
	}
	body, err := (&protocol.WelcomePush{WelcomeID: q.WelcomeID,
		Delivery: protocol.WelcomeDelivery{GroupID: w.GroupID, KeyPackageRefs: accepted, Welcome: w.Welcome}}).MarshalBinary()
	if err != nil {
		return err
	}
	_, err = s.links.Send(ctx, a.Peer, protocol.EnvelopeWelcome, body)
	if errors.Is(err, federation.ErrTooLarge) {
		s.log.Warn("Welcome too large for the link; dropped", "peer", a.Peer, "welcome_id", id, "bytes", len(body))
		return s.remove(ctx, id)
	}
	return err
}

// pushAnswered removes the Welcome once the peer answered its welcome envelope,
// in the transaction that commits the answer.
func (s *welcomeSender) pushAnswered(ctx context.Context, a *federation.Answer) error {
	id, ok := welcomeID(a.Sent)
	if !ok {
		return nil
	}
	if a.Err != nil {
		s.log.Warn("peer refused a Welcome", "peer", a.Peer, "welcome_id", id, "code", a.Err.Code, "message", a.Err.Message)
	}
	return s.remove(ctx, id)
}

func (s *welcomeSender) remove(ctx context.Context, id int64) error {
	if err := s.hub.WelcomeDelivered(ctx, id); err != nil && !errors.Is(err, hub.ErrNotFound) {
		return err
	}
	return nil
}
