package provider

import (
	"context"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/follower"
	"github.com/mimids/mimids/protocol"
)

// Policy across providers (docs/protocol.md §5.11). As a hub, this provider hands
// each peer its terms for the peer's users: its provider-wide bans of them and its
// per-user rate limit (hub.rate_per_second, hub.rate_burst). termsSender sends
// them when a link to the peer comes up and whenever they change (a ban or unban
// through this process at once, one made by the admin CLI from another process
// within termsInterval). As a follower, follower.Terms enforces each hub's terms
// before forwarding.
const (
	// termsInterval is how often the sender reads the bans for changes.
	termsInterval = time.Second
	// termsMaxKeys bounds the buckets of one hub's rate limit at a follower.
	termsMaxKeys = 100_000
)

// newTermsBook makes the follower's book of hubs' terms, limited with
// directory.TokenBuckets.
func (p *Provider) newTermsBook() *follower.Terms {
	p.Terms = follower.NewTerms(p.Config.Domain, func(rate float64, burst int) follower.Limiter {
		return directory.NewTokenBuckets(rate, burst, termsMaxKeys, nil)
	}, p.Log)
	return p.Terms
}

// registerTerms installs both sides of the terms flow on the link layer.
func (p *Provider) registerTerms() {
	book := p.Terms
	if book == nil {
		book = p.newTermsBook()
	}
	// Terms replace the previous ones of the same hub, in id order: idempotent.
	p.Federation.Handle(protocol.EnvelopeTerms, func(ctx context.Context, in *federation.Inbound) ([]byte, error) {
		return book.Apply(ctx, in.Peer, in.Body)
	})
	rate := max(p.Config.Hub.RatePerSecond, 0)
	p.terms = &termsSender{links: p.Federation, policy: p.Policy, db: p.DB, log: p.Log.With("part", "terms"),
		rateMilli: uint32(min(math.Round(rate*protocol.RateMilliUnit), math.MaxUint32)), burst: uint32(max(p.Config.Hub.RateBurst, 0)),
		wake: make(chan struct{}, 1), sent: map[string]sentTerms{}, applied: map[string]protocol.TermsApplied{},
		queued: map[string]uint64{}}
	if p.terms.rateMilli == 0 {
		p.terms.burst = 0
	}
	p.Federation.OnAnswer(protocol.EnvelopeTerms, p.terms.answered)
}

// termsChanged wakes the terms sender (directory.PolicyConfig.Changed).
func (p *Provider) termsChanged() {
	if p.terms != nil {
		p.terms.poke()
	}
}

// TermsApplied is what peer last answered to this provider's terms.
func (p *Provider) TermsApplied(peer string) (protocol.TermsApplied, bool) {
	if p.terms == nil {
		return protocol.TermsApplied{}, false
	}
	p.terms.mu.Lock()
	defer p.terms.mu.Unlock()
	a, ok := p.terms.applied[peer]
	return a, ok
}

// termsSender sends this provider's terms to its peers.
type termsSender struct {
	// Static after registerTerms.
	links     *federation.Links
	policy    *directory.Policy
	db        Store
	log       *slog.Logger
	rateMilli uint32
	burst     uint32
	wake      chan struct{}

	mu      sync.Mutex
	sent    map[string]sentTerms             // by peer: the last terms sent; Guarded by mu.
	applied map[string]protocol.TermsApplied // by peer: its last answer; Guarded by mu.
	queued  map[string]uint64                // by peer: the id of the last terms sent; Guarded by mu.
}

// sentTerms is what was sent to a peer, on which link.
type sentTerms struct {
	body string
	link time.Time // the Since of the link that was up
}

func (s *termsSender) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run sends terms until ctx ends.
func (s *termsSender) run(ctx context.Context) error {
	t := time.NewTicker(termsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-t.C:
		}
		if err := s.pass(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("terms not sent", "err", err)
		}
	}
}

