package directory_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/protocol"
)

func TestDiscoverPerRequester(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e := newEnv(t, "b.example", now, envOpts{discovery: directory.DiscoveryConfig{TokenTTL: 24 * time.Hour}})
	e.client(t, "bob", "dev")
	e.client(t, "carol", "dev")
	if e.disc.Policy() != directory.TokenPerRequester {
		t.Fatalf("default policy = %s", e.disc.Policy())
	}
	d1, err := e.disc.Discover(ctx, "bob", "a.example")
	if err != nil || d1.UserID != "mimi://b.example/u/bob" || d1.Provider != "b.example" || !strings.HasPrefix(d1.BearerToken, "mbt_") {
		t.Fatalf("Discover = %+v, %v", d1, err)
	}
	d2, err := e.disc.Discover(ctx, "mimi://b.example/u/bob", "c.example")
	if err != nil || d2.BearerToken == d1.BearerToken || d2.UserID != d1.UserID {
		t.Fatalf("second Discover = %+v, %v; want a new token", d2, err)
	}
	tok, err := e.disc.CheckToken(ctx, d1.BearerToken, "bob")
	if err != nil || tok.UserName != "bob" || tok.Policy != directory.TokenPerRequester || tok.ID == 0 ||
		!tok.IssuedAt.Equal(now) || !tok.ExpiresAt.Equal(now.Add(24*time.Hour)) {
		t.Fatalf("CheckToken = %+v, %v", tok, err)
	}
	// A token issued for bob is refused for carol, and for a name nobody has: a
	// per-requester token says nothing about other users.
	for _, other := range []string{"carol", "nobody", "mimi://b.example/u/nobody", "Not A Name!"} {
		if _, err := e.disc.CheckToken(ctx, d1.BearerToken, other); !errors.Is(err, directory.ErrTokenInvalid) {
			t.Fatalf("bob's token for %q: %v, want ErrTokenInvalid", other, err)
		}
		if r := e.fetch(t, other, d1.BearerToken, suite1); r.Status != protocol.StatusBadToken {
			t.Fatalf("fetch of %q with bob's token = %s", other, r.Status)
		}
	}
	// Nothing was stored per token: the list holds the signing secret only.
	if l, err := e.disc.Tokens(ctx); err != nil || len(l.Secrets) != 1 || l.Shared != nil || len(l.Revocations.Tokens) != 0 {
		t.Fatalf("Tokens = %+v, %v", l, err)
	}
	// Revocation by ID (as the logs show it).
	if _, err := e.disc.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.disc.CheckToken(ctx, d1.BearerToken, "bob"); !errors.Is(err, directory.ErrTokenRevoked) {
		t.Fatalf("revoked token: %v", err)
	}
	if r := e.fetch(t, "bob", d1.BearerToken, suite1); r.Status != protocol.StatusRevokedToken || !r.Status.DiscoverAgain() {
		t.Fatalf("fetch with a revoked token = %s", r.Status)
	}
	if _, err := e.disc.CheckToken(ctx, d2.BearerToken, "bob"); err != nil {
		t.Fatalf("the other requester's token was revoked too: %v", err)
	}
	// Expiry.
	e.clock.Set(now.Add(24 * time.Hour))
	if _, err := e.disc.CheckToken(ctx, d2.BearerToken, "bob"); !errors.Is(err, directory.ErrTokenInvalid) {
		t.Fatalf("expired token: %v", err)
	}
	if st, err := e.kps.Purge(ctx, e.clock.Now()); err != nil || st.Tokens != 1 {
		t.Fatalf("Purge = %+v, %v; want the revocation entry gone with its token", st, err)
	}
}

