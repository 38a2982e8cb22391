package directory

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AdminTokenPrefix starts every admin credential.
const AdminTokenPrefix = "mat_"

// adminTouchEvery is how stale an admin token's LastUsedAt may get before a request
// it authenticates writes a new one: at most one write per token per interval.
const adminTouchEvery = time.Minute

var (
	// ErrAmbiguous is a name that more than one active admin token carries.
	ErrAmbiguous = errors.New("directory: ambiguous name")
	// ErrAdminTokenName is a name a new admin token cannot have.
	ErrAdminTokenName = errors.New("directory: invalid admin token name")
)

// AdminToken is one admin API credential. The token itself is never stored: only its
// hash, which this struct does not carry.
type AdminToken struct {
	ID         int64
	Name       string
	CreatedAt  time.Time
	ExpiresAt  time.Time // zero: never expires
	RevokedAt  time.Time // zero while not revoked
	LastUsedAt time.Time // zero: never used; updated at most once a minute
	ReadOnly   bool      // the token may look (GET) but change nothing
}

// Active reports whether the token authenticates requests at now.
func (t AdminToken) Active(now time.Time) bool {
	return t.RevokedAt.IsZero() && (t.ExpiresAt.IsZero() || now.Before(t.ExpiresAt))
}

// State is "active", "revoked <time>" or "expired <time>" at now.
func (t AdminToken) State(now time.Time) string {
	switch {
	case !t.RevokedAt.IsZero():
		return "revoked " + t.RevokedAt.Format(time.RFC3339)
	case !t.ExpiresAt.IsZero() && !now.Before(t.ExpiresAt):
		return "expired " + t.ExpiresAt.Format(time.RFC3339)
	}
	return "active"
}

// ValidAdminTokenName reports whether a new admin token can be named s: a name as
// ValidName has it, not all digits (an argument of digits names a token by id) and
// not starting with AdminTokenPrefix (an argument with it is a token itself).
func ValidAdminTokenName(s string) error {
	if err := ValidName(s); err != nil {
		return fmt.Errorf("%w: %w", ErrAdminTokenName, err)
	}
	if _, err := strconv.ParseUint(s, 10, 63); err == nil {
		return fmt.Errorf("%w: %q is all digits (digits name a token by id)", ErrAdminTokenName, s)
	}
	if strings.HasPrefix(s, AdminTokenPrefix) {
		return fmt.Errorf("%w: %q starts with %q, as tokens do", ErrAdminTokenName, s, AdminTokenPrefix)
	}
	return nil
}

// EnsureAdmin creates a first admin credential if the store never had one and returns
// it; it returns "" otherwise. Once any admin token was created, revoking or letting
// every one expire does not make a new one appear at the next start: `mimids admin
// token add` (on the store) does.
func (d *Directory) EnsureAdmin(ctx context.Context) (string, error) {
	n, err := d.store.CountAdminTokens(ctx)
	if err != nil || n > 0 {
		return "", err
	}
	token, _, err := d.NewAdminToken(ctx, "first-admin", 0)
	return token, err
}

// NewAdminToken creates an admin credential named name that expires after ttl (0:
// never) and returns it; only its hash is kept.
func (d *Directory) NewAdminToken(ctx context.Context, name string, ttl time.Duration) (string, AdminToken, error) {
	return d.NewAdminTokenRole(ctx, name, ttl, false)
}

// NewAdminTokenRole is NewAdminToken for a token that is read-only when readOnly
// is set: it may look at everything (the API's GETs, the dashboard's pages) and
// change nothing.
func (d *Directory) NewAdminTokenRole(ctx context.Context, name string, ttl time.Duration, readOnly bool) (string, AdminToken, error) {
	if err := ValidAdminTokenName(name); err != nil {
		return "", AdminToken{}, err
	}
	if ttl < 0 {
		return "", AdminToken{}, fmt.Errorf("directory: new admin token: negative lifetime %v", ttl)
	}
	now := d.now().UTC().Truncate(time.Millisecond)
	t := AdminToken{Name: name, CreatedAt: now, ReadOnly: readOnly}
	if ttl > 0 {
		t.ExpiresAt = now.Add(ttl)
	}
	token := NewToken(AdminTokenPrefix)
	t, err := d.store.CreateAdminToken(ctx, t, HashToken(token))
	if err != nil {
		return "", AdminToken{}, fmt.Errorf("directory: new admin token: %w", err)
	}
	return token, t, nil
}

