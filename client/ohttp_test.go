package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/ohttp"
	"github.com/mimids/mimids/protocol"
)

// federation is provider a.example (alice's, with a relay to b.example) and
// b.example (bob's, whose gateway answers, on the ts-mls KeyPackages' clock), both
// in-process on loopback.
type federation struct {
	fx     kpFixtures
	a      *providertest.Provider
	b      *fixtureProvider
	relay  *byteRecorder // what a.example's relay handled
	alice  *Client
	bob    *Client
	remote *Remote
	lows   chan protocol.KeyPackagesLow // bob's key_packages_low deliveries
}

// newFederation starts both providers; relayRate is a.example's relay token bucket
// per client (0: 1000/s). Alice's relay requests pass a recording proxy (f.relay),
// and the relay reaches b.example through another proxy, which closes the relay's
// connections when the test ends (the provider's relay never closes them, and one
// it dialed but did not use holds b.example's shutdown for 5 seconds). bench keeps
// both proxies off the measured path.
func newFederation(t testing.TB, relayRate float64, bench bool) *federation {
	t.Helper()
	f := &federation{fx: loadKeyPackages(t), lows: make(chan protocol.KeyPackagesLow, 16)}
	var edits []func(*provider.Config)
	if bench { // measure the path, not the abuse limits
		edits = append(edits, func(c *provider.Config) {
			c.Discovery.RatePerSource, c.OHTTP.ReplayPerSource = 0, c.OHTTP.ReplayCapacity
			c.KeyPackages.TokenClaimsPerHour, c.KeyPackages.UserClaimsPerHour = 0, 0
		})
	}
	f.b = startFixtureProvider(t, "b.example", f.fx.Now(), 3, edits...)
	if relayRate == 0 {
		relayRate = 1000
	}
	peerBase := f.b.direct
	if !bench {
		peerBase, _ = tap(t, f.b.base)
	}
	f.a = startProvider(t, "a.example", func(c *provider.Config) {
		c.Peers = []provider.PeerConfig{{Domain: "b.example", URL: peerBase}}
		c.OHTTP.RelayRate, c.OHTTP.RelayBurst = relayRate, max(1, int(relayRate))
	})
	relayBase := f.a.Base
	if !bench {
		relayBase, f.relay = tap(t, f.a.Base)
	}
	f.alice, _ = dialAs(t, f.a.Socket, f.a.Dir, "alice", Config{})
	f.bob, _ = dialAs(t, f.b.socket, f.b.dir, "bob", Config{Handler: func(_ context.Context, d *Delivery) error {
		if n, err := d.KeyPackagesLow(); err == nil {
			f.lows <- n
		}
		return nil
	}})
	var err error
	f.remote, err = f.alice.Remote(RemoteConfig{Base: relayBase, PeerURL: f.peerURL, HTTPClient: testHTTPClient(t)})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// testHTTPClient has its own connections, closed before the providers stop (an
// accepted connection that never carried a request holds a server's shutdown for
// 5 seconds).
func testHTTPClient(t testing.TB) *http.Client {
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

func (f *federation) peerURL(domain string) string {
	if domain == "b.example" {
		return f.b.base
	}
	return "http://127.0.0.1:1" // nothing listens
}

// uploadBob stores bob's fixture KeyPackages at b.example.
func (f *federation) uploadBob(t testing.TB) []kpFixture {
	t.Helper()
	bob := f.fx.Of("mimi://b.example/u/bob")
	var kps [][]byte
	for _, k := range bob {
		kps = append(kps, k.KeyPackage)
	}
	if _, err := f.bob.UploadKeyPackages(context.Background(), kps); err != nil {
		t.Fatal(err)
	}
	return bob
}

func (f *federation) discoverBob(t testing.TB) string {
	t.Helper()
	d, err := f.remote.Discover(context.Background(), "b.example", nil, "mimi://b.example/u/bob")
	if err != nil {
		t.Fatal(err)
	}
	return d.BearerToken
}

func TestRemoteEndToEnd(t *testing.T) {
	f := newFederation(t, 0, false)
	ctx := ctxT(t)
	bob := f.uploadBob(t)

	d, err := f.remote.Discover(ctx, "b.example", nil, "mimi://b.example/u/bob")
	if err != nil {
		t.Fatal(err)
	}
	if d.UserID != "mimi://b.example/u/bob" || d.Provider != "b.example" || d.BearerToken == "" {
		t.Fatalf("discovery = %+v", d)
	}
	req := func(user, token string) protocol.KeyPackageRequest {
		return protocol.KeyPackageRequest{UserID: user, BearerToken: token, Version: mls.ProtocolVersionMLS10, CipherSuite: 1}
	}
	reqs := []protocol.KeyPackageRequest{
		req(d.UserID, d.BearerToken),
		req("mimi://b.example/u/nobody", d.BearerToken), // bob's token says nothing of other users
		req(d.UserID, "not-a-token"),
		{UserID: d.UserID, BearerToken: d.BearerToken, Version: mls.ProtocolVersionMLS10, CipherSuite: 2},
	}
	res, err := f.remote.FetchKeyPackages(ctx, "b.example", nil, reqs)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus := []protocol.FetchStatus{protocol.StatusOK, protocol.StatusBadToken, protocol.StatusBadToken, protocol.StatusNoKeyPackage}
	for i, r := range res {
		if r.Status != wantStatus[i] {
			t.Errorf("result %d: %s (%s), want %s", i, r.Status, r.Message, wantStatus[i])
		}
	}
	if !res[2].Status.DiscoverAgain() || !errors.Is(res[1].Err(), directory.ErrTokenInvalid) {
		t.Errorf("result errors: %v, %v", res[1].Err(), res[2].Err())
	}
	// bob has one client, so a bundle names him once: two more fetches.
	for range 2 {
		more, err := f.remote.FetchKeyPackages(ctx, "b.example", nil, reqs[:1])
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, more[0])
	}
	res[3], res[4] = res[4], res[5]
	// Bob's two ordinary KeyPackages, then his last resort, as bare KeyPackages.
	got := [][]byte{res[0].Response.KeyPackage, res[3].Response.KeyPackage, res[4].Response.KeyPackage}
	for i, want := range []kpFixture{bob[0], bob[1], bob[2]} {
		if !containsBytes(got, want.KeyPackageBare) {
			t.Errorf("KeyPackage %d (last resort %v) not served", i, want.LastResort)
		}
	}
	if !bytes.Equal(res[4].Response.KeyPackage, bob[2].KeyPackageBare) || !bob[2].LastResort {
		t.Errorf("third fetch did not get the last resort")
	}

	// What a.example's relay handled never shows the target, the token or the
	// KeyPackages: only the peer's domain in the path.
	if f.relay.count() != 4 {
		t.Errorf("relay handled %d requests, want 4", f.relay.count())
	}
	secrets := [][]byte{[]byte("mimi://b.example/u/bob"), []byte("/u/bob"), []byte(d.BearerToken)}
	for _, k := range bob {
		secrets = append(secrets, k.KeyPackageBare[len(k.KeyPackageBare)-64:])
	}
	for _, s := range secrets {
		if f.relay.contains(s) {
			t.Errorf("relay saw %q", s)
		}
	}
	// The gateway saw neither alice's device token nor her address headers.
	if f.b.gwHits.contains([]byte("Bearer")) || f.b.gwHits.contains([]byte("alice")) {
		t.Error("gateway saw alice's credentials")
	}

	// Bob is told his stock is low (threshold 3).
	select {
	case n := <-f.lows:
		if n.CipherSuite != 1 || n.Remaining >= 3 {
			t.Errorf("low-stock notice %+v", n)
		}
	case <-time.After(5 * time.Second):
		t.Error("bob got no key_packages_low delivery")
	}
	if st, err := f.bob.KeyPackageCount(ctx, 1); err != nil || st.Available != 0 || !st.LastResort {
		t.Errorf("bob's stock after the fetch: %+v, %v", st, err)
	}
}

func containsBytes(l [][]byte, b []byte) bool {
	for _, e := range l {
		if bytes.Equal(e, b) {
			return true
		}
	}
	return false
}

func TestRemoteConcurrentFetches(t *testing.T) {
	f := newFederation(t, 0, false)
	bob := f.uploadBob(t)
	token := f.discoverBob(t)
	f.remote.ForgetGatewayKeys("b.example") // every goroutine starts without keys
	const n = 10                            // key_packages.token_claim_burst: one token claims bob's at most 10 at once
	var wg sync.WaitGroup
	got := make([][]byte, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			res, err := f.remote.FetchKeyPackages(context.Background(), "b.example", nil, []protocol.KeyPackageRequest{
				{UserID: "mimi://b.example/u/bob", BearerToken: token, Version: mls.ProtocolVersionMLS10, CipherSuite: 1}})
			if err == nil {
				err = res[0].Err()
				got[i] = res[0].Response.KeyPackage
			}
			errs[i] = err
		})
	}
	wg.Wait()
	counts := map[string]int{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("fetch %d: %v", i, errs[i])
		}
		counts[string(got[i])]++
	}
	for _, k := range bob {
		c := counts[string(k.KeyPackageBare)]
		switch {
		case k.LastResort && c != n-2:
			t.Errorf("last resort served %d times, want %d", c, n-2)
		case !k.LastResort && c != 1:
			t.Errorf("KeyPackage %x served %d times, want once", k.KeyPackageRef[:4], c)
		}
	}
	if hits := f.b.gwHits.count(); hits != n+3 { // n fetches; discovery and a key fetch before; one key fetch for all
		t.Errorf("gateway handled %d requests, want %d (one key fetch for all)", hits, n+3)
	}
}

