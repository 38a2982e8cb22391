package directory

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mimids/mimids/protocol"
)

// TokenPolicy says how discovery makes bearer tokens.
type TokenPolicy string

const (
	// TokenShared: one long-lived token for the whole provider, made on first use and
	// handed to every requester until the admin revokes it (or it expires, if
	// DiscoveryConfig.SharedTokenTTL is set); the next discovery then makes a new one.
	// Because it must be handed out again, the store keeps the shared token itself, not
	// only its hash: it is readable by whoever reads the database, which is acceptable for
	// a token the provider gives to anyone who asks.
	TokenShared TokenPolicy = "shared"
	// TokenPerRequester: every discovery call makes a new random token, bound to the user
	// it was asked for and valid for DiscoveryConfig.TokenTTL. The store keeps only its
	// SHA-256 hash, the requester label and usage counters, so an abusive requester can be
	// found and its token revoked alone.
	TokenPerRequester TokenPolicy = "per_requester"
)

// DiscoveryToken is one bearer token as the admin sees it (never the token itself).
type DiscoveryToken struct {
	ID        int64
	Policy    TokenPolicy
	UserID    int64  // per_requester: the user it is valid for; 0 for shared
	UserName  string // per_requester: that user's name
	Requester string // per_requester: who asked, as the caller of Discover named it
	CreatedAt time.Time
	ExpiresAt time.Time // zero: never
	RevokedAt time.Time // zero: not revoked
	LastUsed  time.Time // zero: never used by a fetch
	Uses      int64     // fetch requests that presented it
}

// Revoked reports whether the admin revoked the token.
func (t DiscoveryToken) Revoked() bool { return !t.RevokedAt.IsZero() }

// Expired reports whether the token has expired at now.
func (t DiscoveryToken) Expired(now time.Time) bool {
	return !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt)
}

// DiscoveryStore is what discovery needs from storage.
type DiscoveryStore interface {
	// CreateDiscoveryToken stores a per-requester token by its hash and returns it with
	// its ID.
	CreateDiscoveryToken(ctx context.Context, t DiscoveryToken, hash []byte) (DiscoveryToken, error)
	// SharedDiscoveryToken returns the shared token that is neither revoked nor expired at
	// now; if there is none it stores token as the new shared token (expiring at expires,
	// zero: never) and returns it. Concurrent callers get the same token.
	SharedDiscoveryToken(ctx context.Context, token string, expires, now time.Time) (string, DiscoveryToken, error)
	// DiscoveryTokenByHash finds a token, revoked and expired ones included (ErrNotFound).
	DiscoveryTokenByHash(ctx context.Context, hash []byte) (DiscoveryToken, error)
	// ListDiscoveryTokens returns up to limit tokens with ID > after, in ID order.
	ListDiscoveryTokens(ctx context.Context, after int64, limit int) ([]DiscoveryToken, error)
	// RevokeDiscoveryToken marks a token revoked (ErrNotFound if there is no such ID);
	// revoking twice keeps the first time.
	RevokeDiscoveryToken(ctx context.Context, id int64, at time.Time) (DiscoveryToken, error)
}

// DiscoveryConfig configures discovery.
type DiscoveryConfig struct {
	// Policy is TokenShared or TokenPerRequester (default).
	Policy TokenPolicy
	// TokenTTL is how long a per-requester token is valid (default 30 days).
	TokenTTL time.Duration
	// SharedTokenTTL is how long a shared token is valid; 0 (default): until revoked.
	SharedTokenTTL time.Duration
	// Clock is the time source; nil: time.Now. For tests.
	Clock func() time.Time
}

// MaxRequesterLen bounds the requester label given to Discover.
const MaxRequesterLen = 255

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
	return errors.Join(errs...)
}

// Discovery answers discovery requests for this provider's users with bearer tokens and
// checks those tokens when KeyPackages are fetched.
type Discovery struct {
	// Static after construction.
	dir   *Directory
	store DiscoveryStore
	cfg   DiscoveryConfig
}

// NewDiscovery returns the discovery service of dir's provider.
func NewDiscovery(dir *Directory, store DiscoveryStore, cfg DiscoveryConfig) (*Discovery, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	return &Discovery{dir: dir, store: store, cfg: cfg}, nil
}

// Policy returns the token policy in force.
func (d *Discovery) Policy() TokenPolicy { return d.cfg.Policy }

