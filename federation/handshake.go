package federation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/protocol"
)

// serve runs the federation listener: TLS 1.3 with client certificates checked in
// the handshake, then the WebSocket upgrade at protocol.FederationPath. It returns
// a function that stops the server; done receives the error if it stops by itself.
func (l *Links) serve(done chan<- error) func() {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+protocol.FederationPath, l.accept)
	for _, h := range l.httpHandlers {
		mux.Handle(h.pattern, l.peerOnly(h.h))
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: l.cfg.DialTimeout,                                        // also bounds the TLS handshake
		TLSNextProto:      map[string]func(*http.Server, *tls.Conn, http.Handler){}, // HTTP/1.1 only
		ErrorLog:          log.New(&slogWriter{l.log}, "", 0),
		MaxHeaderBytes:    16 << 10,
	}
	ln := tls.NewListener(l.ln, l.serverTLS())
	go func() {
		err := srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		done <- err
	}()
	return func() {
		// Links (hijacked connections) end through their contexts; this stops
		// accepting and drops handshakes in progress.
		srv.Close()
	}
}

// slogWriter sends the HTTP server's own log lines (refused handshakes, mostly) to
// the logger at debug level: the refusals that matter are logged once, by refused.
type slogWriter struct{ log *slog.Logger }

func (w *slogWriter) Write(p []byte) (int, error) {
	w.log.Debug("federation listener", "msg", strings.TrimSpace(string(p)))
	return len(p), nil
}

// accept upgrades a request whose TLS client certificate proved at least one allowed
// peer, once the domain it claims (HeaderDomain) is one of those.
func (l *Links) accept(w http.ResponseWriter, r *http.Request) {
	if r.TLS == nil {
		http.Error(w, "TLS required", http.StatusBadRequest)
		return
	}
	claimed := r.Header.Get(protocol.HeaderDomain)
	if !slices.Contains(l.trust().prove(r.TLS.PeerCertificates, x509.ExtKeyUsageClientAuth, time.Now()), claimed) {
		l.log.Warn("federation: refused a link: the certificate does not prove the claimed domain", "peer", claimed, "remote", r.RemoteAddr)
		http.Error(w, "the client certificate does not prove "+protocol.HeaderDomain, http.StatusForbidden)
		return
	}
	stream, err := parseStream(r.Header.Get(protocol.HeaderStream))
	if err != nil {
		http.Error(w, protocol.HeaderStream+": "+err.Error(), http.StatusBadRequest)
		return
	}
	l.mu.Lock()
	ps := l.peers[claimed]
	l.mu.Unlock()
	if ps == nil {
		http.Error(w, "unknown peer", http.StatusForbidden)
		return
	}
	if !l.owns(claimed) {
		http.Error(w, "another node of this provider runs the link", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set(protocol.HeaderDomain, l.cfg.Domain)
	w.Header().Set(protocol.HeaderStream, formatStream(ps.entry().Stream))
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{protocol.FederationSubprotocol}})
	if err != nil {
		return // Accept wrote the HTTP error
	}
	if ws.Subprotocol() != protocol.FederationSubprotocol {
		ws.Close(protocol.CloseProtocolError, "subprotocol "+protocol.FederationSubprotocol+" required")
		return
	}
	l.serveLink(ps, ws, claimed, stream, nil)
}

// dial opens a link to ps's peer: TLS 1.3 with the peer's certificate checked in
// the handshake, then the WebSocket upgrade. It returns the peer's stream.
func (l *Links) dial(ctx context.Context, p Peer) (*websocket.Conn, uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, l.cfg.DialTimeout)
	defer cancel()
	tr := &http.Transport{
		TLSClientConfig:        l.clientTLS(p.Domain),
		DialContext:            (&net.Dialer{}).DialContext,
		TLSHandshakeTimeout:    l.cfg.DialTimeout,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 16 << 10,
	}
	defer tr.CloseIdleConnections()
	hdr := http.Header{}
	hdr.Set(protocol.HeaderDomain, l.cfg.Domain)
	hdr.Set(protocol.HeaderStream, formatStream(p.Stream))
	ws, resp, err := websocket.Dial(ctx, strings.TrimSuffix(p.URL, "/")+protocol.FederationPath, &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: tr}, HTTPHeader: hdr, Subprotocols: []string{protocol.FederationSubprotocol}})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, 0, fmt.Errorf("federation: dial %s: HTTP %s", p.Domain, resp.Status)
		}
		return nil, 0, fmt.Errorf("federation: dial %s: %w", p.Domain, err)
	}
	stream, err := parseStream(resp.Header.Get(protocol.HeaderStream))
	if err == nil && ws.Subprotocol() != protocol.FederationSubprotocol {
		err = errors.New("no subprotocol " + protocol.FederationSubprotocol)
	}
	if err != nil {
		ws.Close(protocol.CloseProtocolError, "bad handshake")
		return nil, 0, fmt.Errorf("federation: dial %s: %w", p.Domain, err)
	}
	return ws, stream, nil
}

// serveLink runs an upgraded WebSocket as the link with ps's peer, dialled by
// dialer, until it ends; a link that loses to the one already up (§5.2) is closed
// with 4020 at once. dialled is the allow-list entry this side dialled with (nil
// when the peer dialled): a link whose entry changed meanwhile is closed with 4021.
func (l *Links) serveLink(ps *peerState, ws *websocket.Conn, dialer string, stream uint64, dialled *Peer) {
	ctx, ok := l.track()
	if !ok {
		ws.Close(protocol.CloseGoingAway, "shutting down")
		return
	}
	defer l.work.Done()
	lk := newLink(l, ps, ws, dialer, stream)
	if !ps.attach(lk) {
		lk.c.Close(protocol.CloseDuplicateLink, "duplicate link")
		lk.c.End(nil)
		return
	}
	if dialled != nil && ps.stale(*dialled) {
		// The entry changed while this link was dialled (after attach, so that an
		// update from now on sees the link and closes it itself).
		lk.c.Close(protocol.ClosePeerRemoved, "allow-list entry changed while dialling")
	}
	l.counters.links.Add(1)
	wait, err := lk.run(ctx)
	ps.detach(lk, err)
	wait()
}
