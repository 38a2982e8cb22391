package directory_test

import (
	"context"
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
	if err != nil || tok.Requester != "a.example" || tok.UserName != "bob" || !tok.ExpiresAt.Equal(now.Add(24*time.Hour)) {
		t.Fatalf("CheckToken = %+v, %v", tok, err)
	}
	// A token issued for bob is refused for carol (and so is a fetch of carol's with it).
	if _, err := e.disc.CheckToken(ctx, d1.BearerToken, "carol"); !errors.Is(err, directory.ErrTokenInvalid) {
		t.Fatalf("bob's token for carol: %v", err)
	}
	if r := e.fetch(t, "carol", d1.BearerToken, suite1); r.Status != protocol.StatusBadToken {
		t.Fatalf("fetch of carol with bob's token = %s", r.Status)
	}
	if _, err := e.disc.CheckToken(ctx, d1.BearerToken, "nobody"); !errors.Is(err, directory.ErrUnknownUser) {
		t.Fatalf("token for an unknown user: %v", err)
	}
	if _, err := e.disc.CheckToken(ctx, "mbt_forged", "bob"); !errors.Is(err, directory.ErrTokenInvalid) {
		t.Fatalf("forged token: %v", err)
	}
	// Listing and revocation.
	list, err := e.disc.ListTokens(ctx, 0, 0)
	if err != nil || len(list) != 2 || list[0].Requester != "a.example" || list[1].Requester != "c.example" {
		t.Fatalf("ListTokens = %+v, %v", list, err)
	}
	if _, err := e.disc.RevokeToken(ctx, list[0].ID); err != nil {
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
	if st, err := e.kps.Purge(ctx, e.clock.Now()); err != nil || st.Tokens != 2 {
		t.Fatalf("Purge = %+v, %v; want both tokens gone", st, err)
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
	list, _ := e.disc.ListTokens(ctx, 0, 10)
	if len(list) != 1 {
		t.Fatalf("tokens = %+v", list)
	}
	e.disc.RevokeToken(ctx, list[0].ID)
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
	if _, err := e.disc.RevokeToken(ctx, 12345); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("RevokeToken(unknown) = %v", err)
	}
}

func TestDiscoveryConfig(t *testing.T) {
	if err := (directory.DiscoveryConfig{}).Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	err := directory.DiscoveryConfig{Policy: "open", TokenTTL: time.Second, SharedTokenTTL: -1}.Validate()
	if err == nil || len(err.(interface{ Unwrap() []error }).Unwrap()) != 3 {
		t.Fatalf("Validate = %v, want three problems", err)
	}
}
