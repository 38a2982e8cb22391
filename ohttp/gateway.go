package ohttp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mimids/mimids/ohttp/bhttp"
)

// HandlerFunc serves one decapsulated request. It returns the response to
// encapsulate; nil is answered with 500. ctx is the context of the outer
// HTTP request.
type HandlerFunc func(ctx context.Context, req *bhttp.Request) *bhttp.Response

// Route names an entry of the gateway's handler table: the inner request's
// method and path, without the query string.
type Route struct {
	Method string
	Path   string
}

// Outcome names how a gateway or relay request ended, for metrics. The
// values are stable.
type Outcome string

// Outcomes of Gateway and Relay requests.
const (
	OutcomeOK            Outcome = "ok"
	OutcomeBadMethod     Outcome = "bad_method"        // outer method not allowed
	OutcomeBadMediaType  Outcome = "bad_media_type"    // outer content type
	OutcomeTooLarge      Outcome = "too_large"         // outer body over the limit
	OutcomeMalformed     Outcome = "malformed"         // truncated encapsulation
	OutcomeUnknownKey    Outcome = "unknown_key"       // key id or suite not held
	OutcomeDecrypt       Outcome = "decrypt"           // does not decrypt
	OutcomeReplay        Outcome = "replay"            // enc seen within the window
	OutcomeOverloaded    Outcome = "overloaded"        // replay cache full
	OutcomeSourceFull    Outcome = "source_overloaded" // the source's share of the replay cache full
	OutcomeNoKeys        Outcome = "no_keys"           // GET with no active key
	OutcomeBadRequest    Outcome = "bad_request"       // inner request invalid (encapsulated 4xx)
	OutcomeNotFound      Outcome = "not_found"         // no route (encapsulated 404)
	OutcomeHandlerError  Outcome = "handler_error"     // handler failed (encapsulated 500)
	OutcomeUnauthorized  Outcome = "unauthorized"      // relay: authorizer refused
	OutcomeRateLimited   Outcome = "rate_limited"      // relay: limiter refused
	OutcomeUnknownPeer   Outcome = "unknown_peer"      // relay: peer not allow-listed
	OutcomeUpstreamError Outcome = "upstream_error"    // relay: gateway unreachable or bad answer
	OutcomeTimeout       Outcome = "timeout"           // relay: gateway did not answer in time
)

// Gateway defaults.
const (
	DefaultMaxRequestBytes = 64 << 10
	DefaultReplayWindow    = 2 * time.Minute
	DefaultMaxClockSkew    = time.Minute
	DefaultReplayCapacity  = 1 << 18
	DefaultKeysMaxAge      = time.Hour
)

// GatewayConfig configures a Gateway.
type GatewayConfig struct {
	// Keys holds the gateway keys. Required.
	Keys *KeySet
	// Routes is the handler table. Inner requests that match no entry are
	// answered with an encapsulated 404: the gateway never forwards.
	Routes map[Route]HandlerFunc
	// Authorities, when not empty, lists the authorities the inner
	// requests may name (compared without regard to case); a request
	// naming another one is answered with an encapsulated 404. An empty
	// authority is always accepted.
	Authorities []string
	// MaxRequestBytes bounds the outer request body (default 64 KiB).
	MaxRequestBytes int64
	// Limits bound the inner Binary HTTP request.
	Limits bhttp.Limits
	// Replay detects replayed requests. Nil means a MemoryReplayCache of
	// ReplayWindow and ReplayCapacity.
	Replay ReplayCache
	// ReplayWindow is how long an accepted request's enc is remembered
	// (default 2 minutes). It must be at least twice MaxClockSkew.
	ReplayWindow time.Duration
	// ReplayCapacity bounds the remembered encs (default 262144): the
	// gateway accepts at most ReplayCapacity requests per ReplayWindow.
	ReplayCapacity int
	// ReplayPerSource bounds the remembered encs of one source
	// (RequestSource; default ReplayCapacity/16): one source is refused
	// (503) past ReplayPerSource requests per ReplayWindow while the others
	// are served.
	ReplayPerSource int
	// MaxClockSkew is how far the inner request's Date field may be from
	// the gateway's clock (default 1 minute).
	MaxClockSkew time.Duration
	// AllowMissingDate accepts inner requests without a Date field. They
	// are then protected from replay only within ReplayWindow.
	AllowMissingDate bool
	// KeysMaxAge is the Cache-Control max-age of the published keys
	// (default 1 hour, at most half the key set's grace period).
	KeysMaxAge time.Duration
	// Observe, if set, is called once per request with its outcome and
	// the error behind it (nil for OutcomeOK). It must not block.
	Observe func(Outcome, error)
}

