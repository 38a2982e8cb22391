package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mimids/mimids/directory"
)

const (
	cookieName = "mimids_session"
	// recheckEvery is how often a session's principal is checked against the store
	// (a revoked token or changed password ends its sessions within this).
	recheckEvery = 5 * time.Second
)

// session is one logged-in admin.
type session struct {
	// Static after construction.
	id      string // the cookie's value hashed (the map key)
	who     directory.AdminPrincipal
	csrf    string
	created time.Time

	// Guarded by sessions.mu.
	lastUsed, checked time.Time
	flash             string
}

// sessions are the live sessions and the login rate limit.
type sessions struct {
	// Static after construction.
	cfg    Config
	logins *directory.TokenBuckets

	mu sync.Mutex
	m  map[string]*session // by hashed cookie value; Guarded by mu.
}

func newSessions(cfg Config) *sessions {
	return &sessions{cfg: cfg, m: make(map[string]*session),
		logins: directory.NewTokenBuckets(cfg.LoginRate, cfg.LoginBurst, 10_000, cfg.Now)}
}

func hashID(v string) string {
	h := sha256.Sum256([]byte(v))
	return string(h[:])
}

func randomString() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// open starts a session and returns its cookie value; ok is false at MaxSessions.
func (ss *sessions) open(who directory.AdminPrincipal) (string, bool) {
	now := ss.cfg.Now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.m) >= ss.cfg.MaxSessions {
		for k, s := range ss.m {
			if ss.expired(s, now) {
				delete(ss.m, k)
			}
		}
		if len(ss.m) >= ss.cfg.MaxSessions {
			return "", false
		}
	}
	v := randomString()
	s := &session{id: hashID(v), who: who, csrf: randomString(), created: now, lastUsed: now, checked: now}
	ss.m[s.id] = s
	return v, true
}

func (ss *sessions) expired(s *session, now time.Time) bool {
	return now.Sub(s.lastUsed) >= ss.cfg.IdleTimeout || now.Sub(s.created) >= ss.cfg.MaxAge
}

// get returns the live session of a request, touching it; needCheck says its
// principal is due for a check against the store.
func (ss *sessions) get(r *http.Request) (s *session, needCheck bool) {
	c, err := r.Cookie(cookieName)
	if err != nil || len(c.Value) > 100 {
		return nil, false
	}
	now := ss.cfg.Now()
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s = ss.m[hashID(c.Value)]
	if s == nil {
		return nil, false
	}
	if ss.expired(s, now) {
		delete(ss.m, s.id)
		return nil, false
	}
	s.lastUsed = now
	if now.Sub(s.checked) >= recheckEvery {
		s.checked = now
		needCheck = true
	}
	return s, needCheck
}

// alive reports whether a session is still open (the live stream asks).
func (ss *sessions) alive(s *session) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.m[s.id] == s && !ss.expired(s, ss.cfg.Now())
}

func (ss *sessions) close(s *session) {
	ss.mu.Lock()
	delete(ss.m, s.id)
	ss.mu.Unlock()
}

func (ss *sessions) setFlash(s *session, msg string) {
	ss.mu.Lock()
	s.flash = msg
	ss.mu.Unlock()
}

func (ss *sessions) takeFlash(s *session) string {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	f := s.flash
	s.flash = ""
	return f
}

// source is the address a request came from, for the login rate limit.
func source(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// authed returns the request's session, or answers and returns nil: pages
// redirect to the login page, the live stream and changes get 401.
func (d *Dashboard) authed(w http.ResponseWriter, r *http.Request, redirect bool) *session {
	s, needCheck := d.sessions.get(r)
	if s != nil && needCheck {
		if err := d.deps.Admins.Check(r.Context(), s.who); err != nil {
			d.log.Info("web: session ended: its login no longer holds", "who", s.who.String(), "err", err)
			d.sessions.close(s)
			s = nil
		}
	}
	if s == nil {
		if redirect {
			http.Redirect(w, r, "/dashboard/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		} else {
			d.fail(w, r, nil, http.StatusUnauthorized, "Not logged in", "Log in to the dashboard first.")
		}
	}
	return s
}

// view wraps a page: a session is required.
func (d *Dashboard) view(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		redirect := r.URL.Path != "/dashboard/events"
		if s := d.authed(w, r, redirect); s != nil {
			h(w, r, s)
		}
	}
}

// change wraps a change: a session, a matching CSRF token and Origin, and (when
// write) a role that may change things.
func (d *Dashboard) change(h func(http.ResponseWriter, *http.Request, *session), write bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s := d.authed(w, r, false)
		if s == nil {
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			d.fail(w, r, s, http.StatusBadRequest, "Bad form", "The form could not be read: "+err.Error())
			return
		}
		got := r.PostForm.Get("csrf")
		if got == "" {
			got = r.Header.Get("X-CSRF-Token")
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 || !sameOrigin(r) {
			d.fail(w, r, s, http.StatusForbidden, "Refused", "The form's CSRF token is missing or wrong: reload the page and try again.")
			return
		}
		if write && s.who.ReadOnly {
			d.fail(w, r, s, http.StatusForbidden, "Read-only", "This login is read-only: it changes nothing.")
			return
		}
		h(w, r, s)
	}
}

// sameOrigin refuses a request whose Origin header names another site.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	d.render(w, r, nil, http.StatusOK, "login", "Log in", loginData{Next: safeNext(r.URL.Query().Get("next"))})
}

type loginData struct{ Next, Error string }

// safeNext keeps a post-login redirect on the dashboard.
func safeNext(n string) string {
	if !strings.HasPrefix(n, "/dashboard/") || strings.HasPrefix(n, "//") || strings.ContainsAny(n, "\\\r\n") {
		return "/dashboard/"
	}
	return n
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if err := r.ParseForm(); err != nil {
		d.render(w, r, nil, http.StatusBadRequest, "login", "Log in", loginData{Next: "/dashboard/", Error: "The form could not be read."})
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	if !d.sessions.logins.Allow(source(r)) {
		w.Header().Set("Retry-After", "60")
		d.render(w, r, nil, http.StatusTooManyRequests, "login", "Log in", loginData{Next: next, Error: "Too many login attempts from your address: wait a minute."})
		return
	}
	var who directory.AdminPrincipal
	var err error
	if tok := strings.TrimSpace(r.PostForm.Get("token")); tok != "" {
		who, err = d.deps.Admins.LoginToken(r.Context(), tok)
	} else {
		who, err = d.deps.Admins.LoginPassword(r.Context(), r.PostForm.Get("name"), r.PostForm.Get("password"))
	}
	if err != nil {
		if !errors.Is(err, directory.ErrBadLogin) {
			d.log.Error("web: login", "err", err)
		}
		d.render(w, r, nil, http.StatusUnauthorized, "login", "Log in", loginData{Next: next, Error: "Wrong admin token, or wrong name or password."})
		return
	}
	v, ok := d.sessions.open(who)
	if !ok {
		d.render(w, r, nil, http.StatusServiceUnavailable, "login", "Log in", loginData{Next: next, Error: "Too many open sessions: try later."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: v, Path: "/dashboard/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: int(d.cfg.MaxAge / time.Second)})
	d.log.Info("web: login", "who", who.String(), "source", source(r))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request, s *session) {
	d.sessions.close(s)
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/dashboard/", HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/dashboard/login", http.StatusSeeOther)
}
