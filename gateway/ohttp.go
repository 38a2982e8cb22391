package gateway

// Oblivious HTTP (RFC 9458, docs/protocol.md §3): the gateway serves this provider's
// KeyPackages and discovery behind /.well-known/ohttp-gateway, and the relay forwards
// this provider's clients' encapsulated requests to a peer's gateway, or to our own
// in process. Both are metered.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/ohttp"
	"github.com/mimids/mimids/ohttp/bhttp"
	"github.com/mimids/mimids/protocol"
)

// OHTTPKeyPackages serves KeyPackage request bundles (directory.KeyPackages).
type OHTTPKeyPackages interface {
	ServeBundle(ctx context.Context, body []byte, now time.Time) ([]byte, error)
}

// Discovery answers who a user is and a bearer token for them (directory.Discovery).
type Discovery interface {
	Discover(ctx context.Context, user, requester string) (protocol.DiscoveryResponse, error)
}

// OHTTP is what the Oblivious HTTP gateway and relay serve.
type OHTTP struct {
	Keys        *ohttp.KeySet
	KeyPackages OHTTPKeyPackages
	Discovery   Discovery
	// Route names, for a peer domain, the base URL of its gateway and the client
	// that reaches it while checking the peer's certificate (the federation
	// allow-list: federation.Links.PeerHTTP); nil or not ok falls back to Peers.
	Route func(peer string) (base string, c *http.Client, ok bool)
	// Peers maps each peer provider's domain to its base URL, where its gateway is:
	// the hop for a peer Route does not know (no certificate is checked beyond
	// the URL's own TLS, if https).
	Peers map[string]string
	// RelayLimiter rate-limits each client's relay requests (directory.TokenBuckets).
	RelayLimiter ohttp.Limiter
	// ReplayCapacity and ReplayPerSource bound the gateway's replay cache, in all and
	// per source (0: the ohttp defaults).
	ReplayCapacity, ReplayPerSource int
	Now                             func() time.Time // default time.Now
}

// MountOHTTP serves the Oblivious HTTP gateway and the relay. The relay always
// serves our own domain, through the gateway in process. Call it before serving.
func (s *Server) MountOHTTP(o OHTTP) error {
	if o.Now == nil {
		o.Now = time.Now
	}
	gm, rm := newOHTTPMetrics(s.deps.Registry)
	og, err := ohttp.NewGateway(ohttp.GatewayConfig{Keys: o.Keys, Routes: ohttpRoutes(o.KeyPackages, o.Discovery, o.Now),
		Authorities: []string{s.deps.Directory.Domain()}, Observe: gm.observe,
		ReplayCapacity: o.ReplayCapacity, ReplayPerSource: o.ReplayPerSource})
	if err != nil {
		return err
	}
	gw := gm.time(og, func(r *http.Request) string { return methodLabel(r.Method) })
	s.echo.Match([]string{"GET", "HEAD", "POST"}, ohttp.WellKnownGatewayPath, echo.WrapHandler(gw))
	// Both doors read at most their MaxRequestBytes (64 KiB), refusing a larger
	// Content-Length before reading, and count the refusal as too_large.
	s.ownBodyLimit[ohttp.WellKnownGatewayPath] = true
	s.ownBodyLimit[protocol.RelayPathPrefix+":peer"] = true
	s.relayTransport = &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second}
	relay, err := newRelay(o, s.deps.Directory, s.relayTransport, gw, rm.observe)
	if err != nil {
		return err
	}
	s.echo.POST(protocol.RelayPathPrefix+":peer", echo.WrapHandler(rm.time(relay, relayTarget(s.deps.Directory.Domain(), o.Peers, o.Route))))
	s.ohttpGateway = gw
	return nil
}

// OHTTPGateway is the Oblivious HTTP gateway MountOHTTP mounted (metered, as on
// the gateway's own listener), for a provider to serve elsewhere too (its
// federation listener, to peers' relays); nil before MountOHTTP.
func (s *Server) OHTTPGateway() http.Handler { return s.ohttpGateway }

// ohttpRoutes is the gateway's handler table: the only things the gateway serves.
func ohttpRoutes(kps OHTTPKeyPackages, disc Discovery, now func() time.Time) map[ohttp.Route]ohttp.HandlerFunc {
	return map[ohttp.Route]ohttp.HandlerFunc{
		{Method: http.MethodPost, Path: protocol.InnerKeyPackagesPath}: func(ctx context.Context, req *bhttp.Request) *bhttp.Response {
			out, err := kps.ServeBundle(ctx, req.Content, now())
			switch {
			case errors.Is(err, directory.ErrMalformed):
				return bhttp.NewResponse(http.StatusBadRequest, "text/plain", []byte(err.Error()))
			case errors.Is(err, protocol.ErrBundleTooLarge):
				return bhttp.NewResponse(http.StatusRequestEntityTooLarge, "text/plain", []byte(err.Error()))
			case err != nil:
				return bhttp.NewResponse(http.StatusInternalServerError, "", nil)
			}
			return bhttp.NewResponse(http.StatusOK, protocol.InnerContentType, out)
		},
		{Method: http.MethodPost, Path: protocol.InnerDiscoverPath}: func(ctx context.Context, req *bhttp.Request) *bhttp.Response {
			r := protocol.NewReader(req.Content)
			user := r.OpaqueMax("discover.user_id", protocol.MaxUserIDLen)
			if err := r.Done(); err != nil {
				return bhttp.NewResponse(http.StatusBadRequest, "text/plain", []byte(err.Error()))
			}
			// Behind Oblivious HTTP the requester is unknown; the source (the client of our
			// relay, or the address of a peer's relay) is rate-limited.
			resp, err := disc.Discover(ctx, string(user), ohttp.Source(ctx))
			switch {
			case errors.Is(err, directory.ErrUnknownUser), errors.Is(err, directory.ErrNotFound):
				return bhttp.NewResponse(http.StatusNotFound, "", nil)
			case errors.Is(err, directory.ErrRateLimited):
				r := bhttp.NewResponse(http.StatusTooManyRequests, "", nil)
				r.Header = append(r.Header, bhttp.Field{Name: "retry-after", Value: "1"})
				return r
			case err != nil:
				return bhttp.NewResponse(http.StatusInternalServerError, "", nil)
			}
			out, err := resp.MarshalBinary()
			if err != nil {
				return bhttp.NewResponse(http.StatusInternalServerError, "", nil)
			}
			return bhttp.NewResponse(http.StatusOK, protocol.InnerContentType, out)
		},
	}
}

