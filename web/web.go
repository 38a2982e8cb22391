// Package web is the admin dashboard: server-rendered pages (html/template, with
// CSS and JavaScript written here and embedded), logins with an admin token or a
// name and password, sessions in cookies, CSRF tokens on every change, an audit
// log, and a live stream (server-sent events) fed by one shared sampler. It works
// on the narrow interfaces of deps.go; cmd/provider wires the real parts.
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/mimids/mimids/directory"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Limit is one configured limit the policy page shows.
type Limit struct{ Name, Value string }

// Config is the dashboard's configuration.
type Config struct {
	Domain string
	// IdleTimeout ends a session unused for this long; MaxAge ends any session
	// this long after its login.
	IdleTimeout, MaxAge time.Duration
	// LoginRate (attempts per second) and LoginBurst bound login attempts per
	// source address.
	LoginRate  float64
	LoginBurst int
	// MaxSessions bounds the live sessions; a login beyond it is refused.
	MaxSessions int
	// Limits are shown on the policy page.
	Limits []Limit
	// LowStock is the KeyPackage count under which a client's stock is shown as low
	// (the provider's key_packages.low_threshold; default 5).
	LowStock int
	Now      func() time.Time
	Logger   *slog.Logger
}

// WithDefaults fills in what is unset.
func (c Config) WithDefaults() Config {
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 30 * time.Minute
	}
	if c.MaxAge <= 0 {
		c.MaxAge = 12 * time.Hour
	}
	if c.LoginRate <= 0 {
		c.LoginRate = 10.0 / 60
	}
	if c.LoginBurst <= 0 {
		c.LoginBurst = 10
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 1000
	}
	if c.LowStock <= 0 {
		c.LowStock = 5
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Dashboard serves the dashboard under /dashboard/ (and redirects / to it).
type Dashboard struct {
	// Static after construction.
	cfg    Config
	deps   Deps
	log    *slog.Logger
	pages  map[string]*template.Template
	mux    *http.ServeMux
	static http.Handler

	sessions *sessions
	live     *sampler
}

// New builds the dashboard; call Run to feed its live stream.
func New(cfg Config, deps Deps) (*Dashboard, error) {
	cfg = cfg.WithDefaults()
	if deps.Admins == nil || deps.Users == nil || deps.Sockets == nil || deps.Metrics == nil {
		return nil, errors.New("web: Admins, Users, Sockets and Metrics are required")
	}
	d := &Dashboard{cfg: cfg, deps: deps, log: cfg.Logger, mux: http.NewServeMux(),
		sessions: newSessions(cfg), live: newSampler(deps.Metrics, cfg.Now, cfg.Logger)}
	var err error
	if d.pages, err = parsePages(); err != nil {
		return nil, err
	}
	sub, _ := fs.Sub(staticFS, "static")
	d.static = http.StripPrefix("/dashboard/static/", http.FileServer(http.FS(sub)))
	d.routes()
	return d, nil
}

// Run samples the provider once a second for the live stream until ctx ends.
func (d *Dashboard) Run(ctx context.Context) error { return d.live.run(ctx) }

func (d *Dashboard) routes() {
	m := d.mux
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/dashboard/", http.StatusSeeOther)
	})
	m.Handle("GET /dashboard/static/", d.static)
	m.HandleFunc("GET /dashboard/login", d.loginPage)
	m.HandleFunc("POST /dashboard/login", d.login)
	m.HandleFunc("POST /dashboard/logout", d.change(d.logout, false))
	view := func(p string, h func(http.ResponseWriter, *http.Request, *session)) {
		m.HandleFunc("GET "+p, d.view(h))
	}
	act := func(p string, h func(http.ResponseWriter, *http.Request, *session)) {
		m.HandleFunc("POST "+p, d.change(h, true))
	}
	view("/dashboard/{$}", d.overview)
	view("/dashboard/events", d.events)
	view("/dashboard/users", d.usersPage)
	view("/dashboard/users/{user}", d.userPage)
	act("/dashboard/users", d.addUser)
	act("/dashboard/clients", d.addClient)
	act("/dashboard/users/{user}/clients/{client}/revoke", d.revokeClient)
	view("/dashboard/groups", d.groupsPage)
	view("/dashboard/groups/{group}", d.groupPage)
	act("/dashboard/groups/{group}/terminate", d.terminate)
	view("/dashboard/peers", d.peersPage)
	act("/dashboard/peers", d.addPeer)
	act("/dashboard/peers/remove", d.removePeer)
	view("/dashboard/policy", d.policyPage)
	act("/dashboard/bans", d.ban)
	act("/dashboard/bans/remove", d.unban)
	view("/dashboard/keys", d.keysPage)
	act("/dashboard/keys/ohttp/rotate", d.rotateOHTTP)
	act("/dashboard/keys/discovery/rotate", d.rotateDiscovery)
	act("/dashboard/keys/discovery/revoke", d.revokeDiscovery)
	view("/dashboard/audit", d.auditPage)
}

// ServeHTTP serves the dashboard.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin") // "no-referrer" would make browsers send Origin: null
	h.Set("X-Frame-Options", "DENY")
	if !strings.HasPrefix(r.URL.Path, "/dashboard/static/") {
		h.Set("Cache-Control", "no-store")
	}
	d.mux.ServeHTTP(w, r)
}

// audit records one change; a failure to record is logged (the change is made).
func (d *Dashboard) audit(r *http.Request, s *session, action, format string, args ...any) {
	detail := fmt.Sprintf(format, args...)
	if err := d.deps.Admins.Record(r.Context(), s.who.String(), action, detail); err != nil {
		d.log.Error("web: audit", "action", action, "err", err)
	}
}

// principalName is who a session is, as the pages show it.
func principalName(p directory.AdminPrincipal) string {
	role := ""
	if p.ReadOnly {
		role = " (read-only)"
	}
	return p.String() + role
}
