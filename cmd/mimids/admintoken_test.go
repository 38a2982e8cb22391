package main

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// adminGet answers GET path on a running server with token, as a status code.
func adminGet(t *testing.T, addr, path, token string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode == 401 && !strings.HasPrefix(ct, "application/problem+json") {
		t.Errorf("401 with Content-Type %q", ct)
	}
	return resp.StatusCode
}

// newAdminToken runs `mimids admin token add` in-process on data and returns the token.
func newAdminToken(t *testing.T, data string, args ...string) string {
	t.Helper()
	code, out, errs := mimids(t, append([]string{"admin", "token", "add", "-data", data}, args...)...)
	tok, ok := strings.CutPrefix(strings.SplitN(out, "\n", 2)[0], "admin token: ")
	if code != 0 || !ok {
		t.Fatalf("admin token add %q: exit %d, stdout %q, stderr %q", args, code, out, errs)
	}
	return tok
}

// within polls until f is true, for at most d.
func within(d time.Duration, f func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(20 * time.Millisecond) {
		if f() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// TestAdminTokensAgainstRunningServer runs `mimids serve` as a separate process and the
// admin token verbs beside it on the same store: a token the CLI revokes, or one that
// expires, is refused by the running server's admin API (401) within a second, while
// the others keep working; `list` shows each without the token itself.
func TestAdminTokensAgainstRunningServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	data, addr := t.TempDir(), freeAddr(t)
	s := startServer(t, data, addr)
	ops := newAdminToken(t, data, "ops")
	legacyCode, legacyOut, _ := mimids(t, "admin", "token", "-data", data, "ci")
	ci, _ := strings.CutPrefix(strings.SplitN(legacyOut, "\n", 2)[0], "admin token: ")
	if legacyCode != 0 || !strings.HasPrefix(ci, "mat_") {
		t.Fatalf("legacy 'admin token NAME': exit %d, %q", legacyCode, legacyOut)
	}
	short := newAdminToken(t, data, "-expires", "1s", "short")
	long := newAdminToken(t, data, "-expires", "30d", "long")
	for _, tok := range []string{s.adminToken, ops, ci, long} {
		if code := adminGet(t, addr, "/admin/v1/users", tok); code != 200 {
			t.Fatalf("fresh token: %d", code)
		}
	}

	code, out, errs := mimids(t, "admin", "token", "revoke", "-data", data, "ops")
	if code != 0 || !strings.Contains(out, "revoked admin token 2 (ops)") {
		t.Fatalf("revoke ops: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if !within(time.Second, func() bool { return adminGet(t, addr, "/admin/v1/users", ops) == 401 }) {
		t.Fatal("running server still accepts a token the CLI revoked")
	}
	// By the token itself (the issue's `admin token revoke mat_...`).
	if code, out, errs := mimids(t, "admin", "token", "revoke", "-data", data, ci); code != 0 || !strings.Contains(out, "(ci)") {
		t.Fatalf("revoke by token: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	if !within(time.Second, func() bool { return adminGet(t, addr, "/admin/v1/users", ci) == 401 }) {
		t.Fatal("running server still accepts a token revoked by value")
	}
	if !within(5*time.Second, func() bool { return adminGet(t, addr, "/admin/v1/users", short) == 401 }) {
		t.Fatal("running server still accepts an expired token")
	}
	for _, tok := range []string{s.adminToken, long} {
		if code := adminGet(t, addr, "/admin/v1/users", tok); code != 200 {
			t.Fatalf("untouched token refused after the others were revoked: %d", code)
		}
	}

	code, out, errs = mimids(t, "admin", "token", "list", "-data", data)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if code != 0 || len(lines) != 6 || lines[0] != "id\tname\tcreated\texpires\tlast used\tstate\trole" {
		t.Fatalf("list: exit %d, stderr %q, stdout:\n%s", code, errs, out)
	}
	for i, want := range []struct{ name, state string }{
		{"first-admin", "active"}, {"ops", "revoked"}, {"ci", "revoked"}, {"short", "expired"}, {"long", "active"},
	} {
		f := strings.Split(lines[i+1], "\t")
		used := want.name == "short" || f[4] != "never" // short may expire before its first use
		if len(f) != 7 || f[6] != "full" || f[1] != want.name || !strings.HasPrefix(f[5], want.state) || !used {
			t.Errorf("list line %d %q, want %s %s, used", i+1, lines[i+1], want.name, want.state)
		}
	}
	if strings.Contains(out, "mat_") {
		t.Error("list shows a token")
	}
	if code, _, errs := mimids(t, "admin", "token", "revoke", "-data", data, "nobody"); code != 1 || !strings.Contains(errs, "not found") {
		t.Errorf("revoke unknown: exit %d, %q", code, errs)
	}
}
