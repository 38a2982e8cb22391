package ohttp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Relay defaults.
const (
	DefaultRelayTimeout = 10 * time.Second
)

// RelayConfig configures a Relay.
type RelayConfig struct {
	// Peers maps each allow-listed peer domain (lowercase) to the URL of
	// its gateway, normally "https://<domain>" + WellKnownGatewayPath.
	Peers map[string]string
	// Route, if set, is asked for each requested peer that is not Local
	// before Peers: the URL of its gateway and the client to reach it with
	// (one that checks the peer's certificate, say). Not ok falls back to
	// Peers. It must not block.
	Route func(peer string) (gateway string, client *http.Client, ok bool)
	// Local maps each domain served in this process (lowercase, normally
	// the provider's own) to its gateway handler. A request for such a
	// domain is handed to the handler as a new request that carries only
	// the body and its Content-Type, under the same Timeout and
	// MaxResponseBytes, instead of being sent over HTTP; its context names
	// the client (WithSource: "client:" and a hash of LimitKey), which the
	// gateway uses as the request's source. Peers and Local together must
	// name at least one domain, each at most once.
	Local map[string]http.Handler
	// PeerFunc names the target peer of a request. Nil means: the path
	// wildcard "peer" when the handler was routed by an http.ServeMux
	// pattern such as "POST /ohttp-relay/{peer}", else the last segment
	// of the URL path (so "/ohttp-relay/b.example" names b.example with
	// any router).
	PeerFunc func(*http.Request) string
	// Client sends to the gateways. Nil means a client with Timeout, no
	// cookie jar, no redirects and no compression. A client with a
	// cookie jar is refused.
	Client *http.Client
	// Timeout bounds each forwarded exchange (default 10 seconds).
	Timeout time.Duration
	// MaxRequestBytes bounds the client's body (default 64 KiB).
	MaxRequestBytes int64
	// MaxResponseBytes bounds the gateway's body (default 1 MiB).
	MaxResponseBytes int64
	// Authorize, if set, vets each request before anything else; an error
	// is answered 401 (its text is not shown).
	Authorize func(*http.Request) error
	// Limiter, if set, is asked once per authorized request with the key
	// LimitKey returns; a refusal is answered 429.
	Limiter Limiter
	// LimitKey names the rate-limited party. Nil means the client's IP
	// address.
	LimitKey func(*http.Request) string
	// Observe, if set, is called once per request with its outcome and
	// the error behind it. It must not block.
	Observe func(Outcome, error)
}

// Validate reports every problem of c.
func (c RelayConfig) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf("ohttp: relay: "+format, a...)) }
	if len(c.Peers)+len(c.Local) == 0 && c.Route == nil {
		add("no peers")
	}
	validName := func(peer string) bool {
		return peer != "" && peer == strings.ToLower(peer) && !strings.ContainsAny(peer, "/ ")
	}
	for peer, h := range c.Local {
		if !validName(peer) {
			add("invalid local name %q", peer)
		}
		if h == nil {
			add("no handler for local %q", peer)
		}
		if _, ok := c.Peers[peer]; ok {
			add("%q is both a peer and local", peer)
		}
	}
	for peer, gw := range c.Peers {
		if !validName(peer) {
			add("invalid peer name %q", peer)
		}
		u, err := url.Parse(gw)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			add("invalid gateway URL %q for peer %q", gw, peer)
		}
	}
	if c.Client != nil && c.Client.Jar != nil {
		add("client has a cookie jar")
	}
	if c.Timeout < 0 || c.MaxRequestBytes < 0 || c.MaxResponseBytes < 0 {
		add("negative Timeout, MaxRequestBytes or MaxResponseBytes")
	}
	return errors.Join(errs...)
}

// Relay is the Oblivious Relay Resource (RFC 9458 Section 6.2) that a
// provider runs for its own clients. It accepts POST message/ohttp-req
// bodies and forwards them to the gateway of an allow-listed peer, then
// returns the gateway's status, content type and body. It is never an
// open proxy: a peer not in the allow-list is answered 404. A domain of
// RelayConfig.Local is served by its handler in process, with the same
// checks, the same stripped request and the same filtered answer.
//
// The forwarded request carries only the body, its Content-Type and
// Content-Length: no client address, Forwarded, X-Forwarded-For or Via,
// no authentication, no cookies and no User-Agent. Only the status, body
// and Retry-After of the gateway's answer reach the client, under a
// Content-Type the relay sets (see answer): a gateway answer of any other
// kind is refused as 502. The relay sees the key id and suite in the clear
// header and nothing else.
//
// Order of checks: method (405), Authorize (401), Limiter (429), peer
// (404), content type (415), body size (413) and emptiness (400). Gateway
// failures and unusable answers are answered 502, and timeouts 504, as
// problem JSON. Every answer carries X-Content-Type-Options: nosniff.
type Relay struct {
	// Static after construction.
	cfg    RelayConfig
	client *http.Client
}

