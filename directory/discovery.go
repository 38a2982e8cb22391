package directory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mimids/mimids/protocol"
)

// TokenPolicy says how discovery makes bearer tokens.
type TokenPolicy string

const (
	// TokenShared: one long-lived token for the whole provider, made on first use and
	// handed to every requester until the admin revokes it (or it expires, if
	// DiscoveryConfig.SharedTokenTTL is set); the next discovery then makes a new one.
	// The store keeps which token is the shared one (one row), not the token itself.
	TokenShared TokenPolicy = "shared"
	// TokenPerRequester: every discovery call makes a new token, bound to the user it
	// was asked for and valid for DiscoveryConfig.TokenTTL. Nothing is stored: the token
	// carries its user, times and a random ID under the provider's MAC, so an abusive
	// requester's token can be revoked alone by its ID.
	TokenPerRequester TokenPolicy = "per_requester"
)

// DiscoveryToken is what a bearer token says (docs/protocol.md §3.2). The provider
// keeps no record of the tokens it issues: a token is checked by its MAC, its expiry
// and the revocation list.
type DiscoveryToken struct {
	ID        int64 // random; names the token in the revocation list and in logs
	SecretID  int64 // the secret that signed it
	Policy    TokenPolicy
	UserID    int64     // per_requester: the user it is valid for; 0 for shared
	UserName  string    // per_requester: that user's name (CheckToken fills it in)
	IssuedAt  time.Time // millisecond precision
	ExpiresAt time.Time // zero: never
}

// Expired reports whether the token has expired at now.
func (t DiscoveryToken) Expired(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}

// TokenRevocation is an entry of the revocation list: one token, by ID.
type TokenRevocation struct {
	TokenID   int64
	RevokedAt time.Time
	Until     time.Time // when the entry may go (the token has expired by then); zero: kept
}

// TokenCutoff revokes every token of a user issued before a time.
type TokenCutoff struct {
	UserID   int64  // 0: the tokens of every user, the shared token included
	UserName string // empty for 0 (or a user deleted since)
	Before   time.Time
}

// Revocations is the revocation list: it holds only what the admin revoked, so it
// stays small (entries by ID go when their token expires; one cutoff per user at most).
type Revocations struct {
	Tokens  []TokenRevocation
	Cutoffs []TokenCutoff
}

// DiscoveryStore is what discovery needs from storage: the secrets that sign tokens,
// the shared token's identity and the revocation list; nothing per token issued.
type DiscoveryStore interface {
	// DiscoverySecrets returns every secret, newest first, retired ones included. On a
	// store that has none it stores fresh first (made at now); with fresh nil it only
	// reads.
	DiscoverySecrets(ctx context.Context, fresh []byte, now time.Time) ([]DiscoverySecret, error)
	// AddDiscoverySecret stores secret as the newest (it signs new tokens); with
	// retireOthers every other secret is retired at now and a shared token signed by
	// one stops being the shared token.
	AddDiscoverySecret(ctx context.Context, secret []byte, retireOthers bool, now time.Time) (DiscoverySecret, error)
	// SharedDiscoveryToken returns the shared token if there is one that has not
	// expired at now; otherwise it stores candidate as the shared token and returns it
	// (concurrent callers get the same token). A candidate with ID 0 is not stored:
	// ErrNotFound then.
	SharedDiscoveryToken(ctx context.Context, candidate DiscoveryToken, now time.Time) (DiscoveryToken, error)
	// RevokeDiscoveryToken puts a token ID on the revocation list until until (zero:
	// kept); revoking again keeps the first time. If the ID is the shared token's, the
	// entry lasts as long as that token and it stops being the shared token.
	RevokeDiscoveryToken(ctx context.Context, id int64, until, at time.Time) (TokenRevocation, error)
	// RevokeDiscoveryTokensBefore revokes every token of the user (0: of every user,
	// and the shared token) issued before at; a later cutoff replaces an earlier one.
	RevokeDiscoveryTokensBefore(ctx context.Context, userID int64, at time.Time) (TokenCutoff, error)
	// DiscoveryRevocations returns the revocation list as it stands at now (entries
	// whose Until has passed are left out).
	DiscoveryRevocations(ctx context.Context, now time.Time) (Revocations, error)
}

