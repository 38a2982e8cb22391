package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
)

// runAdminTokens checks creation, lookup by hash, listing, revocation, expiry and
// last-use times of admin tokens.
func runAdminTokens(t *testing.T, s directory.Store, at time.Time) {
	ctx := context.Background()
	if n, err := s.CountAdminTokens(ctx); err != nil || n != 0 {
		t.Fatalf("CountAdminTokens = %d, %v", n, err)
	}
	root, err := s.CreateAdminToken(ctx, directory.AdminToken{Name: "root", CreatedAt: at}, []byte("ah"))
	if err != nil || root.ID == 0 || root.Name != "root" || !root.CreatedAt.Equal(at) || !root.ExpiresAt.IsZero() {
		t.Fatalf("CreateAdminToken = %+v, %v", root, err)
	}
	exp := at.Add(time.Hour)
	ops, err := s.CreateAdminToken(ctx, directory.AdminToken{Name: "ops", CreatedAt: at, ExpiresAt: exp}, []byte("bh"))
	if err != nil || ops.ID == root.ID || !ops.ExpiresAt.Equal(exp) {
		t.Fatalf("CreateAdminToken with expiry = %+v, %v", ops, err)
	}
	if _, err := s.CreateAdminToken(ctx, directory.AdminToken{Name: "dup", CreatedAt: at}, []byte("ah")); !errors.Is(err, directory.ErrExists) {
		t.Fatalf("same hash twice: %v", err)
	}
	got, err := s.AdminTokenByHash(ctx, []byte("bh"))
	if err != nil || got != ops {
		t.Fatalf("AdminTokenByHash = %+v, %v; want %+v", got, err, ops)
	}
	if _, err := s.AdminTokenByHash(ctx, bytes.Repeat([]byte("x"), 32)); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("unknown admin token: %v", err)
	}
	used := at.Add(time.Minute)
	if err := s.TouchAdminToken(ctx, root.ID, used); err != nil {
		t.Fatal(err)
	}
	rev := at.Add(2 * time.Minute)
	r, err := s.RevokeAdminToken(ctx, root.ID, rev)
	if err != nil || !r.RevokedAt.Equal(rev) || !r.LastUsedAt.Equal(used) {
		t.Fatalf("RevokeAdminToken = %+v, %v", r, err)
	}
	if r, err := s.RevokeAdminToken(ctx, root.ID, rev.Add(time.Hour)); err != nil || !r.RevokedAt.Equal(rev) {
		t.Fatalf("revoke again = %+v, %v; want the first time kept", r, err)
	}
	if _, err := s.RevokeAdminToken(ctx, 9999, rev); !errors.Is(err, directory.ErrNotFound) {
		t.Fatalf("revoke unknown id: %v", err)
	}
	ts, err := s.ListAdminTokens(ctx)
	if err != nil || len(ts) != 2 || ts[0].ID != root.ID || ts[1] != ops || !ts[0].RevokedAt.Equal(rev) {
		t.Fatalf("ListAdminTokens = %+v, %v", ts, err)
	}
	if n, err := s.CountAdminTokens(ctx); err != nil || n != 2 {
		t.Fatalf("CountAdminTokens = %d, %v; want 2 (revoked ones count)", n, err)
	}
}
