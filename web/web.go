// Package web is the admin dashboard. Until the dashboard issue lands it serves a
// placeholder page that links to what an operator can already use.
package web

import (
	"html/template"
	"net/http"
)

var placeholder = template.Must(template.New("index").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mimids · {{.Domain}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;line-height:1.5}code{background:#eee;padding:0 .2em}</style>
</head><body>
<h1>mimids</h1>
<p>Provider <code>{{.Domain}}</code> is running.</p>
<p>The dashboard is not built yet. Meanwhile:</p>
<ul>
<li><a href="/healthz">/healthz</a> and <a href="/readyz">/readyz</a></li>
<li><a href="/metrics">/metrics</a> (Prometheus)</li>
<li>the admin HTTP API under <code>/admin/v1/</code> (bearer token) and the <code>mimids</code> CLI</li>
<li>the client socket at <code>/v1/socket</code> (subprotocol <code>mimids.v1</code>)</li>
</ul>
</body></html>
`))

// Placeholder returns the placeholder dashboard for a provider domain.
func Placeholder(domain string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'unsafe-inline'")
		placeholder.Execute(w, struct{ Domain string }{domain})
	})
}
