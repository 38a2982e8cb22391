package client

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/gateway/wire"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/ohttp"
	"github.com/mimids/mimids/ohttp/bhttp"
	"github.com/mimids/mimids/sqlite"
)

// fixtureProvider stores and serves the ts-mls KeyPackages. They are valid around
// their validation_time ([t-1h, t+30d]), not the wall clock, and provider.Config has
// no clock for the KeyPackage service, so this one provider cannot come from
// providertest: it wires the directory, KeyPackages and discovery behind the client
// socket and the OHTTP gateway (no hub, no relay) on that clock. Its two KeyPackage
// socket methods and two inner routes re-state cmd/provider's (keypackages.go).
type fixtureProvider struct {
	base   string // http://127.0.0.1:port
	socket string // ws://127.0.0.1:port/v1/socket
	dir    *directory.Directory
	keys   *ohttp.KeySet
	gwHits *byteRecorder // what the OHTTP gateway handled
}

// startFixtureProvider serves a provider whose KeyPackage service validates and
// claims at now; lowStock is its low-stock threshold (0: the default).
func startFixtureProvider(t testing.TB, domain string, now time.Time, lowStock int) *fixtureProvider {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "mimids.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	p := &fixtureProvider{dir: directory.New(db, domain)}
	mb := mailbox.New(db, mailbox.Metrics{})
	disc, err := directory.NewDiscovery(p.dir, db, directory.DiscoveryConfig{})
	if err != nil {
		t.Fatal(err)
	}
	kps, err := directory.NewKeyPackages(p.dir, db, disc, mb,
		directory.KeyPackageConfig{Clock: func() time.Time { return now }, LowThreshold: lowStock}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := gateway.New(gateway.Config{}, gateway.Deps{Directory: p.dir, Mailbox: mb, Ready: db.Ping})
	srv.Handle(wire.MethodKeyPackageUpload, fixtureUpload(kps))
	srv.Handle(wire.MethodKeyPackageCount, fixtureCount(kps))
	if p.keys, err = provider.LoadKeySet(ctx, db, time.Hour, time.Now()); err != nil {
		t.Fatal(err)
	}
	og, err := ohttp.NewGateway(ohttp.GatewayConfig{Keys: p.keys, Routes: fixtureRoutes(kps, disc, now), Authorities: []string{domain}})
	if err != nil {
		t.Fatal(err)
	}
	p.gwHits = &byteRecorder{next: og}
	srv.Echo().Match([]string{"GET", "HEAD", "POST"}, ohttp.WellKnownGatewayPath, echo.WrapHandler(p.gwHits))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.base, p.socket = "http://"+ln.Addr().String(), "ws://"+ln.Addr().String()+"/v1/socket"
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("provider %s: %v", domain, err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("provider %s did not stop", domain)
		}
		db.Close()
	})
	return p
}

func fixtureUpload(kps *directory.KeyPackages) gateway.Handler {
	return func(ctx context.Context, c *gateway.Caller, body []byte) ([]byte, error) {
		var up directory.KeyPackageUpload
		if err := up.UnmarshalBinary(body); err != nil {
			return nil, &wire.Error{Code: wire.CodeMalformed, Message: err.Error()}
		}
		refs, err := kps.Upload(ctx, c.Client, up.KeyPackages)
		if err != nil {
			return nil, fixtureError(err)
		}
		return directory.KeyPackageUploadResult{Refs: refs}.MarshalBinary()
	}
}

func fixtureCount(kps *directory.KeyPackages) gateway.Handler {
	return func(ctx context.Context, c *gateway.Caller, body []byte) ([]byte, error) {
		r := wire.NewReader(body)
		suite := mls.CipherSuite(r.U16("cipher_suite"))
		if err := r.Done(); err != nil {
			return nil, &wire.Error{Code: wire.CodeMalformed, Message: err.Error()}
		}
		st, err := kps.Count(ctx, c.Client, suite)
		if err != nil {
			return nil, fixtureError(err)
		}
		return st.MarshalBinary()
	}
}

// fixtureError maps the KeyPackage errors these tests provoke to wire codes.
func fixtureError(err error) error {
	code := wire.CodeInternal
	switch {
	case errors.Is(err, directory.ErrDuplicateKeyPackage):
		code = wire.CodeConflict
	case errors.Is(err, directory.ErrInvalidKeyPackage), errors.Is(err, directory.ErrIdentityMismatch):
		code = wire.CodeKeyPackageRejected
	}
	return &wire.Error{Code: code, Message: err.Error()}
}

// fixtureRoutes are the gateway's inner routes, claiming at now.
func fixtureRoutes(kps *directory.KeyPackages, disc *directory.Discovery, now time.Time) map[ohttp.Route]ohttp.HandlerFunc {
	return map[ohttp.Route]ohttp.HandlerFunc{
		{Method: http.MethodPost, Path: InnerKeyPackages}: func(ctx context.Context, req *bhttp.Request) *bhttp.Response {
			out, err := kps.ServeBundle(ctx, req.Content, now)
			switch {
			case errors.Is(err, directory.ErrMalformed):
				return bhttp.NewResponse(http.StatusBadRequest, "text/plain", []byte(err.Error()))
			case err != nil:
				return bhttp.NewResponse(http.StatusInternalServerError, "", nil)
			}
			return bhttp.NewResponse(http.StatusOK, innerContentType, out)
		},
		{Method: http.MethodPost, Path: InnerDiscover}: func(ctx context.Context, req *bhttp.Request) *bhttp.Response {
			r := wire.NewReader(req.Content)
			user := r.OpaqueMax("user_id", directory.MaxUserIDLen)
			if err := r.Done(); err != nil {
				return bhttp.NewResponse(http.StatusBadRequest, "text/plain", []byte(err.Error()))
			}
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
			return bhttp.NewResponse(http.StatusOK, innerContentType, out)
		},
	}
}