func TestRemoteKeyRotation(t *testing.T) {
	f := newFederation(t, 0, false)
	ctx := ctxT(t)
	old, err := f.remote.GatewayKeys(ctx, "b.example")
	if err != nil {
		t.Fatal(err)
	}
	// b.example rotates and drops the old key at once: requests to it fail.
	oldID := f.b.keys.Current().ID()
	if _, err := f.b.keys.Rotate(ohttp.KEMP256HKDFSHA256, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	f.b.keys.Remove(oldID)

	// Explicit stale keys: a typed error.
	_, err = f.remote.Discover(ctx, "b.example", old, "mimi://b.example/u/bob")
	var re *RelayError
	if !errors.Is(err, ErrStaleGatewayKeys) || !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
		t.Fatalf("discover with stale keys: %v", err)
	}
	// Cached keys: fetched again and retried once.
	if _, err := f.remote.Discover(ctx, "b.example", nil, "mimi://b.example/u/bob"); err != nil {
		t.Fatalf("discover after rotation: %v", err)
	}
	fresh, err := f.remote.GatewayKeys(ctx, "b.example")
	if err != nil || bytes.Equal(fresh, old) {
		t.Fatalf("keys after rotation: %x, %v", fresh, err)
	}
	fetched, err := FetchGatewayKeys(ctx, testHTTPClient(t), f.b.base)
	if err != nil || !bytes.Equal(fetched, fresh) {
		t.Fatalf("FetchGatewayKeys = %x, %v; cached %x", fetched, err, fresh)
	}
}

