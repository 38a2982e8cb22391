package provider

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/ohttp"
	"github.com/mimids/mimids/ohttp/bhttp"
	"github.com/mimids/mimids/protocol"
)

// Inner Oblivious HTTP routes served by the gateway (docs/protocol.md §3).
const (
	InnerKeyPackagesPath = "/v1/keypackages"
	InnerDiscoverPath    = "/v1/discover"
	RelayPathPrefix      = "/v1/ohttp-relay/"
	contentTypeMIMI      = "application/octet-stream"
)

// ohttpRoutes is the gateway's handler table: the only things the gateway serves.
func ohttpRoutes(kps *directory.KeyPackages, disc *directory.Discovery, now func() time.Time) map[ohttp.Route]ohttp.HandlerFunc {
	return map[ohttp.Route]ohttp.HandlerFunc{
		{Method: http.MethodPost, Path: InnerKeyPackagesPath}: func(ctx context.Context, req *bhttp.Request) *bhttp.Response {
			out, err := kps.ServeBundle(ctx, req.Content, now())
			switch {
			case errors.Is(err, directory.ErrMalformed):
				return bhttp.NewResponse(http.StatusBadRequest, "text/plain", []byte(err.Error()))
			case errors.Is(err, protocol.ErrBundleTooLarge):
				return bhttp.NewResponse(http.StatusRequestEntityTooLarge, "text/plain", []byte(err.Error()))
			case err != nil:
				return bhttp.NewResponse(http.StatusInternalServerError, "", nil)
			}
			return bhttp.NewResponse(http.StatusOK, contentTypeMIMI, out)
		},
		{Method: http.MethodPost, Path: InnerDiscoverPath}: func(ctx context.Context, req *bhttp.Request) *bhttp.Response {
			r := protocol.NewReader(req.Content)
			user := r.OpaqueMax("discover.user_id", protocol.MaxUserIDLen)
			if err := r.Done(); err != nil {
				return bhttp.NewResponse(http.StatusBadRequest, "text/plain", []byte(err.Error()))
			}
			// Behind Oblivious HTTP the requester is unknown: every answer is its own.
			resp, err := disc.Discover(ctx, string(user), "ohttp")
			switch {
			case errors.Is(err, directory.ErrUnknownUser), errors.Is(err, directory.ErrNotFound):
				return bhttp.NewResponse(http.StatusNotFound, "", nil)
			case err != nil:
				return bhttp.NewResponse(http.StatusInternalServerError, "", nil)
			}
			out, err := resp.MarshalBinary()
			if err != nil {
				return bhttp.NewResponse(http.StatusInternalServerError, "", nil)
			}
			return bhttp.NewResponse(http.StatusOK, contentTypeMIMI, out)
		},
	}
}

// relayAuthorizer accepts requests that carry a valid device token; the token's
// hash names the client for rate limiting.
func relayAuthorizer(dir *directory.Directory) (authorize func(*http.Request) error, limitKey func(*http.Request) string) {
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
func newRelay(cfg Config, dir *directory.Directory, tr *http.Transport, own http.Handler, observe func(ohttp.Outcome, error)) (*ohttp.Relay, error) {
	peers := make(map[string]string, len(cfg.Peers))
	for _, p := range cfg.Peers {
		peers[p.Domain] = strings.TrimSuffix(p.URL, "/") + ohttp.WellKnownGatewayPath
	}
	authorize, limitKey := relayAuthorizer(dir)
	// Our own transport, so Run can close its idle connections to the peers on the
	// way out (a peer's graceful shutdown would otherwise wait for them).
	hc := &http.Client{
		Transport:     tr,
		Timeout:       ohttp.DefaultRelayTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return ohttp.NewRelay(ohttp.RelayConfig{
		Client:    hc,
		Peers:     peers,
		Local:     map[string]http.Handler{cfg.Domain: own},
		PeerFunc:  func(r *http.Request) string { return strings.TrimPrefix(r.URL.Path, RelayPathPrefix) },
		Authorize: authorize,
		Limiter:   directory.NewTokenBuckets(cfg.OHTTP.RelayRate, cfg.OHTTP.RelayBurst, 100_000, nil),
		LimitKey:  limitKey,
		Observe:   observe,
	})
}
