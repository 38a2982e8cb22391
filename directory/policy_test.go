package directory_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/protocol"
	"github.com/mimids/mimids/sqlite"
)

func newPolicy(t *testing.T, cfg directory.PolicyConfig) *directory.Policy {
	t.Helper()
	p, err := directory.NewPolicy(policyStore(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReports(t *testing.T) {
	ctx := context.Background()
	p := newPolicy(t, directory.PolicyConfig{})
	alice := directory.Reporter{ClientID: 3, UserURI: "mimi://a.example/u/alice"}
	r := protocol.Report{Kind: protocol.ReportFollower, GroupID: []byte("g"), Subject: []byte("b.example"), Reason: "drops messages"}
	if _, err := p.FileReport(ctx, alice, r); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []protocol.Report{{Kind: 0}, {Kind: 9}, {Kind: protocol.ReportHub, Reason: "\xff"}} {
		if _, err := p.FileReport(ctx, alice, bad); !errors.Is(err, directory.ErrMalformed) {
			t.Fatalf("bad report %+v: %v", bad, err)
		}
	}
	if _, err := p.FileReport(ctx, directory.Reporter{}, r); !errors.Is(err, directory.ErrMalformed) {
		t.Fatalf("report from no local client: %v", err)
	}
	rs, err := p.ListReports(ctx, 10)
	if err != nil || len(rs) != 1 || rs[0].Kind != protocol.ReportFollower || rs[0].ReporterUser != alice.UserURI || rs[0].Reason != "drops messages" {
		t.Fatalf("reports %+v, %v", rs, err)
	}
}

func TestPolicyBansAndLimits(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	p := newPolicy(t, directory.PolicyConfig{RatePerSecond: 1, RateBurst: 2, BanCacheTTL: time.Minute, Now: clock})
	if err := p.Ban(ctx, "mimi://a.example/d/mallory/phone", "spam"); err != nil {
		t.Fatal(err)
	}
	for _, uri := range []string{"mimi://a.example/u/mallory", "mimi://a.example/d/mallory/laptop"} {
		if banned, err := p.Banned(ctx, uri); !banned || err != nil {
			t.Fatalf("Banned(%s) = %v, %v", uri, banned, err)
		}
	}
	if banned, _ := p.Banned(ctx, "mimi://a.example/u/alice"); banned {
		t.Fatal("alice banned")
	}
	if bans, _ := p.ListBans(ctx); len(bans) != 1 || bans[0].UserURI != "mimi://a.example/u/mallory" {
		t.Fatalf("bans %+v", bans)
	}
	if ok, err := p.Unban(ctx, "mimi://a.example/u/mallory"); !ok || err != nil {
		t.Fatalf("Unban = %v, %v", ok, err)
	}
	if banned, _ := p.Banned(ctx, "mimi://a.example/u/mallory"); banned {
		t.Fatal("still banned after Unban")
	}
	if !p.Allow("a") || !p.Allow("a") || p.Allow("a") {
		t.Fatal("burst of 2 not enforced")
	}
	now = now.Add(time.Second)
	if !p.Allow("a") || p.Allow("a") {
		t.Fatal("refill of 1/s not applied")
	}
	if _, err := directory.NewPolicy(nil, directory.PolicyConfig{}); err == nil {
		t.Fatal("NewPolicy without a store")
	}
	if _, err := directory.NewPolicy(policyStore(t), directory.PolicyConfig{RatePerSecond: 1}); !errors.Is(err, directory.ErrRateLimitConfig) {
		t.Fatalf("rate without burst: %v", err)
	}
}

// policyStore opens an empty SQLite store in a temp dir.
func policyStore(t *testing.T) directory.PolicyStore {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "mimids.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
