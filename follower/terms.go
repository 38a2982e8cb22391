package follower

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/mimids/mimids/protocol"
)

// The hub's terms (docs/protocol.md §5.11): each hub hands this provider its
// provider-wide bans of this provider's users and its per-user rate limit in a
// terms envelope; the follower refuses a banned user's forwarded request
// (ErrBannedByHub) and an over-rate user's forwarded send or external join
// (ErrRateLimitedByHub) before it reaches the hub. Terms live in memory: the hub
// sends them again on every new link, so a restarted follower learns them anew.

// ErrBannedByHub refuses a request of a user the group's hub banned.
var ErrBannedByHub = protocol.NewError(protocol.CodePolicy, "follower: user banned by the group's hub")

// ErrRateLimitedByHub refuses a request over the rate limit the group's hub set.
var ErrRateLimitedByHub = protocol.NewError(protocol.CodeRateLimited, "follower: over the rate limit of the group's hub")

// Limiter is a per-key rate limiter (directory.TokenBuckets).
type Limiter interface {
	Allow(key string) bool
}

// NewLimiter makes a limiter of rate requests per second per key with bursts of
// burst; the provider wires directory.NewTokenBuckets.
type NewLimiter func(rate float64, burst int) Limiter

// HubTerms are the terms of one hub as applied.
type HubTerms struct {
	Rate   float64
	Burst  int
	Banned map[string]bool // user URIs of this provider's domain
}

// Terms holds the terms of every hub. It is safe for concurrent use.
type Terms struct {
	// Static after NewTerms.
	domain  string
	limiter NewLimiter
	log     *slog.Logger

	mu     sync.Mutex
	byHub  map[string]*hubTerms // Guarded by mu.
	warned map[string]bool      // hubs that sent foreign entries, logged once; Guarded by mu.
}

type hubTerms struct {
	HubTerms
	limit Limiter // nil without a rate
}

// NewTerms returns the terms book of provider domain; limiter makes the per-hub
// rate limiters.
func NewTerms(domain string, limiter NewLimiter, log *slog.Logger) *Terms {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Terms{domain: domain, limiter: limiter, log: log.With("part", "terms"),
		byHub: map[string]*hubTerms{}, warned: map[string]bool{}}
}

// Apply replaces hub's terms with the Terms in body and returns the TermsApplied
// answer. Entries for users of another domain are ignored (and logged once per
// hub): a hub's terms bind only this provider's own users.
func (t *Terms) Apply(_ context.Context, hub string, body []byte) ([]byte, error) {
	var in protocol.Terms
	if err := in.UnmarshalBinary(body); err != nil {
		return nil, fmt.Errorf("follower: terms from %s: %w", hub, err)
	}
	ht := &hubTerms{HubTerms: HubTerms{Rate: in.Rate(), Burst: int(in.Burst), Banned: make(map[string]bool, len(in.Banned))}}
	var ignored uint32
	for _, u := range in.Banned {
		if domain, user, client, err := protocol.ParseURI(u); err != nil || user == "" || client != "" || domain != t.domain {
			ignored++
			continue
		}
		ht.Banned[u] = true
	}
	t.mu.Lock()
	// Unchanged limits keep their buckets: new bans do not refill anyone.
	if old := t.byHub[hub]; old != nil && old.Rate == ht.Rate && old.Burst == ht.Burst {
		ht.limit = old.limit
	} else if ht.Rate > 0 && t.limiter != nil {
		ht.limit = t.limiter(ht.Rate, ht.Burst)
	}
	t.byHub[hub] = ht
	warn := ignored > 0 && !t.warned[hub]
	if warn {
		t.warned[hub] = true
	}
	t.mu.Unlock()
	if warn {
		t.log.Warn("hub sent terms for users of another domain; ignored", "hub", hub, "ignored", ignored)
	}
	t.log.Info("terms applied", "hub", hub, "rate", ht.Rate, "burst", ht.Burst, "banned", len(ht.Banned))
	applied := protocol.TermsApplied{RateMilli: in.RateMilli, Burst: in.Burst, Banned: uint32(len(ht.Banned)), Ignored: ignored}
	if ht.limit == nil {
		applied.RateMilli, applied.Burst = 0, 0
	}
	return applied.MarshalBinary()
}

// Of returns a copy of hub's terms; ok is false before the hub sent any.
func (t *Terms) Of(hub string) (HubTerms, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ht := t.byHub[hub]
	if ht == nil {
		return HubTerms{}, false
	}
	c := ht.HubTerms
	c.Banned = make(map[string]bool, len(ht.Banned))
	for u := range ht.Banned {
		c.Banned[u] = true
	}
	return c, true
}

// Check applies hub's terms to a request of method m by userURI (a client URI
// names its user): a banned user is refused every method, an over-rate user the
// methods that add to the log (send, external_join).
func (t *Terms) Check(hub string, m protocol.Method, userURI string) error {
	if t == nil {
		return nil
	}
	user := protocol.UserOf(userURI)
	t.mu.Lock()
	ht := t.byHub[hub]
	t.mu.Unlock()
	switch {
	case ht == nil:
		return nil
	case ht.Banned[user]:
		return fmt.Errorf("%w: %s at %s", ErrBannedByHub, user, hub)
	case ht.limit != nil && (m == protocol.MethodSend || m == protocol.MethodExternalJoin) && !ht.limit.Allow(user):
		return fmt.Errorf("%w: %s at %s (%g/s, burst %d)", ErrRateLimitedByHub, user, hub, ht.Rate, ht.Burst)
	}
	return nil
}
