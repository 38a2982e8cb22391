package directory

// Limits on KeyPackage claims (docs/protocol.md §3.2, "Drain"): a bundle names a user at
// most once per client of the user, a bearer token claims one user's KeyPackages at a
// bounded rate, and the one-time KeyPackages of a user are served at a bounded rate
// whoever asks (beyond it, the last resort); the user's clients are told.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// ClaimLimits bound how fast the KeyPackages of one user are claimed.
type ClaimLimits struct {
	// TokenPerHour and TokenBurst are the token bucket of the claims one per-requester
	// bearer token makes of its user; over it a request is answered rate_limited. Zero
	// or less: no limit. (The shared token is not limited as a token: UserPerHour
	// applies to everyone.)
	TokenPerHour float64
	TokenBurst   int
	// UserPerHour and UserBurst are the token bucket of the claims of one user's one-time
	// KeyPackages, all requesters together; over it requests are served the user's last
	// resort instead (rate_limited if it has none) and the user's clients are told, at
	// most once an hour. Zero or less: no limit.
	UserPerHour float64
	UserBurst   int
}

func (l ClaimLimits) validate() []error {
	var errs []error
	if l.TokenPerHour > 0 && l.TokenBurst < 1 {
		errs = append(errs, fmt.Errorf("directory: keypackages: token claim burst %d under 1 with a rate limit", l.TokenBurst))
	}
	if l.UserPerHour > 0 && l.UserBurst < 1 {
		errs = append(errs, fmt.Errorf("directory: keypackages: user claim burst %d under 1 with a rate limit", l.UserBurst))
	}
	return errs
}

// maxClaimKeys bounds each claim limiter's memory (one bucket per active token and user,
// or user).
const maxClaimKeys = 100_000

// claimLimiter holds the claim limits' state, in memory: it is lost on restart, which
// only grants a fresh burst.
type claimLimiter struct {
	// Static after construction; each nil when its limit is off.
	token   *TokenBuckets // key: token ID and user ID
	user    *TokenBuckets // key: user ID
	notices *TokenBuckets // one claims_limited notice per user per hour
	logs    *TokenBuckets // one log line per limited token per hour
}

func newClaimLimiter(l ClaimLimits, now func() time.Time) *claimLimiter {
	hourly := func() *TokenBuckets { return NewTokenBuckets(1.0/3600, 1, maxClaimKeys, now) }
	cl := &claimLimiter{notices: hourly(), logs: hourly()}
	if l.TokenPerHour > 0 {
		cl.token = NewTokenBuckets(l.TokenPerHour/3600, l.TokenBurst, maxClaimKeys, now)
	}
	if l.UserPerHour > 0 {
		cl.user = NewTokenBuckets(l.UserPerHour/3600, l.UserBurst, maxClaimKeys, now)
	}
	return cl
}

// pendingClaim is a request of a bundle whose token and user checked out.
type pendingClaim struct {
	index int // in the bundle
	req   ClaimRequest
	token DiscoveryToken
	user  User
}

type repeatKey struct {
	user    int64
	version mls.ProtocolVersion
	suite   mls.CipherSuite
}

// checkRepeats refuses a bundle that names a user, version and suite more often than
// the user has active clients (at least once is always allowed): a requester adding a
// user to a group needs one KeyPackage per client, and the store serves each from a
// distinct client.
func (k *KeyPackages) checkRepeats(ctx context.Context, pend []pendingClaim) error {
	counts := make(map[repeatKey]int, len(pend))
	for _, pc := range pend {
		counts[repeatKey{pc.user.ID, pc.req.Version, pc.req.CipherSuite}]++
	}
	clients := map[int64]int{}
	for _, pc := range pend {
		n := counts[repeatKey{pc.user.ID, pc.req.Version, pc.req.CipherSuite}]
		if n <= 1 {
			continue
		}
		c, ok := clients[pc.user.ID]
		if !ok {
			cs, err := k.dir.store.ListClients(ctx, pc.user.Name)
			if err != nil {
				return fmt.Errorf("directory: keypackages: clients of %s: %w", pc.user.Name, err)
			}
			for _, cl := range cs {
				if !cl.Revoked() {
					c++
				}
			}
			clients[pc.user.ID] = c
		}
		if n > max(c, 1) {
			return fmt.Errorf("%w: %d requests for %s with suite %d, at most one per client of the user",
				ErrBundleRepeats, n, k.dir.UserURI(pc.user.Name), uint16(pc.req.CipherSuite))
		}
	}
	return nil
}