// NewRelay validates cfg and returns the relay.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultRelayTimeout
	}
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.PeerFunc == nil {
		cfg.PeerFunc = defaultPeer
	}
	if cfg.LimitKey == nil {
		cfg.LimitKey = remoteIP
	}
	cfg.Peers = maps.Clone(cfg.Peers)
	cfg.Local = maps.Clone(cfg.Local)
	r := &Relay{cfg: cfg, client: cfg.Client}
	if r.client == nil {
		r.client = newRelayClient(cfg.Timeout)
	}
	return r, nil
}

func newRelayClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		DisableCompression:    true,
	}
	return &http.Client{
		Transport:     tr,
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func defaultPeer(r *http.Request) string {
	if p := r.PathValue("peer"); p != "" {
		return p
	}
	p := strings.TrimSuffix(r.URL.Path, "/")
	return p[strings.LastIndexByte(p, '/')+1:]
}

func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (rl *Relay) fail(w http.ResponseWriter, p *Problem, o Outcome, err error) {
	WriteProblem(w, p)
	if rl.cfg.Observe != nil {
		rl.cfg.Observe(o, err)
	}
}

// ServeHTTP implements http.Handler.
func (rl *Relay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		rl.fail(w, &Problem{Title: "method not allowed", Status: http.StatusMethodNotAllowed}, OutcomeBadMethod, nil)
		return
	}
	if rl.cfg.Authorize != nil {
		if err := rl.cfg.Authorize(r); err != nil {
			rl.fail(w, &Problem{Title: "unauthorized", Status: http.StatusUnauthorized}, OutcomeUnauthorized, err)
			return
		}
	}
	if rl.cfg.Limiter != nil && !rl.cfg.Limiter.Allow(rl.cfg.LimitKey(r)) {
		w.Header().Set("Retry-After", "1")
		rl.fail(w, &Problem{Title: "too many requests", Status: http.StatusTooManyRequests}, OutcomeRateLimited, nil)
		return
	}
	peer := strings.ToLower(rl.cfg.PeerFunc(r))
	local := rl.cfg.Local[peer]
	gw, client, ok := rl.route(peer, local != nil)
	if !ok && local == nil {
		rl.fail(w, &Problem{Title: "unknown peer", Status: http.StatusNotFound}, OutcomeUnknownPeer, nil)
		return
	}
	if !hasMediaType(r.Header, MediaTypeRequest) {
		rl.fail(w, &Problem{Title: "unsupported media type", Status: http.StatusUnsupportedMediaType,
			Detail: "expected " + MediaTypeRequest}, OutcomeBadMediaType, nil)
		return
	}
	body, err := readBody(r, rl.cfg.MaxRequestBytes)
	switch {
	case errors.Is(err, errTooLarge):
		rl.fail(w, &Problem{Title: "request too large", Status: http.StatusRequestEntityTooLarge}, OutcomeTooLarge, err)
		return
	case err != nil || len(body) == 0:
		rl.fail(w, &Problem{Title: "empty or unreadable request", Status: http.StatusBadRequest}, OutcomeMalformed, err)
		return
	}
	if local != nil {
		rl.serveLocal(WithSource(r.Context(), rl.localSource(r)), w, local, peer, body)
		return
	}
	rl.forward(r.Context(), w, client, gw, body)
}

// route names the gateway of peer and the client to reach it with: Route's
// answer, else Peers' entry with the relay's client.
func (rl *Relay) route(peer string, local bool) (string, *http.Client, bool) {
	if local {
		return "", nil, false
	}
	if rl.cfg.Route != nil {
		if gw, c, ok := rl.cfg.Route(peer); ok && c != nil {
			return gw, c, true
		}
	}
	gw, ok := rl.cfg.Peers[peer]
	return gw, rl.client, ok
}

// forward sends body to the gateway with client and copies its answer.
func (rl *Relay) forward(ctx context.Context, w http.ResponseWriter, client *http.Client, gw string, body []byte) {
	ctx, cancel := context.WithTimeout(ctx, rl.cfg.Timeout)
	defer cancel()
	out, err := http.NewRequestWithContext(ctx, http.MethodPost, gw, bytes.NewReader(body))
	if err != nil {
		rl.fail(w, &Problem{Title: "bad gateway", Status: http.StatusBadGateway}, OutcomeUpstreamError, err)
		return
	}
	// Only what carries the request; an empty User-Agent suppresses Go's.
	out.Header = http.Header{"Content-Type": {MediaTypeRequest}, "User-Agent": {""}}
	resp, err := client.Do(out)
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			rl.fail(w, &Problem{Title: "gateway timeout", Status: http.StatusGatewayTimeout}, OutcomeTimeout, err)
			return
		}
		rl.fail(w, &Problem{Title: "bad gateway", Status: http.StatusBadGateway}, OutcomeUpstreamError, err)
		return
	}
	defer resp.Body.Close()
	rb, err := readLimited(resp.Body, resp.ContentLength, rl.cfg.MaxResponseBytes)
	if err != nil {
		rl.fail(w, &Problem{Title: "bad gateway", Status: http.StatusBadGateway}, OutcomeUpstreamError, err)
		return
	}
	rl.answer(w, resp.StatusCode, resp.Header, rb)
}

