package directory_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/protocol"
)

// notices returns the kinds and key_packages_exhausted reasons in a client's mailbox.
func (e *env) notices(t *testing.T, c directory.Client) (low int, exhausted []protocol.ExhaustedReason) {
	t.Helper()
	entries, err := e.mb.Fetch(context.Background(), c.ID, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, en := range entries {
		switch protocol.Kind(en.Kind) {
		case protocol.KindKeyPackagesLow:
			low++
		case protocol.KindKeyPackagesExhausted:
			var n protocol.KeyPackagesExhausted
			if err := n.UnmarshalBinary(en.Payload); err != nil || n.CipherSuite != suite1 {
				t.Fatalf("exhausted notice %x: %+v, %v", en.Payload, n, err)
			}
			exhausted = append(exhausted, n.Reason)
		}
	}
	return low, exhausted
}

func bundleOf(n int, user, token string) protocol.KeyPackageRequestBundle {
	b := protocol.KeyPackageRequestBundle{}
	for range n {
		b.Requests = append(b.Requests, protocol.KeyPackageRequest{UserID: user, BearerToken: token, Version: mls10, CipherSuite: suite1})
	}
	return b
}

// TestBundleRepeatsRefused: the attack of issue 15 item 6 (one token, one bundle of 100
// requests for one user) is refused whole and claims nothing; a bundle may name a user
// once per client, and each request is served by another client.
func TestBundleRepeatsRefused(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e := newEnv(t, "b.example", now, envOpts{})
	bob := e.client(t, "bob", "dev")
	g := newSigner(t, suite1)
	id := "mimi://b.example/u/bob"
	e.upload(t, bob, append(g.keyPackages(t, id, now, 10), g.keyPackage(t, id, now, kpOpts{lastResort: true}))...)
	tok := e.token(t, "bob")
	if _, err := e.kps.Fetch(ctx, bundleOf(100, id, tok), now); !errors.Is(err, directory.ErrBundleRepeats) || !errors.Is(err, directory.ErrMalformed) {
		t.Fatalf("bundle of 100 for bob = %v, want ErrBundleRepeats", err)
	}
	body, _ := bundleOf(2, id, tok).MarshalBinary()
	if _, err := e.kps.ServeBundle(ctx, body, now); !errors.Is(err, directory.ErrMalformed) {
		t.Fatalf("ServeBundle naming bob twice = %v", err)
	}
	if st, _ := e.kps.Count(ctx, bob, suite1); st.Available != 10 {
		t.Fatalf("a refused bundle claimed: %+v", st)
	}
	// Requests with a bad token or for another suite do not count against bob.
	mixed := bundleOf(1, id, tok)
	mixed.Requests = append(mixed.Requests, bundleOf(3, id, "mbt_nope").Requests...)
	mixed.Requests = append(mixed.Requests, protocol.KeyPackageRequest{UserID: id, BearerToken: tok, Version: mls10, CipherSuite: suite2})
	if resp, err := e.kps.Fetch(ctx, mixed, now); err != nil || resp.Results[0].Status != protocol.StatusOK {
		t.Fatalf("mixed bundle = %+v, %v", resp, err)
	}
	// A second client: bob may be named twice, and gets one KeyPackage from each.
	tab := e.client(t, "bob", "tab")
	e.upload(t, tab, g.keyPackages(t, id, now, 1)...)
	resp, err := e.kps.Fetch(ctx, bundleOf(2, id, tok), now)
	if err != nil || resp.Results[0].Status != protocol.StatusOK || resp.Results[1].Status != protocol.StatusOK {
		t.Fatalf("two requests, two clients = %+v, %v", resp, err)
	}
	if st, _ := e.kps.Count(ctx, tab, suite1); st.Available != 0 {
		t.Fatalf("the second request was not served by the second client: %+v", st)
	}
	if _, err := e.kps.Fetch(ctx, bundleOf(3, id, tok), now); !errors.Is(err, directory.ErrBundleRepeats) {
		t.Fatalf("three requests, two clients = %v", err)
	}
	// A revoked client does not count.
	e.dir.RevokeClient(ctx, "bob", "tab")
	if _, err := e.kps.Fetch(ctx, bundleOf(2, id, tok), now); !errors.Is(err, directory.ErrBundleRepeats) {
		t.Fatalf("two requests, one active client = %v", err)
	}
}

// TestTokenClaimLimit: one bearer token claims a user's KeyPackages at a bounded rate;
// past it, rate_limited (and the admin is told the token's ID in the log).
func TestTokenClaimLimit(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, "b.example", now, envOpts{keyPackages: directory.KeyPackageConfig{
		Claims: directory.ClaimLimits{TokenPerHour: 60, TokenBurst: 3}}})
	bob := e.client(t, "bob", "dev")
	g := newSigner(t, suite1)
	id := "mimi://b.example/u/bob"
	e.upload(t, bob, g.keyPackages(t, id, now, 20)...)
	tok := e.token(t, "bob")
	var got []protocol.FetchStatus
	for range 5 {
		got = append(got, e.fetch(t, "bob", tok, suite1).Status)
	}
	if fmt.Sprint(got) != "[ok ok ok rate_limited rate_limited]" {
		t.Fatalf("statuses = %v", got)
	}
	if r := e.fetch(t, "bob", e.token(t, "bob"), suite1); r.Status != protocol.StatusOK {
		t.Fatalf("another token: %s", r.Status)
	}
	e.clock.Set(now.Add(time.Minute)) // one claim per minute refills
	if r := e.fetch(t, "bob", tok, suite1); r.Status != protocol.StatusOK {
		t.Fatalf("a minute later: %s", r.Status)
	}
	if st, _ := e.kps.Count(context.Background(), bob, suite1); st.Available != 15 {
		t.Fatalf("stock = %+v, want 15", st)
	}
}