// relayAuthorizer accepts requests that carry a valid device token; the token's
// hash names the client for rate limiting.
func relayAuthorizer(dir Directory) (authorize func(*http.Request) error, limitKey func(*http.Request) string) {
	token := func(r *http.Request) string {
		t, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		return t
	}
	authorize = func(r *http.Request) error {
		_, err := dir.Authenticate(r.Context(), []byte(token(r)))
		return err
	}
	limitKey = func(r *http.Request) string { return string(directory.HashToken(token(r))) }
	return authorize, limitKey
}

// newRelay builds the relay for this provider's clients: it forwards to the
// configured peers' gateways, and hands requests for our own domain to own, our
// gateway, in process (a local fetch: two users of this provider, no peer
// configuration needed).
func newRelay(o OHTTP, dir Directory, tr *http.Transport, own http.Handler, observe func(ohttp.Outcome, error)) (*ohttp.Relay, error) {
	peers := make(map[string]string, len(o.Peers))
	for domain, base := range o.Peers {
		peers[domain] = strings.TrimSuffix(base, "/") + ohttp.WellKnownGatewayPath
	}
	var route func(string) (string, *http.Client, bool)
	if o.Route != nil {
		route = func(peer string) (string, *http.Client, bool) {
			base, c, ok := o.Route(peer)
			return strings.TrimSuffix(base, "/") + ohttp.WellKnownGatewayPath, c, ok
		}
	}
	authorize, limitKey := relayAuthorizer(dir)
	// Our own transport, so Serve can close its idle connections to the peers on the
	// way out (a peer's graceful shutdown would otherwise wait for them).
	hc := &http.Client{
		Transport:     tr,
		Timeout:       ohttp.DefaultRelayTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return ohttp.NewRelay(ohttp.RelayConfig{
		Client:    hc,
		Peers:     peers,
		Route:     route,
		Local:     map[string]http.Handler{dir.Domain(): own},
		PeerFunc:  func(r *http.Request) string { return strings.TrimPrefix(r.URL.Path, protocol.RelayPathPrefix) },
		Authorize: authorize,
		Limiter:   o.RelayLimiter,
		LimitKey:  limitKey,
		Observe:   observe,
	})
}

// ohttpDoor meters one Oblivious HTTP door, the gateway or the relay: its requests
// by outcome (from the ohttp Observe hook, which names the problem of every refusal)
// and the time to answer them (around its handler).
type ohttpDoor struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

// newOHTTPMetrics registers the gateway's and the relay's metrics.
func newOHTTPMetrics(reg prometheus.Registerer) (gateway, relay *ohttpDoor) {
	door := func(name, what, label string) *ohttpDoor {
		d := &ohttpDoor{
			requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mimids_ohttp_" + name + "_requests_total",
				Help: "Requests to the Oblivious HTTP " + what + ", by outcome (ok, or the problem that refused it)."},
				[]string{"outcome"}),
			seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mimids_ohttp_" + name + "_request_seconds",
				Help:    "Time the Oblivious HTTP " + what + " took to answer a request, by " + label + ".",
				Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9)}, []string{label}),
		}
		d.requests.WithLabelValues(string(ohttp.OutcomeOK))
		reg.MustRegister(d.requests, d.seconds)
		return d
	}
	return door("gateway", "gateway (/.well-known/ohttp-gateway)", "method"),
		door("relay", "relay (/v1/ohttp-relay/<domain>)", "target")
}

func (d *ohttpDoor) observe(o ohttp.Outcome, _ error) { d.requests.WithLabelValues(string(o)).Inc() }

// time wraps h to observe how long each request took, under the label value that
// label gives the request.
func (d *ohttpDoor) time(h http.Handler, label func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		d.seconds.WithLabelValues(label(r)).Observe(time.Since(start).Seconds())
	})
}

// methodLabel bounds the method label: GET, HEAD, POST or other.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost:
		return m
	}
	return "other"
}

// relayTarget names where a relay request goes: local (our own domain, served in
// process), peer (a peer of the allow-list, or a configured one) or unknown
// (refused).
func relayTarget(own string, peers map[string]string, route func(string) (string, *http.Client, bool)) func(*http.Request) string {
	return func(r *http.Request) string {
		d := strings.ToLower(strings.TrimPrefix(r.URL.Path, protocol.RelayPathPrefix))
		if d == own {
			return "local"
		}
		if route != nil {
			if _, _, ok := route(d); ok {
				return "peer"
			}
		}
		if peers[d] != "" {
			return "peer"
		}
		return "unknown"
	}
}