// Discover answers for user (a name or a MIMI user URI of this provider) with its user
// URI, the provider's domain and a bearer token made by the policy in force. requester
// labels the asker in the token list (per-requester policy only; may be empty).
func (d *Discovery) Discover(ctx context.Context, user, requester string) (protocol.DiscoveryResponse, error) {
	if len(requester) > MaxRequesterLen {
		return protocol.DiscoveryResponse{}, fmt.Errorf("%w: requester label of %d bytes, limit %d", ErrMalformed, len(requester), MaxRequesterLen)
	}
	u, err := d.dir.resolveUser(ctx, user)
	if err != nil {
		return protocol.DiscoveryResponse{}, err
	}
	now := d.cfg.Clock()
	resp := protocol.DiscoveryResponse{UserID: d.dir.UserURI(u.Name), Provider: d.dir.domain}
	if d.cfg.Policy == TokenShared {
		var expires time.Time
		if d.cfg.SharedTokenTTL > 0 {
			expires = now.Add(d.cfg.SharedTokenTTL)
		}
		resp.BearerToken, _, err = d.store.SharedDiscoveryToken(ctx, NewToken("mbt_"), expires, now)
		if err != nil {
			return protocol.DiscoveryResponse{}, fmt.Errorf("directory: discover: %w", err)
		}
		return resp, nil
	}
	resp.BearerToken = NewToken("mbt_")
	t := DiscoveryToken{Policy: TokenPerRequester, UserID: u.ID, UserName: u.Name, Requester: requester,
		CreatedAt: now, ExpiresAt: now.Add(d.cfg.TokenTTL)}
	if _, err := d.store.CreateDiscoveryToken(ctx, t, HashToken(resp.BearerToken)); err != nil {
		return protocol.DiscoveryResponse{}, fmt.Errorf("directory: discover: %w", err)
	}
	return resp, nil
}

// CheckToken reports whether token is valid for fetching the KeyPackages of user (a name
// or a MIMI user URI of this provider): ErrTokenRevoked, ErrTokenInvalid (unknown,
// expired, or a per-requester token issued for another user) or ErrUnknownUser.
func (d *Discovery) CheckToken(ctx context.Context, token, user string) (DiscoveryToken, error) {
	t, err := d.token(ctx, token, d.cfg.Clock())
	if err != nil {
		return t, err
	}
	u, err := d.dir.resolveUser(ctx, user)
	if err != nil {
		return DiscoveryToken{}, err
	}
	if err := t.validFor(u.ID); err != nil {
		return DiscoveryToken{}, err
	}
	return t, nil
}

// token finds a token that is neither revoked nor expired, for any user.
func (d *Discovery) token(ctx context.Context, token string, now time.Time) (DiscoveryToken, error) {
	if len(token) == 0 || len(token) > protocol.MaxBearerTokenLen {
		return DiscoveryToken{}, ErrTokenInvalid
	}
	t, err := d.store.DiscoveryTokenByHash(ctx, HashToken(token))
	switch {
	case errors.Is(err, ErrNotFound):
		return DiscoveryToken{}, ErrTokenInvalid
	case err != nil:
		return DiscoveryToken{}, fmt.Errorf("directory: check token: %w", err)
	case t.Revoked():
		return DiscoveryToken{}, ErrTokenRevoked
	case t.Expired(now):
		return DiscoveryToken{}, fmt.Errorf("%w: expired %s", ErrTokenInvalid, t.ExpiresAt.UTC().Format(time.RFC3339))
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

// ListTokens returns up to limit tokens (default 100, at most 1000) with ID > after.
func (d *Discovery) ListTokens(ctx context.Context, after int64, limit int) ([]DiscoveryToken, error) {
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	return d.store.ListDiscoveryTokens(ctx, after, limit)
}

// RevokeToken revokes a token; requests presenting it then fail with ErrTokenRevoked.
// Revoking the shared token makes the next discovery create a new one.
func (d *Discovery) RevokeToken(ctx context.Context, id int64) (DiscoveryToken, error) {
	return d.store.RevokeDiscoveryToken(ctx, id, d.cfg.Clock())
}

// resolveUser resolves a user name or a MIMI user URI of this provider; anything else,
// or a user that does not exist, is ErrUnknownUser.
func (d *Directory) resolveUser(ctx context.Context, user string) (User, error) {
	name := user
	if len(user) > protocol.MaxUserIDLen {
		return User{}, ErrUnknownUser
	}
	if domain, n, client, err := protocol.ParseURI(user); err == nil {
		if domain != d.domain || client != "" {
			return User{}, fmt.Errorf("%w: %q", ErrUnknownUser, user)
		}
		name = n
	} else if ValidName(user) != nil {
		return User{}, fmt.Errorf("%w: %q", ErrUnknownUser, user)
	}
	u, err := d.store.User(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return User{}, fmt.Errorf("%w: %q", ErrUnknownUser, user)
	}
	if err != nil {
		return User{}, fmt.Errorf("directory: user %q: %w", name, err)
	}
	return u, nil
}