// TestUserClaimLimit: however many tokens a drainer holds, the one-time KeyPackages of
// a user are served at a bounded rate; past it, requests get the last resort (or
// rate_limited if there is none) and every client of the user is told, once an hour.
func TestUserClaimLimit(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	e := newEnv(t, "b.example", now, envOpts{keyPackages: directory.KeyPackageConfig{
		Claims: directory.ClaimLimits{UserPerHour: 6, UserBurst: 3}}})
	bob, tab := e.client(t, "bob", "dev"), e.client(t, "bob", "tab")
	carol := e.client(t, "carol", "dev")
	g := newSigner(t, suite1)
	id := "mimi://b.example/u/bob"
	lr := g.keyPackage(t, id, now, kpOpts{lastResort: true})
	e.upload(t, bob, append(g.keyPackages(t, id, now, 10), lr)...)
	e.upload(t, carol, g.keyPackages(t, "mimi://b.example/u/carol", now, 10)...)
	lastResorts := 0
	for range 8 { // a fresh token each time: the token limit is not what stops this
		r := e.fetch(t, "bob", e.token(t, "bob"), suite1)
		if r.Status != protocol.StatusOK {
			t.Fatalf("fetch: %s", r.Status)
		}
		if string(refOf(t, r.Response.KeyPackage)) == string(refOf(t, lr)) {
			lastResorts++
		}
	}
	if st, _ := e.kps.Count(context.Background(), bob, suite1); st.Available != 7 || lastResorts != 5 {
		t.Fatalf("stock %+v, %d last resorts; want 7 one-time left and 5 last resorts", st, lastResorts)
	}
	for _, c := range []directory.Client{bob, tab} {
		if _, ex := e.notices(t, c); fmt.Sprint(ex) != "[claims_limited]" {
			t.Fatalf("client %s notices: %v, want one claims_limited", c.Name, ex)
		}
	}
	// carol has no last resort: rate_limited, not no_key_package.
	var got []protocol.FetchStatus
	for range 4 {
		got = append(got, e.fetch(t, "carol", e.token(t, "carol"), suite1).Status)
	}
	if fmt.Sprint(got) != "[ok ok ok rate_limited]" {
		t.Fatalf("carol: %v", got)
	}
	// Ten minutes refill one claim; the notice is not repeated within the hour.
	e.clock.Set(now.Add(10 * time.Minute))
	if r := e.fetch(t, "bob", e.token(t, "bob"), suite1); r.Status != protocol.StatusOK || string(refOf(t, r.Response.KeyPackage)) == string(refOf(t, lr)) {
		t.Fatalf("after the refill: %s, want a one-time KeyPackage", r.Status)
	}
	e.fetch(t, "bob", e.token(t, "bob"), suite1)
	if _, ex := e.notices(t, bob); len(ex) != 1 {
		t.Fatalf("notices repeated: %v", ex)
	}
}

// TestExhaustedNotice: when a client's one-time KeyPackages run out and its last resort
// is served, it is told once; again after it had one-time KeyPackages served anew.
func TestExhaustedNotice(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	var counted []protocol.ExhaustedReason
	e := newEnv(t, "b.example", now, envOpts{keyPackages: directory.KeyPackageConfig{LowThreshold: 1,
		Metrics: directory.KeyPackageMetrics{ExhaustedNotices: func(r protocol.ExhaustedReason) { counted = append(counted, r) }}}})
	bob := e.client(t, "bob", "dev")
	g := newSigner(t, suite1)
	id := "mimi://b.example/u/bob"
	e.upload(t, bob, g.keyPackage(t, id, now, kpOpts{}), g.keyPackage(t, id, now, kpOpts{lastResort: true}))
	tok := e.token(t, "bob")
	for range 4 {
		if r := e.fetch(t, "bob", tok, suite1); r.Status != protocol.StatusOK {
			t.Fatal(r.Status)
		}
	}
	if low, ex := e.notices(t, bob); low != 1 || fmt.Sprint(ex) != "[last_resort_served]" {
		t.Fatalf("notices: %d low, exhausted %v", low, ex)
	}
	e.upload(t, bob, g.keyPackage(t, id, now, kpOpts{}))
	e.fetch(t, "bob", tok, suite1) // the new one-time KeyPackage
	e.fetch(t, "bob", tok, suite1) // the last resort again: told again
	if _, ex := e.notices(t, bob); len(ex) != 2 || fmt.Sprint(counted) != "[last_resort_served last_resort_served]" {
		t.Fatalf("after a refill: %v (metrics %v)", ex, counted)
	}
}

func TestClaimLimitsConfig(t *testing.T) {
	err := directory.KeyPackageConfig{Claims: directory.ClaimLimits{TokenPerHour: 1, UserPerHour: 1}}.Validate()
	if err == nil || len(err.(interface{ Unwrap() []error }).Unwrap()) != 2 {
		t.Fatalf("Validate = %v, want two problems", err)
	}
}