func TestRemoteErrors(t *testing.T) {
	f := newFederation(t, 0, false)
	ctx := ctxT(t)
	keys, err := FetchGatewayKeys(ctx, testHTTPClient(t), f.b.base)
	if err != nil {
		t.Fatal(err)
	}
	badToken, err := NewRemote(RemoteConfig{Base: f.a.Socket, Token: "mdt_nope", PeerURL: f.peerURL, HTTPClient: testHTTPClient(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		remote *Remote
		peer   string
		user   string
		want   error
		status int
	}{
		{"unknown user", f.remote, "b.example", "mimi://b.example/u/nobody", ErrPeerUnknownUser, http.StatusNotFound},
		{"peer not served by the relay", f.remote, "c.example", "mimi://c.example/u/carl", ErrUnknownPeer, http.StatusNotFound},
		{"device token refused", badToken, "b.example", "mimi://b.example/u/bob", ErrRelayUnauthorized, http.StatusUnauthorized},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.remote.Discover(ctx, tc.peer, keys, tc.user)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Discover: %v, want %v", err, tc.want)
			}
			var re *RelayError
			var ge *GatewayError
			switch {
			case errors.As(err, &re) && re.StatusCode == tc.status:
			case errors.As(err, &ge) && ge.Status == tc.status:
			default:
				t.Errorf("status of %v: want %d", err, tc.status)
			}
		})
	}
	t.Run("malformed bundle is refused locally", func(t *testing.T) {
		if _, err := f.remote.FetchKeyPackages(ctx, "b.example", keys, nil); !errors.Is(err, directory.ErrMalformed) {
			t.Fatalf("empty bundle: %v", err)
		}
		big := make([]protocol.KeyPackageRequest, protocol.MaxBundleRequests+1)
		if _, err := f.remote.FetchKeyPackages(ctx, "b.example", keys, big); !errors.Is(err, protocol.ErrBundleTooLarge) {
			t.Fatalf("oversized bundle: %v", err)
		}
	})
	t.Run("invalid peer domains", func(t *testing.T) {
		for _, d := range []string{"", "B.example", "b.example/x", "a b", "x%2f"} {
			if _, err := f.remote.Discover(ctx, d, keys, "mimi://b.example/u/bob"); err == nil {
				t.Errorf("domain %q accepted", d)
			}
		}
	})
	t.Run("unusable key configurations", func(t *testing.T) {
		if _, err := f.remote.Discover(ctx, "b.example", []byte{1, 2, 3}, "mimi://b.example/u/bob"); !errors.Is(err, ohttp.ErrInvalidKeyConfig) && !errors.Is(err, ohttp.ErrTruncated) {
			t.Fatalf("garbage keys: %v", err)
		}
	})
}

