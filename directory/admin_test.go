package directory_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/sqlite"
)

func adminDir(t *testing.T) *directory.Directory {
	t.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "mimids.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return directory.New(db, "a.example")
}

func TestAdminTokenExpiryAndLastUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		d := adminDir(t)
		token, tok, err := d.NewAdminToken(ctx, "ops", time.Hour)
		if err != nil || tok.ExpiresAt.Sub(tok.CreatedAt) != time.Hour {
			t.Fatalf("NewAdminToken = %+v, %v", tok, err)
		}
		if ok, err := d.AdminAuthenticate(ctx, token); !ok || err != nil {
			t.Fatalf("fresh token refused: %v", err)
		}
		ts, _ := d.ListAdminTokens(ctx)
		if len(ts) != 1 || !ts[0].LastUsedAt.Equal(time.Now().UTC().Truncate(time.Millisecond)) {
			t.Fatalf("last use not recorded: %+v", ts)
		}
		time.Sleep(time.Hour - time.Second)
		if ok, _ := d.AdminAuthenticate(ctx, token); !ok {
			t.Fatal("token refused a second before it expires")
		}
		time.Sleep(time.Second)
		if ok, err := d.AdminAuthenticate(ctx, token); ok || err != nil {
			t.Fatalf("expired token: ok %v, %v", ok, err)
		}
		ts, _ = d.ListAdminTokens(ctx)
		if st := ts[0].State(time.Now()); st[:7] != "expired" {
			t.Fatalf("State = %q", st)
		}
	})
}

func TestAdminTokenRevoke(t *testing.T) {
	ctx := context.Background()
	d := adminDir(t)
	first, err := d.EnsureAdmin(ctx)
	if err != nil || first == "" {
		t.Fatalf("EnsureAdmin = %q, %v", first, err)
	}
	a1, t1, _ := d.NewAdminToken(ctx, "admin", 0)
	a2, t2, _ := d.NewAdminToken(ctx, "admin", 0)
	ops, _, _ := d.NewAdminToken(ctx, "ops", 0)
	for _, name := range []string{"", "42", "mat_x", "Ops", "-x"} {
		if _, _, err := d.NewAdminToken(ctx, name, 0); !errors.Is(err, directory.ErrAdminTokenName) {
			t.Errorf("name %q: %v", name, err)
		}
	}
	if _, _, err := d.NewAdminToken(ctx, "x", -time.Second); err == nil {
		t.Error("negative lifetime accepted")
	}
	for _, tc := range []struct {
		ref  string
		want error
		gone string // the token refused afterwards
	}{
		{"admin", directory.ErrAmbiguous, ""},
		{"nobody", directory.ErrNotFound, ""},
		{"9999", directory.ErrNotFound, ""},
		{"mat_unknown", directory.ErrNotFound, ""},
		{itoa(t1.ID), nil, a1},
		{"admin", nil, a2}, // one active "admin" left: the name is no longer ambiguous
		{itoa(t2.ID), nil, a2},
		{ops, nil, ops}, // by the token itself
		{"first-admin", nil, first},
	} {
		_, err := d.RevokeAdminToken(ctx, tc.ref)
		if !errors.Is(err, tc.want) {
			t.Fatalf("revoke %q: %v, want %v", tc.ref, err, tc.want)
		}
		if tc.gone != "" {
			if ok, _ := d.AdminAuthenticate(ctx, tc.gone); ok {
				t.Fatalf("revoked by %q, still accepted", tc.ref)
			}
		}
	}
	if tok, err := d.EnsureAdmin(ctx); tok != "" || err != nil {
		t.Fatalf("EnsureAdmin after revoking every token = %q, %v; want none made", tok, err)
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