// ListAdminTokens lists every admin token by id, revoked and expired ones included.
func (d *Directory) ListAdminTokens(ctx context.Context) ([]AdminToken, error) {
	return d.store.ListAdminTokens(ctx)
}

// RevokeAdminToken revokes the admin token that ref names: its id (digits), the token
// itself (AdminTokenPrefix...), or its name when one active token carries it
// (ErrAmbiguous when several do: revoke by id). A running server refuses the token
// from its next request on: it checks the store on every admin request.
func (d *Directory) RevokeAdminToken(ctx context.Context, ref string) (AdminToken, error) {
	t, err := d.findAdminToken(ctx, ref)
	if err != nil {
		return AdminToken{}, err
	}
	return d.store.RevokeAdminToken(ctx, t.ID, d.now())
}

func (d *Directory) findAdminToken(ctx context.Context, ref string) (AdminToken, error) {
	if strings.HasPrefix(ref, AdminTokenPrefix) {
		t, err := d.store.AdminTokenByHash(ctx, HashToken(ref))
		if errors.Is(err, ErrNotFound) {
			return t, fmt.Errorf("%w: no admin token is that token", ErrNotFound)
		}
		return t, err
	}
	ts, err := d.store.ListAdminTokens(ctx)
	if err != nil {
		return AdminToken{}, err
	}
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		for _, t := range ts {
			if t.ID == id {
				return t, nil
			}
		}
		return AdminToken{}, fmt.Errorf("%w: admin token %d", ErrNotFound, id)
	}
	var named, active []AdminToken
	now := d.now()
	for _, t := range ts {
		if t.Name == ref {
			named = append(named, t)
			if t.Active(now) {
				active = append(active, t)
			}
		}
	}
	switch {
	case len(active) == 1:
		return active[0], nil
	case len(active) > 1:
		ids := make([]string, len(active))
		for i, t := range active {
			ids[i] = strconv.FormatInt(t.ID, 10)
		}
		return AdminToken{}, fmt.Errorf("%w: %d active admin tokens are named %q (ids %s): revoke by id",
			ErrAmbiguous, len(active), ref, strings.Join(ids, ", "))
	case len(named) > 0:
		return named[len(named)-1], nil // already revoked or expired: revoking again is harmless
	}
	return AdminToken{}, fmt.Errorf("%w: admin token %q", ErrNotFound, ref)
}

// AdminAuthenticate reports whether token is an admin credential that is neither
// revoked nor expired. It reads the store on every call, so a revocation made by
// another process (the CLI) holds from the next request on. It records the time of
// use at most once a minute per token; a failure to record it does not refuse the
// request (a store that cannot write must still be inspectable).
func (d *Directory) AdminAuthenticate(ctx context.Context, token string) (bool, error) {
	_, ok, err := d.AdminTokenFor(ctx, token)
	return ok, err
}

// AdminTokenFor is AdminAuthenticate that also returns the token's record (its id,
// name and role) when it authenticates.
func (d *Directory) AdminTokenFor(ctx context.Context, token string) (AdminToken, bool, error) {
	if len(token) == 0 || len(token) > 256 || !strings.HasPrefix(token, AdminTokenPrefix) {
		return AdminToken{}, false, nil
	}
	t, err := d.store.AdminTokenByHash(ctx, HashToken(token))
	if errors.Is(err, ErrNotFound) {
		return AdminToken{}, false, nil
	}
	if err != nil {
		return AdminToken{}, false, fmt.Errorf("directory: admin authenticate: %w", err)
	}
	now := d.now()
	if !t.Active(now) {
		return AdminToken{}, false, nil
	}
	if now.Sub(t.LastUsedAt) >= adminTouchEvery {
		_ = d.store.TouchAdminToken(ctx, t.ID, now)
	}
	return t, true, nil
}