// limit applies the claim limits to the pending claims: a token over its limit gets
// rate_limited (in results), a user over its limit is served last resorts. It returns
// the claims to make and their indexes in the bundle.
func (k *KeyPackages) limit(ctx context.Context, pend []pendingClaim, results []protocol.KeyPackageResult) ([]ClaimRequest, []int) {
	claims := make([]ClaimRequest, 0, len(pend))
	index := make([]int, 0, len(pend))
	for _, pc := range pend {
		if l := k.limits.token; l != nil && pc.token.Policy == TokenPerRequester &&
			!l.Allow(strconv.FormatInt(pc.token.ID, 10)+"/"+strconv.FormatInt(pc.user.ID, 10)) {
			results[pc.index] = k.failed(fmt.Errorf("%w: bearer token over its claim limit", ErrRateLimited))
			if k.limits.logs.Allow(strconv.FormatInt(pc.token.ID, 10)) {
				k.log.Warn("bearer token over its KeyPackage claim limit; revoke it with mimids tokens revoke",
					"token_id", pc.token.ID, "user", pc.user.Name)
			}
			continue
		}
		cr := pc.req
		if l := k.limits.user; l != nil && !l.Allow(strconv.FormatInt(pc.user.ID, 10)) {
			cr.LastResortOnly = true
			if k.limits.notices.Allow(strconv.FormatInt(pc.user.ID, 10)) {
				k.log.Warn("one-time KeyPackages of a user claimed over the limit; serving last resorts", "user", pc.user.Name)
				k.notifyExhausted(ctx, mailbox.Target{UserID: pc.user.ID}, cr.CipherSuite, protocol.ExhaustedClaimsLimited)
			}
		}
		claims = append(claims, cr)
		index = append(index, pc.index)
	}
	return claims, index
}

// notifyExhausted queues a key_packages_exhausted notice; it reports whether it was
// queued.
func (k *KeyPackages) notifyExhausted(ctx context.Context, t mailbox.Target, suite mls.CipherSuite, reason protocol.ExhaustedReason) bool {
	ctx = context.WithoutCancel(ctx)
	payload, _ := protocol.KeyPackagesExhausted{CipherSuite: suite, Reason: reason}.MarshalBinary()
	_, err := k.notify.Enqueue(ctx, t, uint16(protocol.KindKeyPackagesExhausted), payload)
	if err != nil {
		k.log.Warn("key_packages_exhausted notice not queued", "client_id", t.ClientID, "user_id", t.UserID,
			"reason", reason.String(), "err", err)
		return false
	}
	if k.cfg.Metrics.ExhaustedNotices != nil {
		k.cfg.Metrics.ExhaustedNotices(reason)
	}
	return true
}

// lastResortServed tells a client that its last resort was served because its one-time
// KeyPackages of the suite ran out; if that cannot be queued the store's mark is
// cleared so that a later claim tries again.
func (k *KeyPackages) lastResortServed(ctx context.Context, c Claim) {
	kp := c.KeyPackage
	if k.notifyExhausted(ctx, mailbox.Target{ClientID: kp.ClientID}, kp.CipherSuite, protocol.ExhaustedLastResortServed) {
		return
	}
	if err := k.store.ClearLowStock(context.WithoutCancel(ctx), kp.ClientID, kp.CipherSuite); err != nil {
		k.log.Error("exhausted mark not cleared", "client_id", kp.ClientID, "err", err)
	}
}

// limitedResult turns the answer to a LastResortOnly claim that found no last resort
// into rate_limited: one-time KeyPackages may be left, but not for now.
func limitedResult(cr ClaimRequest, err error) error {
	if cr.LastResortOnly && errors.Is(err, ErrNoKeyPackage) {
		return fmt.Errorf("%w: the user's KeyPackages are claimed too fast", ErrRateLimited)
	}
	return err
}
