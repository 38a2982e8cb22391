package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mimids/mimids/ohttp"
	"github.com/mimids/mimids/ohttp/bhttp"
	"github.com/mimids/mimids/protocol"
)

// Oblivious HTTP to providers' gateways (docs/protocol.md §3). A client reaches a
// peer provider's gateway only through its own provider's relay, so that its
// provider learns which peer is asked but not what for, and the peer learns what is
// asked but not by whom:
//
//	POST <own base URL>/v1/ohttp-relay/<peer domain>
//	Authorization: Bearer <device token>
//	Content-Type: message/ohttp-req
//
// The peer's key configurations are fetched directly from the peer
// (GET <peer base URL>/.well-known/ohttp-gateway), never through the relay, which
// could otherwise substitute its own keys.
//
// The users of the client's own provider are reached the same way, with the own
// domain as the peer: the relay hands the request to its own gateway in process
// (no peer configuration), so a local fetch goes through the same gateway checks,
// claims, last-resort rule and bearer tokens as a remote one. The own gateway's keys
// come from the own provider (GET <Base>/.well-known/ohttp-gateway).

// Limits and defaults of Remote (the paths are protocol.RelayPathPrefix and the
// protocol.Inner* routes).
const (
	maxGatewayKeys     = 64 << 10 // an application/ohttp-keys body
	maxErrorBody       = 4 << 10  // kept from an answer in clear
	DefaultKeysMaxAge  = time.Hour
	DefaultHTTPTimeout = 30 * time.Second
)

// Errors of Remote. A *RelayError matches the first five with errors.Is.
var (
	// ErrRelayUnauthorized: the own provider's relay refused the device token (401).
	ErrRelayUnauthorized = errors.New("client: relay refused the device token")
	// ErrUnknownPeer: the relay does not forward to this peer (404).
	ErrUnknownPeer = errors.New("client: relay does not serve this peer")
	// ErrRelayRateLimited: the relay's rate limit for this client was hit (429); see
	// RelayError.RetryAfter.
	ErrRelayRateLimited = errors.New("client: relay rate limit")
	// ErrGatewayUnreachable: the relay could not reach the peer's gateway (502, 504).
	ErrGatewayUnreachable = errors.New("client: peer gateway unreachable")
	// ErrStaleGatewayKeys: the peer's gateway does not know the key configuration
	// the request was encapsulated to (it rotated its keys): fetch them again.
	ErrStaleGatewayKeys = errors.New("client: peer gateway key configuration unknown")
	// ErrPeerUnknownUser: the peer has no such user (discovery answered 404).
	ErrPeerUnknownUser = errors.New("client: no such user at the peer")
)

// RelayError is an answer in clear from the relay (or from the peer's gateway,
// forwarded by the relay): the request was not served.
type RelayError struct {
	StatusCode int
	Problem    *ohttp.Problem // the problem JSON, when the body is one
	RetryAfter time.Duration  // from Retry-After, when present
}

func (e *RelayError) Error() string {
	s := "client: relay answered " + strconv.Itoa(e.StatusCode)
	if e.Problem != nil && e.Problem.Title != "" {
		s += " " + e.Problem.Title
	}
	return s
}

// Is matches the Err* sentinel of the status.
func (e *RelayError) Is(target error) bool {
	switch target {
	case ErrRelayUnauthorized:
		return e.StatusCode == http.StatusUnauthorized
	case ErrUnknownPeer:
		return e.StatusCode == http.StatusNotFound
	case ErrRelayRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	case ErrGatewayUnreachable:
		return e.StatusCode == http.StatusBadGateway || e.StatusCode == http.StatusGatewayTimeout
	case ErrStaleGatewayKeys:
		return e.Problem != nil && e.Problem.Type == ohttp.ProblemTypeKey
	}
	return false
}

// GatewayError is an inner response of a peer's gateway whose status is not 200: the
// request reached the peer, which refused it.
type GatewayError struct {
	Path    string // the inner request's path
	Status  int
	Problem *ohttp.Problem // the problem JSON, when the body is one
	Body    []byte         // at most 4 KiB of the body
}

