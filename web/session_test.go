package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/sqlite"
	"github.com/mimids/mimids/web"
)

// clock is a test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type noSockets struct{}

func (noSockets) ClientSockets(int64) (int, time.Time)       { return 0, time.Time{} }
func (noSockets) Revoke(int64, string) int                   { return 0 }
func (noSockets) Sample(context.Context) (web.Sample, error) { return web.Sample{}, nil }

// TestSessionExpiry runs the dashboard on a test clock: a session ends when idle
// too long, at its absolute age however busy, and when its token is revoked.
func TestSessionExpiry(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "store.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	dir := directory.New(db, "a.example")
	token, _, err := dir.NewAdminToken(ctx, "ops", 0)
	if err != nil {
		t.Fatal(err)
	}
	d, err := web.New(web.Config{Domain: "a.example", Now: clk.now, IdleTimeout: 30 * time.Minute, MaxAge: 2 * time.Hour},
		web.Deps{Admins: directory.NewAdmins(dir, db), Users: dir, Sockets: noSockets{}, Metrics: noSockets{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	login := func() *admin {
		a := newBrowser(t, srv.URL)
		if code := a.login(url.Values{"token": {token}}); code != http.StatusSeeOther {
			t.Fatalf("login: %d", code)
		}
		return a
	}
	open := func(a *admin) bool {
		code, _ := a.get("/dashboard/users")
		return code == http.StatusOK
	}

	a := login()
	clk.add(29 * time.Minute)
	if !open(a) {
		t.Fatal("refused before the idle timeout")
	}
	clk.add(30 * time.Minute)
	if open(a) {
		t.Fatal("open after 30 idle minutes")
	}

	a = login()
	for i := 0; i < 7; i++ { // busy every 20 minutes: 2h20 in all
		clk.add(20 * time.Minute)
		if got, want := open(a), i < 5; got != want {
			t.Fatalf("after %v: open %v, want %v", time.Duration(i+1)*20*time.Minute, got, want)
		}
	}

	a = login()
	if _, err := dir.RevokeAdminToken(ctx, "ops"); err != nil {
		t.Fatal(err)
	}
	clk.add(10 * time.Second) // past the recheck interval
	if open(a) {
		t.Fatal("open after its token was revoked")
	}
	if code := newBrowser(t, srv.URL).login(url.Values{"token": {token}}); code != http.StatusUnauthorized {
		t.Fatalf("login with a revoked token: %d", code)
	}
}