// TestForgedTokens: a token is checked by its MAC; any change, or another secret, is
// bad_token.
func TestForgedTokens(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e := newEnv(t, "b.example", now, envOpts{})
	e.client(t, "bob", "dev")
	e.client(t, "carol", "dev")
	good := e.token(t, "bob")
	other := newEnv(t, "b.example", now, envOpts{}) // another provider's secret
	other.client(t, "bob", "dev")
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(good, "mbt_"))
	if err != nil || len(raw) != 70 {
		t.Fatalf("token body: %d bytes, %v", len(raw), err)
	}
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return "mbt_" + base64.RawURLEncoding.EncodeToString(b)
	}
	for name, tok := range map[string]string{
		"made up":              "mbt_forged",
		"empty":                "",
		"no prefix":            strings.TrimPrefix(good, "mbt_"),
		"truncated":            good[:len(good)-2],
		"another secret":       other.token(t, "bob"),
		"user id changed":      flip(21), // the low byte of user_id
		"expiry moved":         flip(37),
		"MAC changed":          flip(69),
		"version changed":      flip(0),
		"padding":              good + "=",
		"over the length cap":  strings.Repeat("x", protocol.MaxBearerTokenLen+1),
		"shared policy forged": flip(5),
	} {
		if _, err := e.disc.CheckToken(ctx, tok, "bob"); !errors.Is(err, directory.ErrTokenInvalid) {
			t.Errorf("%s: %v, want ErrTokenInvalid", name, err)
		}
	}
	if _, err := e.disc.CheckToken(ctx, good, "bob"); err != nil {
		t.Fatalf("the genuine token: %v", err)
	}
}

func TestDiscoverShared(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e := newEnv(t, "b.example", now, envOpts{discovery: directory.DiscoveryConfig{Policy: directory.TokenShared}})
	e.client(t, "bob", "dev")
	e.client(t, "carol", "dev")
	d1, err := e.disc.Discover(ctx, "bob", "")
	if err != nil {
		t.Fatal(err)
	}
	d2, err := e.disc.Discover(ctx, "carol", "someone")
	if err != nil || d2.BearerToken != d1.BearerToken || d2.UserID != "mimi://b.example/u/carol" {
		t.Fatalf("shared tokens differ: %+v vs %+v (%v)", d1, d2, err)
	}
	for _, u := range []string{"bob", "carol"} {
		if tok, err := e.disc.CheckToken(ctx, d1.BearerToken, u); err != nil || tok.Policy != directory.TokenShared || !tok.ExpiresAt.IsZero() {
			t.Fatalf("shared token for %s: %+v, %v", u, tok, err)
		}
	}
	// The shared token is valid for every user: it answers unknown_user (discovery
	// tells anyone which users exist anyway).
	if _, err := e.disc.CheckToken(ctx, d1.BearerToken, "nobody"); !errors.Is(err, directory.ErrUnknownUser) {
		t.Fatalf("shared token for nobody: %v", err)
	}
	l, _ := e.disc.Tokens(ctx)
	if l.Shared == nil {
		t.Fatalf("tokens = %+v", l)
	}
	if _, err := e.disc.RevokeToken(ctx, l.Shared.ID); err != nil {
		t.Fatal(err)
	}
	if r := e.fetch(t, "bob", d1.BearerToken, suite1); r.Status != protocol.StatusRevokedToken {
		t.Fatalf("fetch with the revoked shared token = %s", r.Status)
	}
	d3, _ := e.disc.Discover(ctx, "bob", "")
	if d3.BearerToken == d1.BearerToken {
		t.Fatal("discovery after revocation returned the revoked token")
	}
	if _, err := e.disc.CheckToken(ctx, d3.BearerToken, "carol"); err != nil {
		t.Fatalf("new shared token: %v", err)
	}
	if l, _ := e.disc.Tokens(ctx); len(l.Revocations.Tokens) != 1 || !l.Revocations.Tokens[0].Until.IsZero() {
		t.Fatalf("the revoked shared token (which never expires) must stay listed: %+v", l.Revocations)
	}
}

