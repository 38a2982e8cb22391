package web

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

// page is what every template gets.
type page struct {
	Title, Nav, Domain string
	Who                string // empty on the login page
	ReadOnly           bool
	CSRF               string
	Flash              string
	Live               bool // the page follows the live stream
	Data               any
}

// nodeArgs is what the recursive "node" template of the group page gets.
type nodeArgs struct {
	N     *node
	CSRF  string
	RO    bool
	Group string
}

var funcs = template.FuncMap{
	"args": func(n *node, csrf string, ro bool, group string) nodeArgs { return nodeArgs{n, csrf, ro, group} },
	"hex":  func(b []byte) string { return hex.EncodeToString(b) },
	"short": func(b []byte) string {
		s := hex.EncodeToString(b)
		if len(s) > 16 {
			return s[:16] + "…"
		}
		return s
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
}

// parsePages parses each page with the layout.
func parsePages() (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("web: templates: %w", err)
	}
	names, _ := fs.Glob(templateFS, "templates/*.html")
	out := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(path.Base(n), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", n, err)
		}
		out[base] = t
	}
	return out, nil
}

// render writes a page; s is nil on the login page.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, s *session, status int, name, title string, data any) {
	p := page{Title: title, Nav: name, Domain: d.cfg.Domain, Data: data, Live: name == "overview" || name == "user"}
	if s != nil {
		p.Who, p.ReadOnly, p.CSRF, p.Flash = principalName(s.who), s.who.ReadOnly, s.csrf, d.sessions.takeFlash(s)
	}
	var buf bytes.Buffer
	if err := d.pages[name].Execute(&buf, p); err != nil {
		d.log.Error("web: render", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

type failData struct{ Message, Back string }

// fail answers a refused or bad request with a page that says why.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, s *session, status int, title, msg string) {
	back := "/dashboard/"
	if ref := r.Header.Get("Referer"); strings.Contains(ref, "/dashboard/") {
		back = ref[strings.Index(ref, "/dashboard/"):]
	}
	if s == nil {
		back = "/dashboard/login"
	}
	d.render(w, r, s, status, "error", title, failData{Message: msg, Back: safeNext(back)})
}

// done ends a change: a message for the next page and a redirect to it.
func (d *Dashboard) done(w http.ResponseWriter, r *http.Request, s *session, to, msg string) {
	d.sessions.setFlash(s, msg)
	http.Redirect(w, r, to, http.StatusSeeOther)
}