func (e *GatewayError) Error() string {
	s := fmt.Sprintf("client: peer gateway answered %d to %s", e.Status, e.Path)
	switch {
	case e.Problem != nil:
		s += ": " + e.Problem.Title
	case len(e.Body) > 0 && len(e.Body) <= 200:
		s += ": " + strings.ToValidUTF8(string(e.Body), "?")
	}
	return s
}

// RemoteConfig configures a Remote. Base and Token are required (Client.Remote takes
// them from the client's Config).
type RemoteConfig struct {
	// Base is the own provider's base URL, e.g. "https://a.example". A socket URL
	// (ws, wss) is accepted: its scheme is mapped to http, https and its path dropped.
	Base string
	// Token is the device token the relay authenticates.
	Token string
	// HTTPClient sends to the relay and fetches peers' keys. Nil: a client with
	// DefaultHTTPTimeout.
	HTTPClient *http.Client
	// Domain is the own provider's domain (Client.Remote takes it from the user_id
	// of auth_ok). Its gateway keys are fetched from Base; PeerURL is not asked for
	// it. Empty: every domain is looked up with PeerURL.
	Domain string
	// PeerURL gives a peer domain's base URL, where its gateway keys are published.
	// Nil: "https://" + domain.
	PeerURL func(domain string) string
	// KeysMaxAge is how long fetched key configurations are used before they are
	// fetched again (default DefaultKeysMaxAge). A request refused for an unknown key
	// refetches them at once.
	KeysMaxAge time.Duration
	// Now is the clock (default time.Now); the inner requests' Date comes from it,
	// corrected by the skew a gateway reported.
	Now func() time.Time
}

// Remote reaches providers' gateways through the own provider's Oblivious HTTP relay:
// discovery and KeyPackage fetches, at other providers or (with the own domain as the
// peer) at the own one. It caches each provider's key configurations. Its methods
// are safe for concurrent use.
type Remote struct {
	cfg      RemoteConfig // Static after construction.
	base     string       // Static: the own provider's HTTP origin.
	relayURL string       // Static: base + protocol.RelayPathPrefix.

	mu    sync.Mutex
	peers map[string]*peerKeys // Guarded by mu.
	skew  time.Duration        // Guarded by mu: gateway clock minus ours, last seen.
}

// peerKeys is one peer's cached key configurations.
type peerKeys struct {
	fetch   sync.Mutex // held while fetching
	mu      sync.Mutex // guards the fields below
	keys    []byte
	client  *ohttp.Client
	fetched time.Time
}