func TestRemoteRateLimited(t *testing.T) {
	f := newFederation(t, 1, false)
	ctx := ctxT(t)
	keys, err := f.remote.GatewayKeys(ctx, "b.example")
	if err != nil {
		t.Fatal(err)
	}
	var limited error
	for range 5 {
		if _, err := f.remote.Discover(ctx, "b.example", keys, "mimi://b.example/u/bob"); err != nil {
			limited = err
			break
		}
	}
	var re *RelayError
	if !errors.Is(limited, ErrRelayRateLimited) || !errors.As(limited, &re) || re.RetryAfter <= 0 {
		t.Fatalf("5 discoveries at 1/s: %v, want a rate limit with Retry-After", limited)
	}
}

func TestRemoteClockSkew(t *testing.T) {
	f := newFederation(t, 0, false)
	skewed, err := f.alice.Remote(RemoteConfig{PeerURL: f.peerURL, HTTPClient: testHTTPClient(t), Now: func() time.Time { return time.Now().Add(-10 * time.Minute) }})
	if err != nil {
		t.Fatal(err)
	}
	// The gateway refuses the Date, tells its clock, and the retry carries it.
	if _, err := skewed.Discover(ctxT(t), "b.example", nil, "mimi://b.example/u/bob"); err != nil {
		t.Fatalf("discover with a slow clock: %v", err)
	}
	if n := f.b.gwHits.count(); n != 3 { // keys, refused request, retry
		t.Errorf("gateway handled %d requests, want 3", n)
	}
}

func TestFetchGatewayKeys(t *testing.T) {
	good := ohttp.NewKeySet(time.Hour)
	if _, err := good.Rotate(ohttp.KEMX25519HKDFSHA256, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	serve := func(status int, ct string, body []byte) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != ohttp.WellKnownGatewayPath || r.Method != http.MethodGet {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", ct)
			w.WriteHeader(status)
			_, _ = w.Write(body)
		}))
		t.Cleanup(s.Close)
		return s
	}
	for _, tc := range []struct {
		name   string
		status int
		ct     string
		body   []byte
		ok     bool
	}{
		{"valid", 200, ohttp.MediaTypeKeys, good.MarshalConfigs(), true},
		{"wrong media type", 200, "text/plain", good.MarshalConfigs(), false},
		{"error status", 503, ohttp.MediaTypeProblem, []byte(`{"title":"no gateway keys","status":503}`), false},
		{"garbage", 200, ohttp.MediaTypeKeys, []byte{0, 5, 1, 2}, false},
		{"too large", 200, ohttp.MediaTypeKeys, make([]byte, maxGatewayKeys+1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := serve(tc.status, tc.ct, tc.body)
			b, err := FetchGatewayKeys(ctxT(t), s.Client(), s.URL+"/")
			if (err == nil) != tc.ok {
				t.Fatalf("FetchGatewayKeys = %x, %v", b, err)
			}
			if tc.ok && !bytes.Equal(b, tc.body) {
				t.Errorf("keys %x, want %x", b, tc.body)
			}
		})
	}
}

func TestRelayBase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ws://127.0.0.1:8080/v1/socket", "http://127.0.0.1:8080"},
		{"wss://a.example/v1/socket", "https://a.example"},
		{"https://a.example", "https://a.example"},
		{"http://a.example:80/x?y", "http://a.example:80"},
		{"ftp://a.example", ""},
		{"ws:///v1/socket", ""},
		{"https://user@a.example", ""},
		{"::", ""},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := relayBase(tc.in)
			if (err == nil) != (tc.want != "") || got != tc.want {
				t.Fatalf("relayBase(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	if _, err := NewRemote(RemoteConfig{Base: "ftp://x", KeysMaxAge: -1}); err == nil ||
		!bytes.Contains([]byte(err.Error()), []byte("Token")) || !bytes.Contains([]byte(err.Error()), []byte("KeysMaxAge")) {
		t.Errorf("NewRemote with three problems: %v", err)
	}
}

func TestRelayErrorIs(t *testing.T) {
	for _, tc := range []struct {
		e    *RelayError
		want error
	}{
		{&RelayError{StatusCode: 401}, ErrRelayUnauthorized},
		{&RelayError{StatusCode: 404}, ErrUnknownPeer},
		{&RelayError{StatusCode: 429}, ErrRelayRateLimited},
		{&RelayError{StatusCode: 502}, ErrGatewayUnreachable},
		{&RelayError{StatusCode: 504}, ErrGatewayUnreachable},
		{&RelayError{StatusCode: 400, Problem: &ohttp.Problem{Type: ohttp.ProblemTypeKey}}, ErrStaleGatewayKeys},
	} {
		t.Run(fmt.Sprint(tc.e.StatusCode), func(t *testing.T) {
			err := fmt.Errorf("wrapped: %w", tc.e)
			if !errors.Is(err, tc.want) {
				t.Errorf("%v is not %v", err, tc.want)
			}
			for _, other := range []error{ErrRelayUnauthorized, ErrUnknownPeer, ErrRelayRateLimited, ErrGatewayUnreachable, ErrStaleGatewayKeys} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("%v is also %v", err, other)
				}
			}
		})
	}
}

