package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/directory"
)

func TestAdminPasswdAndReadOnlyToken(t *testing.T) {
	data := t.TempDir()
	withStdin := func(in string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(args, strings.NewReader(in), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, errs := withStdin("correct horse battery\n", "admin", "passwd", "-data", data, "carol"); code != 0 || !strings.Contains(out, "password set for admin carol (full)") {
		t.Fatalf("passwd: %d %q %q", code, out, errs)
	}
	if code, _, errs := withStdin("short\n", "admin", "passwd", "-data", data, "carol"); code != 1 || !strings.Contains(errs, "unacceptable password") {
		t.Fatalf("short password: %d %q", code, errs)
	}
	if code, _, errs := withStdin("long enough password\n", "admin", "passwd", "-data", data, "Bad Name"); code != 2 || errs == "" {
		t.Fatalf("bad name: %d %q", code, errs)
	}
	if code, out, _ := withStdin("another long password\n", "admin", "passwd", "-data", data, "-read-only", "viewer"); code != 0 || !strings.Contains(out, "(read-only)") {
		t.Fatalf("read-only passwd: %d %q", code, out)
	}
	code, out, errs := mimids(t, "admin", "token", "add", "-data", data, "-read-only", "watcher")
	if code != 0 || !strings.Contains(out, "read-only: true") {
		t.Fatalf("read-only token: %d %q %q", code, out, errs)
	}
	token := strings.TrimSpace(strings.TrimPrefix(strings.Split(out, "\n")[0], "admin token:"))
	if code, out, _ := mimids(t, "admin", "token", "list", "-data", data); code != 0 || !strings.Contains(out, "\twatcher\t") || !strings.HasSuffix(strings.TrimSpace(out), "read-only") {
		t.Fatalf("list: %d %q", code, out)
	}

	ctx := context.Background()
	cfg := provider.DefaultConfig()
	cfg.DataDir = data
	db, err := provider.OpenStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	admins := directory.NewAdmins(directory.New(db, "a.example"), db)
	if p, err := admins.LoginPassword(ctx, "carol", "correct horse battery"); err != nil || p.ReadOnly {
		t.Fatalf("carol: %+v %v", p, err)
	}
	if _, err := admins.LoginPassword(ctx, "carol", "correct horse batterY"); err != directory.ErrBadLogin {
		t.Fatalf("wrong password: %v", err)
	}
	if p, err := admins.LoginPassword(ctx, "viewer", "another long password"); err != nil || !p.ReadOnly {
		t.Fatalf("viewer: %+v %v", p, err)
	}
	if p, err := admins.LoginToken(ctx, token); err != nil || !p.ReadOnly || p.Name != "watcher" {
		t.Fatalf("read-only token: %+v %v", p, err)
	}
	// The CLI's changes are audited (the failed ones and the listings are not), and a
	// token given as an argument is not written down.
	if code, _, errs := mimids(t, "admin", "token", "revoke", "-data", data, token); code != 0 {
		t.Fatalf("revoke: %q", errs)
	}
	es, err := admins.Audit(ctx, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range es {
		got = append(got, e.Action+" "+e.Detail)
		if !strings.HasPrefix(e.Actor, "cli") || strings.Contains(e.Detail, "mat_") {
			t.Errorf("audit entry %+v", e)
		}
	}
	want := []string{"admin token revoke (a token)", "admin token add watcher", "admin passwd viewer", "admin passwd carol"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("audit %q, want %q", got, want)
	}
}