// TestRevokeUserTokens: every token issued for a user until now is revoked; tokens
// issued later, and other users' tokens, are not.
func TestRevokeUserTokens(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e := newEnv(t, "b.example", now, envOpts{})
	e.client(t, "bob", "dev")
	e.client(t, "carol", "dev")
	b1, b2, c1 := e.token(t, "bob"), e.token(t, "bob"), e.token(t, "carol")
	e.clock.Set(now.Add(time.Second))
	cut, err := e.disc.RevokeUserTokens(ctx, "mimi://b.example/u/bob")
	if err != nil || cut.UserName != "bob" {
		t.Fatalf("RevokeUserTokens = %+v, %v", cut, err)
	}
	for _, tok := range []string{b1, b2} {
		if _, err := e.disc.CheckToken(ctx, tok, "bob"); !errors.Is(err, directory.ErrTokenRevoked) {
			t.Fatalf("bob's old token: %v", err)
		}
	}
	if _, err := e.disc.CheckToken(ctx, c1, "carol"); err != nil {
		t.Fatalf("carol's token: %v", err)
	}
	e.clock.Set(now.Add(2 * time.Second))
	if _, err := e.disc.CheckToken(ctx, e.token(t, "bob"), "bob"); err != nil {
		t.Fatalf("bob's token issued after: %v", err)
	}
	if _, err := e.disc.RevokeUserTokens(ctx, "nobody"); !errors.Is(err, directory.ErrUnknownUser) {
		t.Fatalf("RevokeUserTokens(nobody) = %v", err)
	}
	// Every user: carol's too.
	e.clock.Set(now.Add(3 * time.Second))
	e.disc.RevokeUserTokens(ctx, "")
	if _, err := e.disc.CheckToken(ctx, c1, "carol"); !errors.Is(err, directory.ErrTokenRevoked) {
		t.Fatalf("carol's token after revoking every user's: %v", err)
	}
	// The revocation list holds two cutoffs, nothing per token.
	if l, _ := e.disc.Tokens(ctx); len(l.Revocations.Cutoffs) != 2 || len(l.Revocations.Tokens) != 0 {
		t.Fatalf("revocations = %+v", l.Revocations)
	}
	if _, err := e.disc.RevokeTokenString(ctx, "mbt_forged"); !errors.Is(err, directory.ErrTokenInvalid) {
		t.Fatalf("RevokeTokenString(forged) = %v", err)
	}
	late := e.token(t, "carol")
	if r, err := e.disc.RevokeTokenString(ctx, late); err != nil || r.Until.IsZero() {
		t.Fatalf("RevokeTokenString = %+v, %v; want it listed until the token expires", r, err)
	}
	if _, err := e.disc.CheckToken(ctx, late, "carol"); !errors.Is(err, directory.ErrTokenRevoked) {
		t.Fatalf("token revoked in full: %v", err)
	}
}

// TestSecretRotation: a new secret signs new tokens; older ones keep verifying theirs
// until retired.
func TestSecretRotation(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e := newEnv(t, "b.example", now, envOpts{})
	e.client(t, "bob", "dev")
	old := e.token(t, "bob")
	s, err := e.disc.RotateSecret(ctx, false)
	if err != nil || len(s.Secret) != 0 {
		t.Fatalf("RotateSecret = %+v, %v", s, err)
	}
	newer := e.token(t, "bob")
	for _, tok := range []string{old, newer} {
		if _, err := e.disc.CheckToken(ctx, tok, "bob"); err != nil {
			t.Fatalf("after a rotation: %v", err)
		}
	}
	if tok, _ := e.disc.CheckToken(ctx, newer, "bob"); tok.SecretID != s.ID {
		t.Fatalf("new token signed by secret %d, want %d", tok.SecretID, s.ID)
	}
	if _, err := e.disc.RotateSecret(ctx, true); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{old, newer} {
		if _, err := e.disc.CheckToken(ctx, tok, "bob"); !errors.Is(err, directory.ErrTokenRevoked) {
			t.Fatalf("token of a retired secret: %v", err)
		}
	}
	if _, err := e.disc.CheckToken(ctx, e.token(t, "bob"), "bob"); err != nil {
		t.Fatal(err)
	}
	l, _ := e.disc.Tokens(ctx)
	if len(l.Secrets) != 3 || l.Secrets[0].Retired() || !l.Secrets[1].Retired() || !l.Secrets[2].Retired() {
		t.Fatalf("secrets = %+v", l.Secrets)
	}
}