// BenchmarkRemoteFetch measures KeyPackage fetches end to end: client -> relay ->
// gateway -> store -> back, over loopback HTTP, one or ten requests per transaction.
// Bob's last resorts answer every request, so the stock never runs out; a bundle names
// bob once per client, so for ten requests he has ten clients.
func BenchmarkRemoteFetch(b *testing.B) {
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("bundle=%d", n), func(b *testing.B) {
			f := newFederation(b, 1e9, true)
			f.uploadBob(b)
			for range n - 1 {
				c, _ := dialAs(b, f.b.socket, f.b.dir, "bob", Config{})
				kp, _, err := mlstest.NewKeyPackage(mlstest.KeyPackageOptions{Identity: "mimi://b.example/u/bob", LastResort: true, Now: f.fx.Now()})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.UploadKeyPackages(context.Background(), [][]byte{kp}); err != nil {
					b.Fatal(err)
				}
			}
			token := f.discoverBob(b)
			reqs := make([]protocol.KeyPackageRequest, n)
			for i := range reqs {
				reqs[i] = protocol.KeyPackageRequest{UserID: "mimi://b.example/u/bob", BearerToken: token, Version: mls.ProtocolVersionMLS10, CipherSuite: 1}
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				res, err := f.remote.FetchKeyPackages(ctx, "b.example", nil, reqs)
				if err != nil || res[n-1].Status != protocol.StatusOK {
					b.Fatalf("fetch: %v", err)
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "keypackages/s")
		})
	}
}

// BenchmarkRelayOverhead compares a discovery through the relay with the same
// request posted to the gateway directly: the difference is the relay's latency.
func BenchmarkRelayOverhead(b *testing.B) {
	f := newFederation(b, 1e9, true)
	ctx := context.Background()
	keys, err := f.remote.GatewayKeys(ctx, "b.example")
	if err != nil {
		b.Fatal(err)
	}
	direct, err := f.alice.Remote(RemoteConfig{PeerURL: f.peerURL, HTTPClient: testHTTPClient(b)})
	if err != nil {
		b.Fatal(err)
	}
	// The peer domain lands in the query string, which the gateway ignores.
	direct.relayURL = f.b.base + ohttp.WellKnownGatewayPath + "?"
	for _, tc := range []struct {
		name string
		r    *Remote
	}{{"relayed", f.remote}, {"direct", direct}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tc.r.Discover(ctx, "b.example", keys, "mimi://b.example/u/bob"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A client of a.example fetches a KeyPackage of bob at b.example: discovery gives
// the bearer token, then the fetch; both go through a.example's relay, encrypted to
// b.example's gateway key.
func ExampleRemote() {
	ctx := context.Background()
	c, err := Dial(ctx, Config{URL: "wss://a.example/v1/socket", Token: "mdt_..."})
	if err != nil {
		return
	}
	defer c.Close(ctx)
	remote, err := c.Remote(RemoteConfig{}) // relay https://a.example/v1/ohttp-relay/<peer>
	if err != nil {
		return
	}
	d, err := remote.Discover(ctx, "b.example", nil, "mimi://b.example/u/bob")
	if err != nil {
		return
	}
	res, err := remote.FetchKeyPackages(ctx, "b.example", nil, []protocol.KeyPackageRequest{
		{UserID: d.UserID, BearerToken: d.BearerToken, Version: mls.ProtocolVersionMLS10, CipherSuite: 1}})
	if err != nil {
		return
	}
	if err := res[0].Err(); err != nil {
		fmt.Println("no KeyPackage:", err)
		return
	}
	kp, _ := res[0].Response.Decode()
	fmt.Println(kp.CipherSuite)
}