// DiscoveryConfig configures discovery.
type DiscoveryConfig struct {
	// Policy is TokenShared or TokenPerRequester (default).
	Policy TokenPolicy
	// TokenTTL is how long a per-requester token is valid (default 30 days).
	TokenTTL time.Duration
	// SharedTokenTTL is how long a shared token is valid; 0 (default): until revoked.
	SharedTokenTTL time.Duration
	// RatePerSource and BurstPerSource are the token bucket of each source's discovery
	// requests (the source as the caller of Discover names it: a client of our relay, or
	// the address of a peer's relay). A rate of zero or less: no limit.
	RatePerSource  float64
	BurstPerSource int
	// Clock is the time source; nil: time.Now. For tests.
	Clock func() time.Time
}

// MaxRequesterLen bounds the source label given to Discover.
const MaxRequesterLen = 255

// maxDiscoverySources bounds the rate limiter's memory (one bucket per active source).
const maxDiscoverySources = 100_000

func (c *DiscoveryConfig) defaults() {
	if c.Policy == "" {
		c.Policy = TokenPerRequester
	}
	if c.TokenTTL == 0 {
		c.TokenTTL = 30 * 24 * time.Hour
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Validate reports every problem of the configuration, defaults applied.
func (c DiscoveryConfig) Validate() error {
	c.defaults()
	var errs []error
	if c.Policy != TokenShared && c.Policy != TokenPerRequester {
		errs = append(errs, fmt.Errorf("directory: discovery: token policy must be %q or %q, not %q", TokenShared, TokenPerRequester, c.Policy))
	}
	if c.TokenTTL < time.Minute {
		errs = append(errs, fmt.Errorf("directory: discovery: token TTL %s is under a minute", c.TokenTTL))
	}
	if c.SharedTokenTTL < 0 || (c.SharedTokenTTL > 0 && c.SharedTokenTTL < time.Minute) {
		errs = append(errs, fmt.Errorf("directory: discovery: shared token TTL %s must be 0 (never expires) or at least a minute", c.SharedTokenTTL))
	}
	if c.RatePerSource > 0 && c.BurstPerSource < 1 {
		errs = append(errs, fmt.Errorf("directory: discovery: burst per source %d under 1 with a rate limit", c.BurstPerSource))
	}
	return errors.Join(errs...)
}

// ChangeDiscovery tells a running server that the admin CLI rotated the token secret
// or revoked tokens: it reloads them.
const ChangeDiscovery = "discovery_tokens"

// Discovery answers discovery requests for this provider's users with bearer tokens and
// checks those tokens when KeyPackages are fetched.
type Discovery struct {
	// Static after construction.
	dir    *Directory
	store  DiscoveryStore
	cfg    DiscoveryConfig
	limits *TokenBuckets // nil: no limit

	loadMu sync.Mutex                 // serializes Reload
	state  atomic.Pointer[tokenState] // nil until loaded; replaced whole by Reload
}

// tokenState is the secrets and the revocation list in memory. Immutable.
type tokenState struct {
	secrets map[int64]DiscoverySecret
	current DiscoverySecret // the newest unretired secret: it signs new tokens
	revoked map[int64]struct{}
	cutoffs map[int64]time.Time // user ID (0: every user) -> issued before this is revoked
}

// revokedToken reports whether the revocation list covers t.
func (s *tokenState) revokedToken(t DiscoveryToken) bool {
	if _, ok := s.revoked[t.ID]; ok {
		return true
	}
	if c, ok := s.cutoffs[0]; ok && t.IssuedAt.Before(c) {
		return true
	}
	c, ok := s.cutoffs[t.UserID]
	return ok && t.UserID != 0 && t.IssuedAt.Before(c)
}

// NewDiscovery returns the discovery service of dir's provider. The secrets and the
// revocation list are loaded from the store on first use.
func NewDiscovery(dir *Directory, store DiscoveryStore, cfg DiscoveryConfig) (*Discovery, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	d := &Discovery{dir: dir, store: store, cfg: cfg}
	if cfg.RatePerSource > 0 {
		d.limits = NewTokenBuckets(cfg.RatePerSource, cfg.BurstPerSource, maxDiscoverySources, cfg.Clock)
	}
	return d, nil
}

// Policy returns the token policy in force.
func (d *Discovery) Policy() TokenPolicy { return d.cfg.Policy }

// Discover answers for user (a name or a MIMI user URI of this provider) with its user
// URI, the provider's domain and a bearer token made by the policy in force. source
// names who asks, for the per-source rate limit (ErrRateLimited); it is not recorded.
// Nothing is written to the store, except the shared token's identity when a new one
// is made.
func (d *Discovery) Discover(ctx context.Context, user, source string) (protocol.DiscoveryResponse, error) {
	if len(source) > MaxRequesterLen {
		return protocol.DiscoveryResponse{}, fmt.Errorf("%w: source label of %d bytes, limit %d", ErrMalformed, len(source), MaxRequesterLen)
	}
	if d.limits != nil && !d.limits.Allow(source) {
		return protocol.DiscoveryResponse{}, fmt.Errorf("%w: discovery", ErrRateLimited)
	}
	u, err := d.dir.resolveUser(ctx, user)
	if err != nil {
		return protocol.DiscoveryResponse{}, err
	}
	st, err := d.loaded(ctx)
	if err != nil {
		return protocol.DiscoveryResponse{}, err
	}
	now := d.cfg.Clock().UTC().Truncate(time.Millisecond)
	resp := protocol.DiscoveryResponse{UserID: d.dir.UserURI(u.Name), Provider: d.dir.domain}
	t := DiscoveryToken{ID: newTokenID(), SecretID: st.current.ID, Policy: d.cfg.Policy, IssuedAt: now}
	if d.cfg.Policy == TokenPerRequester {
		t.UserID, t.ExpiresAt = u.ID, now.Add(d.cfg.TokenTTL)
		resp.BearerToken = mintToken(st.current.Secret, t)
		return resp, nil
	}
	if d.cfg.SharedTokenTTL > 0 {
		t.ExpiresAt = now.Add(d.cfg.SharedTokenTTL)
	}
	resp.BearerToken, err = d.sharedToken(ctx, st, t, now)
	if err != nil {
		return protocol.DiscoveryResponse{}, fmt.Errorf("directory: discover: %w", err)
	}
	return resp, nil
}

// sharedToken returns the shared token, making candidate the shared one if there is
// none.
func (d *Discovery) sharedToken(ctx context.Context, st *tokenState, candidate DiscoveryToken, now time.Time) (string, error) {
	t, err := d.store.SharedDiscoveryToken(ctx, candidate, now)
	if err != nil {
		return "", err
	}
	sec, ok := st.secrets[t.SecretID]
	if !ok { // signed by a secret added since this process loaded them
		if err := d.Reload(ctx); err != nil {
			return "", err
		}
		sec, ok = d.state.Load().secrets[t.SecretID]
	}
	if !ok || sec.Retired() {
		return "", fmt.Errorf("shared token %d signed by secret %d, which is unknown or retired", t.ID, t.SecretID)
	}
	return mintToken(sec.Secret, t), nil
}

// CheckToken reports whether token is valid for fetching the KeyPackages of user (a name
// or a MIMI user URI of this provider): ErrTokenRevoked, ErrTokenInvalid (unknown,
// forged, expired, or a per-requester token issued for another user, whether that user
// exists or not) or, for the shared token only, ErrUnknownUser.
func (d *Discovery) CheckToken(ctx context.Context, token, user string) (DiscoveryToken, error) {
	t, err := d.token(ctx, token, d.cfg.Clock())
	if err != nil {
		return t, err
	}
	u, err := d.dir.resolveUser(ctx, user)
	if err != nil {
		return DiscoveryToken{}, t.unknownUser(err)
	}
	if err := t.validFor(u.ID); err != nil {
		return DiscoveryToken{}, err
	}
	if t.Policy == TokenPerRequester {
		t.UserName = u.Name
	}
	return t, nil
}

// token checks a token for any user: its MAC, the revocation list and its expiry.
func (d *Discovery) token(ctx context.Context, token string, now time.Time) (DiscoveryToken, error) {
	if len(token) == 0 || len(token) > protocol.MaxBearerTokenLen {
		return DiscoveryToken{}, ErrTokenInvalid
	}
	st, err := d.loaded(ctx)
	if err != nil {
		return DiscoveryToken{}, err
	}
	t, err := verifyToken(token, st.secrets)
	switch {
	case err != nil:
		return DiscoveryToken{}, err
	case st.revokedToken(t):
		return DiscoveryToken{}, ErrTokenRevoked
	case t.Expired(now):
		return DiscoveryToken{}, fmt.Errorf("%w: expired %s", ErrTokenInvalid, t.ExpiresAt.Format(time.RFC3339))
	}
	return t, nil
}

// validFor checks a live token's binding to a user.
func (t DiscoveryToken) validFor(userID int64) error {
	if t.Policy == TokenPerRequester && t.UserID != userID {
		return ErrTokenInvalid
	}
	return nil
}

// unknownUser is what a live token answers for a user that cannot be resolved: a
// per-requester token is valid for one user only, so for any other name, existing or
// not, it is ErrTokenInvalid; a shared token is valid for every user and says so.
func (t DiscoveryToken) unknownUser(err error) error {
	if t.Policy == TokenPerRequester && errors.Is(err, ErrUnknownUser) {
		return ErrTokenInvalid
	}
	return err
}

// loaded returns the token state, loading it on first use.
func (d *Discovery) loaded(ctx context.Context) (*tokenState, error) {
	if st := d.state.Load(); st != nil {
		return st, nil
	}
	if err := d.Reload(ctx); err != nil {
		return nil, err
	}
	return d.state.Load(), nil
}

// Reload reads the secrets and the revocation list from the store (making the first
// secret on a new store). The server calls it when another process changed them
// (ChangeDiscovery).
func (d *Discovery) Reload(ctx context.Context) error {
	d.loadMu.Lock()
	defer d.loadMu.Unlock()
	now := d.cfg.Clock()
	secrets, err := d.store.DiscoverySecrets(ctx, NewDiscoverySecret(), now)
	if err != nil {
		return fmt.Errorf("directory: load discovery secrets: %w", err)
	}
	revs, err := d.store.DiscoveryRevocations(ctx, now)
	if err != nil {
		return fmt.Errorf("directory: load discovery revocations: %w", err)
	}
	st := &tokenState{secrets: make(map[int64]DiscoverySecret, len(secrets)), revoked: make(map[int64]struct{}, len(revs.Tokens)),
		cutoffs: make(map[int64]time.Time, len(revs.Cutoffs))}
	for _, s := range secrets {
		st.secrets[s.ID] = s
		if !s.Retired() && st.current.ID == 0 {
			st.current = s
		}
	}
	if st.current.ID == 0 {
		return errors.New("directory: load discovery secrets: every secret is retired")
	}
	for _, r := range revs.Tokens {
		st.revoked[r.TokenID] = struct{}{}
	}
	for _, c := range revs.Cutoffs {
		st.cutoffs[c.UserID] = c.Before
	}
	d.state.Store(st)
	return nil
}