// TestRevocationAcrossProcesses: another process (the admin CLI) revokes; the server
// sees it once it reloads, which the change log tells it to do.
func TestRevocationAcrossProcesses(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e := newEnv(t, "b.example", now, envOpts{})
	e.client(t, "bob", "dev")
	tok := e.token(t, "bob")
	cli, err := directory.NewDiscovery(directory.New(e.db, "b.example"), e.db, directory.DiscoveryConfig{Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t0, _ := e.disc.CheckToken(ctx, tok, "bob")
	if _, err := cli.RevokeToken(ctx, t0.ID); err != nil {
		t.Fatal(err)
	}
	cs, err := e.dir.Changes(ctx, 0, 10)
	if err != nil || len(cs) != 1 || cs[0].Kind != directory.ChangeDiscovery {
		t.Fatalf("changes = %+v, %v", cs, err)
	}
	if err := e.disc.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.disc.CheckToken(ctx, tok, "bob"); !errors.Is(err, directory.ErrTokenRevoked) {
		t.Fatalf("after the reload: %v", err)
	}
}

func TestDiscoverRateLimit(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e := newEnv(t, "b.example", now, envOpts{discovery: directory.DiscoveryConfig{RatePerSource: 1, BurstPerSource: 3}})
	e.client(t, "bob", "dev")
	for i := range 3 {
		if _, err := e.disc.Discover(ctx, "bob", "addr:192.0.2.1"); err != nil {
			t.Fatalf("discovery %d: %v", i, err)
		}
	}
	if _, err := e.disc.Discover(ctx, "nobody", "addr:192.0.2.1"); !errors.Is(err, directory.ErrRateLimited) {
		t.Fatalf("fourth discovery: %v, want ErrRateLimited before the user is looked up", err)
	}
	if _, err := e.disc.Discover(ctx, "bob", "addr:192.0.2.2"); err != nil {
		t.Fatalf("another source: %v", err)
	}
	e.clock.Set(now.Add(time.Second))
	if _, err := e.disc.Discover(ctx, "bob", "addr:192.0.2.1"); err != nil {
		t.Fatalf("a second later: %v", err)
	}
}

func TestDiscoverRefusals(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e := newEnv(t, "b.example", now, envOpts{})
	e.client(t, "bob", "dev")
	tests := []struct {
		name, user, requester string
		want                  error
	}{
		{"unknown user", "nobody", "", directory.ErrUnknownUser},
		{"another provider", "mimi://a.example/u/bob", "", directory.ErrUnknownUser},
		{"client URI", "mimi://b.example/d/bob/dev", "", directory.ErrUnknownUser},
		{"not a name", "Bob!", "", directory.ErrUnknownUser},
		{"long user", strings.Repeat("b", 5000), "", directory.ErrUnknownUser},
		{"long requester", "bob", strings.Repeat("r", 300), directory.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := e.disc.Discover(ctx, tc.user, tc.requester); !errors.Is(err, tc.want) {
				t.Fatalf("Discover = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := e.disc.RevokeToken(ctx, 0); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("RevokeToken(0) = %v", err)
	}
}

func TestDiscoveryConfig(t *testing.T) {
	if err := (directory.DiscoveryConfig{}).Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	err := directory.DiscoveryConfig{Policy: "open", TokenTTL: time.Second, SharedTokenTTL: -1, RatePerSource: 1}.Validate()
	if err == nil || len(err.(interface{ Unwrap() []error }).Unwrap()) != 4 {
		t.Fatalf("Validate = %v, want four problems", err)
	}
}