func (c *GatewayConfig) setDefaults() {
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.ReplayWindow == 0 {
		c.ReplayWindow = DefaultReplayWindow
	}
	if c.ReplayCapacity == 0 {
		c.ReplayCapacity = DefaultReplayCapacity
	}
	if c.ReplayPerSource == 0 {
		c.ReplayPerSource = max(c.ReplayCapacity/16, 1)
	}
	if c.MaxClockSkew == 0 {
		c.MaxClockSkew = DefaultMaxClockSkew
	}
	if c.KeysMaxAge == 0 && c.Keys != nil {
		c.KeysMaxAge = min(DefaultKeysMaxAge, c.Keys.Grace()/2)
	}
}

// Validate reports every problem of c (after defaults are applied).
func (c GatewayConfig) Validate() error {
	c.setDefaults()
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf("ohttp: gateway: "+format, a...)) }
	if c.Keys == nil {
		add("no key set")
	}
	if c.MaxRequestBytes < 0 {
		add("negative MaxRequestBytes")
	}
	if c.ReplayWindow < 2*c.MaxClockSkew {
		add("ReplayWindow %v is shorter than twice MaxClockSkew %v: old replays would pass", c.ReplayWindow, c.MaxClockSkew)
	}
	if c.MaxClockSkew < 0 || c.ReplayCapacity < 0 || c.ReplayPerSource < 0 || c.KeysMaxAge < 0 {
		add("negative MaxClockSkew, ReplayCapacity, ReplayPerSource or KeysMaxAge")
	}
	if c.Keys != nil && c.KeysMaxAge > c.Keys.Grace() {
		add("KeysMaxAge %v exceeds the key grace period %v: clients would use expired keys", c.KeysMaxAge, c.Keys.Grace())
	}
	for r, h := range c.Routes {
		if h == nil || r.Method == "" || !strings.HasPrefix(r.Path, "/") {
			add("invalid route %q %q", r.Method, r.Path)
		}
	}
	return errors.Join(errs...)
}

// Gateway is the Oblivious Gateway Resource (RFC 9458, RFC 9540), to be
// mounted at WellKnownGatewayPath. GET (and HEAD) answers the active key
// configurations as application/ohttp-keys. POST takes a message/ohttp-req
// body, decapsulates it, refuses replays, decodes the Binary HTTP request,
// serves it from the handler table and answers message/ohttp-res.
//
// Errors before decryption (bad content type 415, oversized body 413,
// malformed encapsulation, unknown key or suite, decryption failure, replay:
// 400; replay cache full: 503) are answered in clear as problem JSON, which
// reveals nothing the relay does not see. Errors after decryption (invalid
// inner request or Date, no route, handler failure) are answered inside the
// encapsulated response, as RFC 9458 Section 5.2 requires.
//
// Replay: the enc of each decrypted request is recorded in the ReplayCache
// for ReplayWindow, under its source (RequestSource: the client a relay in
// process named with WithSource, else the client's address), each source
// holding at most ReplayPerSource entries; a second request with the same
// enc, from any source, is refused. Handlers see the source (Source). The
// inner request's Date must lie within MaxClockSkew of the gateway's clock,
// so a request replayed after its enc left the window (ReplayWindow >=
// 2*MaxClockSkew) is refused for its Date (RFC 9458 Section 6.5.1).
type Gateway struct {
	// Static after construction.
	cfg         GatewayConfig
	replay      ReplayCache
	authorities map[string]bool
	cacheCtl    string
}

// NewGateway validates cfg and returns the gateway.
func NewGateway(cfg GatewayConfig) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	g := &Gateway{cfg: cfg, replay: cfg.Replay}
	if g.replay == nil {
		g.replay = NewMemoryReplayCache(cfg.ReplayWindow, cfg.ReplayCapacity, cfg.ReplayPerSource)
	}
	if len(cfg.Authorities) > 0 {
		g.authorities = make(map[string]bool, len(cfg.Authorities))
		for _, a := range cfg.Authorities {
			g.authorities[strings.ToLower(a)] = true
		}
	}
	g.cacheCtl = "no-cache"
	if s := int(cfg.KeysMaxAge / time.Second); s > 0 {
		g.cacheCtl = "max-age=" + strconv.Itoa(s)
	}
	return g, nil
}

func (g *Gateway) observe(o Outcome, err error) {
	if g.cfg.Observe != nil {
		g.cfg.Observe(o, err)
	}
}

// ServeHTTP implements http.Handler.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		g.serveKeys(w)
	case http.MethodPost:
		g.servePost(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		WriteProblem(w, &Problem{Title: "method not allowed", Status: http.StatusMethodNotAllowed})
		g.observe(OutcomeBadMethod, nil)
	}
}