// answer copies a gateway's answer to the client: its status, its body, and of its
// header only Retry-After. The Content-Type is set by the relay, never copied: an
// answer a client of the relay can use is a 200 message/ohttp-res, or a 4xx or 5xx
// application/problem+json whose body is JSON (a refusal in clear, RFC 9458 Section
// 5.3); every other answer (another type, another status, a problem that is not JSON)
// becomes a 502 problem, so a hostile or broken peer cannot have the relay serve HTML
// or script from the provider's origin. Every answer carries
// X-Content-Type-Options: nosniff.
func (rl *Relay) answer(w http.ResponseWriter, status int, from http.Header, body []byte) {
	ct, err := answerType(status, from, body)
	if err != nil {
		rl.fail(w, &Problem{Title: "bad gateway", Status: http.StatusBadGateway,
			Detail: "the gateway's answer is neither a 200 " + MediaTypeResponse + " nor a 4xx or 5xx " + MediaTypeProblem}, OutcomeUpstreamError, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	if ra := from.Get("Retry-After"); validRetryAfter(ra) {
		h.Set("Retry-After", ra)
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
	if rl.cfg.Observe != nil {
		rl.cfg.Observe(OutcomeOK, nil)
	}
}

// validRetryAfter reports whether v is a Retry-After value (RFC 9110 Section 10.2.3:
// delay-seconds or an HTTP-date); a peer's other text is not passed on.
func validRetryAfter(v string) bool {
	if _, err := strconv.ParseUint(v, 10, 31); err == nil {
		return true
	}
	_, err := http.ParseTime(v)
	return err == nil
}

// answerType is the Content-Type under which the relay passes a gateway's answer on,
// or why it does not.
func answerType(status int, from http.Header, body []byte) (string, error) {
	switch {
	case status == http.StatusOK && hasMediaType(from, MediaTypeResponse):
		return MediaTypeResponse, nil
	case status >= 400 && status < 600 && hasMediaType(from, MediaTypeProblem) && json.Valid(body):
		return MediaTypeProblem, nil
	}
	return "", fmt.Errorf("ohttp: gateway answered %d with Content-Type %q (%d bytes)", status, from.Get("Content-Type"), len(body))
}

// localSource names the client of a request for an in-process gateway: the
// gateway bounds each source's share of its replay cache, and its handlers
// rate-limit by it. It is derived from LimitKey (the client the relay
// rate-limits), hashed so that no credential reaches the gateway.
func (rl *Relay) localSource(r *http.Request) string {
	sum := sha256.Sum256([]byte(rl.cfg.LimitKey(r)))
	return "client:" + hex.EncodeToString(sum[:8])
}

// serveLocal hands body to an in-process gateway as a fresh request that
// carries only what a forwarded one does, and copies its answer under the
// same limits.
func (rl *Relay) serveLocal(ctx context.Context, w http.ResponseWriter, gw http.Handler, domain string, body []byte) {
	ctx, cancel := context.WithTimeout(ctx, rl.cfg.Timeout)
	defer cancel()
	in, err := http.NewRequestWithContext(ctx, http.MethodPost, WellKnownGatewayPath, bytes.NewReader(body))
	if err != nil {
		rl.fail(w, &Problem{Title: "bad gateway", Status: http.StatusBadGateway}, OutcomeUpstreamError, err)
		return
	}
	in.Host = domain
	in.Header = http.Header{"Content-Type": {MediaTypeRequest}}
	out := &localAnswer{header: http.Header{}, max: rl.cfg.MaxResponseBytes}
	gw.ServeHTTP(out, in)
	switch {
	case ctx.Err() != nil:
		rl.fail(w, &Problem{Title: "gateway timeout", Status: http.StatusGatewayTimeout}, OutcomeTimeout, ctx.Err())
		return
	case out.err != nil:
		rl.fail(w, &Problem{Title: "bad gateway", Status: http.StatusBadGateway}, OutcomeUpstreamError, out.err)
		return
	case out.status == 0:
		out.status = http.StatusOK
	}
	rl.answer(w, out.status, out.header, out.body.Bytes())
}

// localAnswer is the http.ResponseWriter of an in-process gateway: it keeps
// at most max bytes of the body.
type localAnswer struct {
	header http.Header
	status int
	body   bytes.Buffer
	max    int64
	err    error
}

func (a *localAnswer) Header() http.Header { return a.header }

func (a *localAnswer) WriteHeader(status int) {
	if a.status == 0 {
		a.status = status
	}
}

func (a *localAnswer) Write(b []byte) (int, error) {
	a.WriteHeader(http.StatusOK)
	if a.err != nil {
		return 0, a.err
	}
	if int64(a.body.Len()+len(b)) > a.max {
		a.err = fmt.Errorf("%w: gateway answer over %d bytes", errTooLarge, a.max)
		return 0, a.err
	}
	return a.body.Write(b)
}