// pass sends each peer whose link is up its terms, unless that link already has
// them.
func (s *termsSender) pass(ctx context.Context) error {
	bans, err := s.policy.ListBans(ctx)
	if err != nil {
		return err
	}
	peers, err := s.db.Peers(ctx)
	if err != nil {
		return err
	}
	for _, peer := range peers {
		st, ok := s.links.Status(peer.Domain)
		if !ok || st.State != federation.StateUp {
			continue
		}
		body, err := s.termsFor(peer.Domain, bans)
		if err != nil {
			return err
		}
		now := sentTerms{body: string(body), link: st.Since}
		s.mu.Lock()
		last, id := s.sent[peer.Domain], s.queued[peer.Domain]
		s.mu.Unlock()
		skip := last == now
		if !skip && last.body == now.body {
			// The same terms still unanswered in the queue go out on this link too: a
			// link that keeps breaking before the peer answers (a slow peer) must not
			// add an envelope each time it comes up.
			if skip, err = s.stillQueued(ctx, peer.Domain, id, body); err != nil {
				return err
			}
		}
		if skip {
			s.mu.Lock()
			s.sent[peer.Domain] = now
			s.mu.Unlock()
			continue
		}
		id, err = s.links.Send(ctx, peer.Domain, protocol.EnvelopeTerms, body)
		if err != nil {
			return err
		}
		s.mu.Lock()
		s.sent[peer.Domain], s.queued[peer.Domain] = now, id
		s.mu.Unlock()
	}
	return nil
}

// stillQueued reports whether the envelope id of peer's queue is still there,
// unanswered, with these terms (an id of a queue that was dropped, the peer
// removed and added again, may name another envelope now).
func (s *termsSender) stillQueued(ctx context.Context, peer string, id uint64, body []byte) (bool, error) {
	if id == 0 {
		return false, nil
	}
	qs, err := s.db.Pending(ctx, peer, id-1, 1, len(body)+1)
	if err != nil {
		return false, err
	}
	return len(qs) == 1 && qs[0].ID == id && qs[0].Type == protocol.EnvelopeTerms && string(qs[0].Body) == string(body), nil
}

// termsFor encodes the terms for peer: the bans of users of its domain, sorted,
// at most protocol.MaxTermsBans.
func (s *termsSender) termsFor(peer string, bans []directory.Ban) ([]byte, error) {
	t := protocol.Terms{RateMilli: s.rateMilli, Burst: s.burst}
	for _, b := range bans {
		if domain, user, client, err := protocol.ParseURI(b.UserURI); err == nil && user != "" && client == "" && domain == peer {
			t.Banned = append(t.Banned, b.UserURI)
		}
	}
	slices.Sort(t.Banned)
	if len(t.Banned) > protocol.MaxTermsBans {
		s.log.Warn("more bans of a peer's users than one terms envelope holds; the first are sent",
			"peer", peer, "bans", len(t.Banned), "sent", protocol.MaxTermsBans)
		t.Banned = t.Banned[:protocol.MaxTermsBans]
	}
	return t.MarshalBinary()
}

// answered records what a peer applied (it runs in the store transaction that
// removes the envelope from the queue; memory only here).
func (s *termsSender) answered(_ context.Context, a *federation.Answer) error {
	if a.Err != nil {
		s.log.Warn("peer refused this provider's terms", "peer", a.Peer, "code", a.Err.Code.String(), "err", a.Err.Message)
		return nil
	}
	var ta protocol.TermsApplied
	if err := ta.UnmarshalBinary(a.Body); err != nil {
		s.log.Warn("peer answered terms with garbage", "peer", a.Peer, "err", err)
		return nil
	}
	if ta.Ignored > 0 || ta.RateMilli != s.rateMilli {
		s.log.Warn("peer did not apply all of this provider's terms", "peer", a.Peer,
			"rate_milli", ta.RateMilli, "burst", ta.Burst, "banned", ta.Banned, "ignored", ta.Ignored)
	}
	s.mu.Lock()
	s.applied[a.Peer] = ta
	s.mu.Unlock()
	return nil
}