func (g *Gateway) serveKeys(w http.ResponseWriter) {
	b := g.cfg.Keys.MarshalConfigs()
	if len(b) == 0 {
		WriteProblem(w, &Problem{Title: "no gateway keys", Status: http.StatusServiceUnavailable})
		g.observe(OutcomeNoKeys, nil)
		return
	}
	h := w.Header()
	h.Set("Content-Type", MediaTypeKeys)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Cache-Control", g.cacheCtl)
	_, _ = w.Write(b)
	g.observe(OutcomeOK, nil)
}

func (g *Gateway) servePost(w http.ResponseWriter, r *http.Request) {
	if !hasMediaType(r.Header, MediaTypeRequest) {
		WriteProblem(w, &Problem{Title: "unsupported media type", Status: http.StatusUnsupportedMediaType,
			Detail: "expected " + MediaTypeRequest})
		g.observe(OutcomeBadMediaType, nil)
		return
	}
	body, err := readBody(r, g.cfg.MaxRequestBytes)
	if err != nil {
		p, o := &Problem{Title: "request too large", Status: http.StatusRequestEntityTooLarge}, OutcomeTooLarge
		if !errors.Is(err, errTooLarge) {
			p, o = &Problem{Title: "unreadable request body", Status: http.StatusBadRequest}, OutcomeMalformed
		}
		WriteProblem(w, p)
		g.observe(o, err)
		return
	}
	out, outcome, err := g.handle(r.Context(), body, RequestSource(r))
	g.observe(outcome, err)
	if out == nil {
		p := problemFor(err)
		if p.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		WriteProblem(w, p)
		return
	}
	h := w.Header()
	h.Set("Content-Type", MediaTypeResponse)
	h.Set("Content-Length", strconv.Itoa(len(out)))
	h.Set("Cache-Control", "no-store")
	_, _ = w.Write(out)
}

// problemFor maps a decapsulation error to the answer in clear.
func problemFor(err error) *Problem {
	switch {
	case errors.Is(err, ErrUnknownKeyID):
		return &Problem{Type: ProblemTypeKey, Title: "key identifier unknown", Status: http.StatusBadRequest}
	case errors.Is(err, ErrUnsupportedSuite):
		return &Problem{Type: ProblemTypeKey, Title: "key configuration not supported", Status: http.StatusBadRequest}
	case errors.Is(err, ErrTruncated):
		return &Problem{Title: "malformed encapsulated request", Status: http.StatusBadRequest}
	case errors.Is(err, ErrDecrypt):
		return &Problem{Title: "encapsulated request does not decrypt", Status: http.StatusBadRequest}
	case errors.Is(err, ErrReplay):
		return &Problem{Title: "replayed request", Status: http.StatusBadRequest}
	case errors.Is(err, ErrReplayCacheFull):
		return &Problem{Title: "gateway overloaded", Status: http.StatusServiceUnavailable}
	}
	return &Problem{Title: "internal error", Status: http.StatusInternalServerError}
}

// Handle processes one Encapsulated Request without HTTP framing: it
// returns the Encapsulated Response, or an error (wrapping one of the
// package's sentinels) when the request cannot be decapsulated or is a
// replay. Errors in the inner request are answered inside the response. The
// request's source is the one WithSource gave ctx ("" if none).
func (g *Gateway) Handle(ctx context.Context, encRequest []byte) ([]byte, error) {
	out, outcome, err := g.handle(ctx, encRequest, Source(ctx))
	g.observe(outcome, err)
	if out == nil {
		return nil, err
	}
	return out, nil
}

func (g *Gateway) handle(ctx context.Context, body []byte, source string) ([]byte, Outcome, error) {
	er, err := ParseEncapsulatedRequest(body)
	if err != nil {
		if errors.Is(err, ErrUnsupportedSuite) {
			return nil, OutcomeUnknownKey, err
		}
		return nil, OutcomeMalformed, err
	}
	key, err := g.cfg.Keys.Lookup(er.KeyID, time.Now())
	if err != nil {
		return nil, OutcomeUnknownKey, err
	}
	pt, rc, err := key.open(er)
	switch {
	case errors.Is(err, ErrDecrypt):
		return nil, OutcomeDecrypt, err
	case err != nil:
		return nil, OutcomeUnknownKey, err
	}
	if err := g.replay.Add(source, er.Enc); err != nil {
		switch {
		case errors.Is(err, ErrReplay):
			return nil, OutcomeReplay, err
		case errors.Is(err, ErrReplaySourceFull):
			return nil, OutcomeSourceFull, err
		}
		return nil, OutcomeOverloaded, err
	}
	resp, outcome, err := g.serveInner(WithSource(ctx, source), pt)
	b, encErr := resp.MarshalBinary()
	if encErr != nil {
		resp, outcome, err = problemResponse(http.StatusInternalServerError, "", "invalid response", ""), OutcomeHandlerError, encErr
		b, _ = resp.MarshalBinary()
	}
	out, sealErr := rc.EncapsulateResponse(b)
	if sealErr != nil {
		return nil, OutcomeHandlerError, sealErr
	}
	return out, outcome, err
}