// NewRemote validates cfg and returns a Remote.
func NewRemote(cfg RemoteConfig) (*Remote, error) {
	base, err := relayBase(cfg.Base)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.Token == "" {
		errs = append(errs, errors.New("client: remote: Token is empty"))
	}
	if cfg.KeysMaxAge < 0 {
		errs = append(errs, errors.New("client: remote: KeysMaxAge is negative"))
	}
	if cfg.Domain != "" {
		if err := checkDomain(cfg.Domain); err != nil {
			errs = append(errs, fmt.Errorf("client: remote: Domain: %w", err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	if cfg.PeerURL == nil {
		cfg.PeerURL = func(domain string) string { return "https://" + domain }
	}
	if cfg.KeysMaxAge == 0 {
		cfg.KeysMaxAge = DefaultKeysMaxAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Remote{cfg: cfg, base: base, relayURL: base + protocol.RelayPathPrefix, peers: make(map[string]*peerKeys)}, nil
}

// Remote returns a Remote that uses this client's URL, token and HTTP client, and the
// domain of the user_id its provider named in auth_ok, unless cfg sets them.
func (c *Client) Remote(cfg RemoteConfig) (*Remote, error) {
	if cfg.Base == "" {
		cfg.Base = c.cfg.URL
	}
	if cfg.Token == "" {
		cfg.Token = c.cfg.Token
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = c.cfg.HTTPClient
	}
	if cfg.Domain == "" {
		if d, _, _, err := protocol.ParseURI(c.Session().UserID); err == nil {
			cfg.Domain = d
		}
	}
	return NewRemote(cfg)
}

// Domain is the own provider's domain ("" when unknown): Discover and
// FetchKeyPackages with it reach the own provider's users.
func (r *Remote) Domain() string { return r.cfg.Domain }

// keysURL is the base URL where a domain's gateway keys are published.
func (r *Remote) keysURL(domain string) string {
	if domain == r.cfg.Domain {
		return r.base
	}
	return r.cfg.PeerURL(domain)
}

// relayBase maps a provider URL to its HTTP origin: ws -> http, wss -> https, path
// dropped.
func relayBase(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("client: remote: base URL: %w", err)
	}
	switch u.Scheme {
	case "ws", "http":
		u.Scheme = "http"
	case "wss", "https":
		u.Scheme = "https"
	default:
		return "", fmt.Errorf("client: remote: base URL %q: scheme must be http, https, ws or wss", raw)
	}
	if u.Host == "" || u.User != nil {
		return "", fmt.Errorf("client: remote: base URL %q: want scheme://host[:port]", raw)
	}
	return u.Scheme + "://" + u.Host, nil
}

// checkDomain refuses a peer name that cannot be a domain: it becomes a URL path
// segment and the inner request's authority.
func checkDomain(domain string) error {
	if domain == "" || len(domain) > protocol.MaxProviderLen || domain != strings.ToLower(domain) ||
		strings.ContainsAny(domain, "/?#@ \t\r\n%\\") {
		return fmt.Errorf("client: invalid peer domain %q", domain)
	}
	return nil
}

// FetchGatewayKeys fetches a provider's key configurations (application/ohttp-keys)
// from GET <peerBaseURL>/.well-known/ohttp-gateway, directly and not through a
// relay, and checks that at least one is usable. hc nil means http.DefaultClient.
func FetchGatewayKeys(ctx context.Context, hc *http.Client, peerBaseURL string) ([]byte, error) {
	if hc == nil {
		hc = http.DefaultClient
	}
	u := strings.TrimSuffix(peerBaseURL, "/") + ohttp.WellKnownGatewayPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("client: gateway keys: %w", err)
	}
	req.Header.Set("Accept", ohttp.MediaTypeKeys)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: gateway keys: %w", err)
	}
	defer resp.Body.Close()
	body, err := readAtMost(resp.Body, maxGatewayKeys)
	if err != nil {
		return nil, fmt.Errorf("client: gateway keys from %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK || !isMediaType(resp.Header, ohttp.MediaTypeKeys) {
		return nil, fmt.Errorf("client: gateway keys from %s: %w", u, relayError(resp, body))
	}
	if _, err := ohttp.NewClient(body); err != nil {
		return nil, fmt.Errorf("client: gateway keys from %s: %w", u, err)
	}
	return body, nil
}

// GatewayKeys returns the cached key configurations of a peer, fetching them when
// there are none or they are older than KeysMaxAge.
func (r *Remote) GatewayKeys(ctx context.Context, peerDomain string) ([]byte, error) {
	if err := checkDomain(peerDomain); err != nil {
		return nil, err
	}
	_, keys, err := r.peerClient(ctx, peerDomain, nil)
	return keys, err
}

// ForgetGatewayKeys drops a peer's cached key configurations.
func (r *Remote) ForgetGatewayKeys(peerDomain string) {
	r.mu.Lock()
	delete(r.peers, peerDomain)
	r.mu.Unlock()
}

// peerClient returns an OHTTP client for the peer's current keys. stale, when not
// nil, is a client that a gateway refused: keys are fetched again unless another
// caller already replaced it.
func (r *Remote) peerClient(ctx context.Context, domain string, stale *ohttp.Client) (*ohttp.Client, []byte, error) {
	r.mu.Lock()
	p := r.peers[domain]
	if p == nil {
		p = &peerKeys{}
		r.peers[domain] = p
	}
	r.mu.Unlock()
	fresh := func() (*ohttp.Client, []byte, bool) {
		p.mu.Lock()
		defer p.mu.Unlock()
		ok := p.client != nil && p.client != stale && r.cfg.Now().Sub(p.fetched) < r.cfg.KeysMaxAge
		return p.client, p.keys, ok
	}
	if oc, keys, ok := fresh(); ok {
		return oc, keys, nil
	}
	p.fetch.Lock() // one fetch per peer at a time; the others wait for its result
	defer p.fetch.Unlock()
	if oc, keys, ok := fresh(); ok {
		return oc, keys, nil
	}
	keys, err := FetchGatewayKeys(ctx, r.cfg.HTTPClient, r.keysURL(domain))
	if err != nil {
		return nil, nil, err
	}
	oc, err := ohttp.NewClient(keys)
	if err != nil {
		return nil, nil, fmt.Errorf("client: gateway keys of %s: %w", domain, err)
	}
	p.mu.Lock()
	p.keys, p.client, p.fetched = keys, oc, r.cfg.Now()
	p.mu.Unlock()
	return oc, keys, nil
}

// Discover asks a peer provider, through the relay, for one of its users
// (userURI, mimi://<peer>/u/<user>): the answer carries the bearer token that
// KeyPackage requests for that user need. keyConfigs are the peer's key
// configurations; nil uses the cached ones (fetched as needed, and fetched again
// when the gateway no longer knows them). An unknown user is ErrPeerUnknownUser;
// other refusals are a *GatewayError or a *RelayError.
func (r *Remote) Discover(ctx context.Context, peerDomain string, keyConfigs []byte, userURI string) (protocol.DiscoveryResponse, error) {
	var d protocol.DiscoveryResponse
	if len(userURI) > protocol.MaxUserIDLen {
		return d, fmt.Errorf("client: discover: user_id of %d bytes, limit %d", len(userURI), protocol.MaxUserIDLen)
	}
	w := protocol.NewWriter(make([]byte, 0, len(userURI)+4))
	w.String(userURI)
	body, err := r.exchange(ctx, peerDomain, keyConfigs, protocol.InnerDiscoverPath, w.Bytes())
	var ge *GatewayError
	if errors.As(err, &ge) && ge.Status == http.StatusNotFound {
		return d, fmt.Errorf("client: discover %s: %w: %w", userURI, ErrPeerUnknownUser, err)
	}
	if err != nil {
		return d, fmt.Errorf("client: discover %s: %w", userURI, err)
	}
	if err := d.UnmarshalBinary(body); err != nil {
		return d, fmt.Errorf("%w: discover %s: %w", ErrProtocol, userURI, err)
	}
	if d.UserID != userURI {
		return d, fmt.Errorf("%w: discover %s answered for %s", ErrProtocol, userURI, d.UserID)
	}
	return d, nil
}

// FetchKeyPackages asks a peer provider, through the relay, for KeyPackages of its
// users in one transaction (1 to protocol.MaxBundleRequests requests). It returns
// one result per request, in order; a result whose Status is not StatusOK is that
// request's failure (Result.Err; FetchStatus.DiscoverAgain says when the bearer
// token must be renewed) and does not fail the others. keyConfigs as for Discover.
func (r *Remote) FetchKeyPackages(ctx context.Context, peerDomain string, keyConfigs []byte, reqs []protocol.KeyPackageRequest) ([]protocol.KeyPackageResult, error) {
	body, err := protocol.KeyPackageRequestBundle{Requests: reqs}.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("client: fetch key packages: %w", err)
	}
	out, err := r.exchange(ctx, peerDomain, keyConfigs, protocol.InnerKeyPackagesPath, body)
	if err != nil {
		return nil, fmt.Errorf("client: fetch key packages: %w", err)
	}
	var bundle protocol.KeyPackageResponseBundle
	if err := bundle.UnmarshalBinary(out); err != nil {
		return nil, fmt.Errorf("%w: fetch key packages: %w", ErrProtocol, err)
	}
	if len(bundle.Results) != len(reqs) {
		return nil, fmt.Errorf("%w: fetch key packages: %d results for %d requests", ErrProtocol, len(bundle.Results), len(reqs))
	}
	return bundle.Results, nil
}

// exchange sends one inner POST to a peer's gateway through the relay and returns
// the body of its 200 answer. With cached keys it fetches them again once if the
// gateway no longer knows them; it retries once with a corrected Date if the
// gateway says the clocks disagree.
func (r *Remote) exchange(ctx context.Context, domain string, keyConfigs []byte, path string, content []byte) ([]byte, error) {
	if err := checkDomain(domain); err != nil {
		return nil, err
	}
	var oc *ohttp.Client
	var err error
	if keyConfigs != nil {
		if oc, err = ohttp.NewClient(keyConfigs); err != nil {
			return nil, fmt.Errorf("client: key configurations of %s: %w", domain, err)
		}
	} else if oc, _, err = r.peerClient(ctx, domain, nil); err != nil {
		return nil, err
	}
	refetched, redated := false, false
	for {
		resp, err := r.roundTrip(ctx, oc, domain, path, content)
		switch {
		case errors.Is(err, ErrStaleGatewayKeys) && keyConfigs == nil && !refetched:
			refetched = true
			if oc, _, err = r.peerClient(ctx, domain, oc); err != nil {
				return nil, err
			}
			continue
		case err != nil:
			return nil, err
		case resp.Status == http.StatusOK:
			return resp.Content, nil
		}
		gerr := gatewayError(path, resp)
		if gerr.Problem != nil && gerr.Problem.Type == ohttp.ProblemTypeDate && !redated && r.learnSkew(resp) {
			redated = true
			continue
		}
		return nil, gerr
	}
}

// roundTrip encapsulates one inner request, posts it to the relay and opens the
// answer.
func (r *Remote) roundTrip(ctx context.Context, oc *ohttp.Client, domain, path string, content []byte) (*bhttp.Response, error) {
	r.mu.Lock()
	date := r.cfg.Now().Add(r.skew).UTC().Format(http.TimeFormat)
	r.mu.Unlock()
	inner := &bhttp.Request{Method: http.MethodPost, Scheme: "https", Authority: domain, Path: path,
		Header:  bhttp.Fields{{Name: "content-type", Value: protocol.InnerContentType}, {Name: "date", Value: date}},
		Content: content}
	enc, cc, err := oc.Encapsulate(inner)
	if err != nil {
		return nil, fmt.Errorf("client: encapsulate: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.relayURL+url.PathEscape(domain), bytes.NewReader(enc))
	if err != nil {
		return nil, fmt.Errorf("client: relay request: %w", err)
	}
	req.Header.Set("Content-Type", ohttp.MediaTypeRequest)
	req.Header.Set("Authorization", "Bearer "+r.cfg.Token)
	resp, err := r.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("client: relay: %w", err)
	}
	defer resp.Body.Close()
	body, err := readAtMost(resp.Body, ohttp.DefaultMaxResponseBytes)
	if err != nil {
		return nil, fmt.Errorf("client: relay answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK || !isMediaType(resp.Header, ohttp.MediaTypeResponse) {
		return nil, relayError(resp, body)
	}
	out, err := cc.Decapsulate(body)
	if err != nil {
		return nil, fmt.Errorf("%w: relay answer: %w", ErrProtocol, err)
	}
	return out, nil
}

// learnSkew records the gateway's clock from the Date of its date problem; it
// reports whether a retry may help.
func (r *Remote) learnSkew(resp *bhttp.Response) bool {
	t, err := http.ParseTime(resp.Header.Get("date"))
	if err != nil {
		return false
	}
	r.mu.Lock()
	r.skew = t.Sub(r.cfg.Now())
	r.mu.Unlock()
	return true
}

func gatewayError(path string, resp *bhttp.Response) *GatewayError {
	e := &GatewayError{Path: path, Status: resp.Status, Body: resp.Content[:min(len(resp.Content), maxErrorBody)]}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("content-type")); err == nil && mt == ohttp.MediaTypeProblem {
		e.Problem = parseProblem(resp.Content)
	}
	return e
}

func relayError(resp *http.Response, body []byte) *RelayError {
	e := &RelayError{StatusCode: resp.StatusCode}
	if isMediaType(resp.Header, ohttp.MediaTypeProblem) {
		e.Problem = parseProblem(body)
	}
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 && s < 86400 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	return e
}

func parseProblem(b []byte) *ohttp.Problem {
	var p ohttp.Problem
	if len(b) > maxErrorBody || json.Unmarshal(b, &p) != nil {
		return nil
	}
	return &p
}

func isMediaType(h http.Header, want string) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == want
}

// readAtMost reads a body of at most max bytes.
func readAtMost(rd io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(rd, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("client: answer over %d bytes", max)
	}
	return b, nil
}
