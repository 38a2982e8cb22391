package federation

import (
	"context"
	"crypto/x509"
	"net"
	"net/http"
	"strings"
	"time"
)

// Plain HTTP between providers over the federation listener (docs/protocol.md
// §5.13): besides the link upgrade, the listener serves the handlers registered
// with HandleHTTP, to allowed peers only (the TLS handshake already refused any
// other), and PeerHTTP gives the client that reaches a peer's listener with the
// same checks as a link's dial: our certificate offered, the peer's checked against
// its allow-list entry.

type peerKey struct{}

// PeerOf is the allowed peer whose certificate a request served by a HandleHTTP
// handler presented (the first, bytewise, if it proves several); "" elsewhere.
func PeerOf(ctx context.Context) string {
	s, _ := ctx.Value(peerKey{}).(string)
	return s
}

// HandleHTTP registers h for pattern (an http.ServeMux pattern such as
// "POST /path") on the federation listener. Register before Run.
func (l *Links) HandleHTTP(pattern string, h http.Handler) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state != 0 || h == nil {
		panic("federation: HTTP handler nil or registered after Run")
	}
	l.httpHandlers = append(l.httpHandlers, httpHandler{pattern, h})
}

type httpHandler struct {
	pattern string
	h       http.Handler
}

// peerOnly serves h to requests whose client certificate proves an allowed peer
// now (the allow-list may have changed since the handshake), naming it in the
// context (PeerOf); others get 403. Reading the request is bounded by
// Config.DialTimeout and writing the answer by Config.WriteTimeout (the listener
// sets no deadlines of its own: links outlive them).
func (l *Links) peerOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(l.cfg.DialTimeout))
		_ = rc.SetWriteDeadline(time.Now().Add(l.cfg.DialTimeout + l.cfg.WriteTimeout))
		var proven []string
		if r.TLS != nil {
			proven = l.trust().prove(r.TLS.PeerCertificates, x509.ExtKeyUsageClientAuth, time.Now())
		}
		if len(proven) == 0 {
			http.Error(w, "the client certificate proves no allowed peer", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), peerKey{}, proven[0])))
	})
}

// PeerHTTP returns the https base URL of peer's federation listener (from its
// allow-list entry: wss://host:port becomes https://host:port) and a client that
// reaches it only if the server's certificate proves peer's domain by that entry,
// offering ours; ok is false for a peer not on the allow-list. The client follows
// no redirects; bound each request with its context.
func (l *Links) PeerHTTP(peer string) (base string, c *http.Client, ok bool) {
	l.mu.Lock()
	ps := l.peers[peer]
	l.mu.Unlock()
	if ps == nil {
		return "", nil, false
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.removed {
		return "", nil, false
	}
	if ps.httpc == nil {
		ps.httpc = &http.Client{
			Transport: &http.Transport{
				TLSClientConfig:        l.clientTLS(peer),
				DialContext:            (&net.Dialer{Timeout: l.cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext,
				TLSHandshakeTimeout:    l.cfg.DialTimeout,
				MaxIdleConnsPerHost:    16,
				IdleConnTimeout:        90 * time.Second,
				DisableCompression:     true,
				MaxResponseHeaderBytes: 16 << 10,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return "https://" + strings.TrimSuffix(strings.TrimPrefix(ps.peer.URL, "wss://"), "/"), ps.httpc, true
}

// dropHTTP closes the idle connections of the peer's HTTP client and forgets it,
// so that the next request is checked against the entry as it is now. Call with
// ps.mu held.
func (ps *peerState) dropHTTP() {
	if ps.httpc != nil {
		ps.httpc.CloseIdleConnections()
		ps.httpc = nil
	}
}