// serveInner decodes and serves the decrypted request. It always returns a
// response; the error explains a non-OK outcome.
func (g *Gateway) serveInner(ctx context.Context, pt []byte) (*bhttp.Response, Outcome, error) {
	req, err := g.cfg.Limits.UnmarshalRequest(pt)
	if err != nil {
		return problemResponse(http.StatusBadRequest, "", "invalid binary HTTP request", err.Error()), OutcomeBadRequest, err
	}
	for _, v := range req.Header.Values("expect") {
		if strings.EqualFold(strings.TrimSpace(v), "100-continue") {
			// RFC 9458 Section 5.1: a 100-continue expectation is an error.
			return problemResponse(http.StatusExpectationFailed, "", "100-continue is not supported", ""),
				OutcomeBadRequest, errors.New("ohttp: expect 100-continue")
		}
	}
	if resp, err := g.checkDate(req); err != nil {
		return resp, OutcomeBadRequest, err
	}
	path, _, _ := strings.Cut(req.Path, "?")
	h := g.cfg.Routes[Route{Method: req.Method, Path: path}]
	if h == nil || (g.authorities != nil && req.Authority != "" && !g.authorities[strings.ToLower(req.Authority)]) {
		return problemResponse(http.StatusNotFound, "", "not found", ""), OutcomeNotFound, nil
	}
	resp := h(ctx, req)
	if resp == nil {
		return problemResponse(http.StatusInternalServerError, "", "no response", ""), OutcomeHandlerError,
			errors.New("ohttp: handler returned no response")
	}
	return resp, OutcomeOK, nil
}

// checkDate enforces the Date window; on failure it returns the date
// problem, with the gateway's Date so the client can correct its clock
// (RFC 9458 Section 6.5.2).
func (g *Gateway) checkDate(req *bhttp.Request) (*bhttp.Response, error) {
	v := req.Header.Get("date")
	now := time.Now()
	var err error
	switch {
	case v == "" && g.cfg.AllowMissingDate:
		return nil, nil
	case v == "":
		err = errors.New("ohttp: request has no date")
	default:
		t, perr := http.ParseTime(v)
		switch {
		case perr != nil:
			err = fmt.Errorf("ohttp: request date: %w", perr)
		case t.Sub(now).Abs() > g.cfg.MaxClockSkew:
			err = fmt.Errorf("ohttp: request date %v is %v off", t.UTC(), now.Sub(t).Round(time.Second))
		default:
			return nil, nil
		}
	}
	resp := problemResponse(http.StatusBadRequest, ProblemTypeDate, "date field in request outside of acceptable range", "")
	resp.Header = append(resp.Header, bhttp.Field{Name: "date", Value: now.UTC().Format(http.TimeFormat)})
	return resp, err
}

// problemResponse is an inner response carrying problem JSON.
func problemResponse(status int, typ, title, detail string) *bhttp.Response {
	p := &Problem{Type: typ, Title: title, Status: status, Detail: detail}
	return bhttp.NewResponse(status, MediaTypeProblem, p.marshal())
}

// hasMediaType reports whether the Content-Type of h is mt, parameters
// ignored.
func hasMediaType(h http.Header, mt string) bool {
	got, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && got == mt
}

var errTooLarge = errors.New("ohttp: body too large")

// readBody reads at most max bytes of r's body, failing with errTooLarge
// beyond that.
func readBody(r *http.Request, max int64) ([]byte, error) {
	if r.ContentLength > max {
		return nil, fmt.Errorf("%w: %d bytes", errTooLarge, r.ContentLength)
	}
	return readLimited(r.Body, r.ContentLength, max)
}

// readLimited reads at most max bytes from rd; size, if not negative, is
// the expected length.
func readLimited(rd io.Reader, size, max int64) ([]byte, error) {
	if size < 0 || size > max {
		size = min(512, max)
	}
	buf := bytes.NewBuffer(make([]byte, 0, size+1))
	if _, err := buf.ReadFrom(io.LimitReader(rd, max+1)); err != nil {
		return nil, err
	}
	if int64(buf.Len()) > max {
		return nil, fmt.Errorf("%w: over %d bytes", errTooLarge, max)
	}
	return buf.Bytes(), nil
}
