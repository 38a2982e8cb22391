package directory

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mimids/mimids/protocol"
)

// TokenList is what the admin sees of discovery tokens: the provider keeps no record
// of the tokens it issued, only the secrets that sign them, the shared token and the
// revocation list.
type TokenList struct {
	Secrets     []DiscoverySecret // newest first; Secret is left out
	Shared      *DiscoveryToken   // the live shared token, if any
	Revocations Revocations
}

// Empty reports whether there is nothing to show.
func (l TokenList) Empty() bool {
	return len(l.Secrets) == 0 && l.Shared == nil && len(l.Revocations.Tokens) == 0 && len(l.Revocations.Cutoffs) == 0
}

// Tokens lists the secrets, the shared token and the revocation list. It writes
// nothing.
func (d *Discovery) Tokens(ctx context.Context) (TokenList, error) {
	now := d.cfg.Clock()
	var l TokenList
	secrets, err := d.store.DiscoverySecrets(ctx, nil, now)
	if err != nil {
		return l, fmt.Errorf("directory: list tokens: %w", err)
	}
	for _, s := range secrets {
		s.Secret = nil
		l.Secrets = append(l.Secrets, s)
	}
	shared, err := d.store.SharedDiscoveryToken(ctx, DiscoveryToken{}, now)
	switch {
	case err == nil:
		l.Shared = &shared
	case !errors.Is(err, ErrNotFound):
		return l, fmt.Errorf("directory: list tokens: %w", err)
	}
	if l.Revocations, err = d.store.DiscoveryRevocations(ctx, now); err != nil {
		return l, fmt.Errorf("directory: list tokens: %w", err)
	}
	return l, nil
}

// RevokeToken revokes one token by its ID (as the logs and the token list name it);
// requests presenting it then fail with ErrTokenRevoked. The provider keeps no record
// of issued tokens, so any ID is accepted; the entry is kept for TokenTTL, the longest a
// per-requester token lives (for the shared token's ID: as long as it lives). Revoking
// the shared token makes the next discovery create a new one.
func (d *Discovery) RevokeToken(ctx context.Context, id int64) (TokenRevocation, error) {
	if id <= 0 {
		return TokenRevocation{}, fmt.Errorf("%w: token ID %d", ErrNotFound, id)
	}
	now := d.cfg.Clock()
	r, err := d.store.RevokeDiscoveryToken(ctx, id, now.Add(d.cfg.TokenTTL), now)
	if err != nil {
		return r, fmt.Errorf("directory: revoke token: %w", err)
	}
	return r, d.changed(ctx)
}

// RevokeTokenString revokes the token given in full (mbt_...), which must be one this
// provider signed; its entry is kept until the token expires.
func (d *Discovery) RevokeTokenString(ctx context.Context, token string) (TokenRevocation, error) {
	st, err := d.loaded(ctx)
	if err != nil {
		return TokenRevocation{}, err
	}
	t, err := verifyToken(strings.TrimSpace(token), st.secrets)
	if err != nil && !errors.Is(err, ErrTokenRevoked) {
		return TokenRevocation{}, err
	}
	r, err := d.store.RevokeDiscoveryToken(ctx, t.ID, t.ExpiresAt, d.cfg.Clock())
	if err != nil {
		return r, fmt.Errorf("directory: revoke token: %w", err)
	}
	return r, d.changed(ctx)
}

// RevokeUserTokens revokes every per-requester token issued for user (a name or a user
// URI of this provider) until now; an empty user revokes every token of every user,
// the shared token included. Requesters discover again and get new tokens.
func (d *Discovery) RevokeUserTokens(ctx context.Context, user string) (TokenCutoff, error) {
	var uid int64
	if user != "" {
		u, err := d.dir.resolveUser(ctx, user)
		if err != nil {
			return TokenCutoff{}, err
		}
		uid = u.ID
	}
	c, err := d.store.RevokeDiscoveryTokensBefore(ctx, uid, d.cfg.Clock())
	if err != nil {
		return c, fmt.Errorf("directory: revoke tokens: %w", err)
	}
	return c, d.changed(ctx)
}

// RotateSecret makes a new secret sign new tokens. Older secrets keep verifying the
// tokens they signed unless retire is set: then every token issued so far is revoked.
func (d *Discovery) RotateSecret(ctx context.Context, retire bool) (DiscoverySecret, error) {
	s, err := d.store.AddDiscoverySecret(ctx, NewDiscoverySecret(), retire, d.cfg.Clock())
	if err != nil {
		return s, fmt.Errorf("directory: rotate discovery secret: %w", err)
	}
	s.Secret = nil
	return s, d.changed(ctx)
}

// changed tells a running server (through the change log) and this process that the
// secrets or the revocation list changed.
func (d *Discovery) changed(ctx context.Context) error {
	if err := d.dir.RecordChange(ctx, Change{Kind: ChangeDiscovery}); err != nil {
		return fmt.Errorf("directory: record discovery change: %w", err)
	}
	if d.state.Load() != nil {
		return d.Reload(ctx)
	}
	return nil
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
