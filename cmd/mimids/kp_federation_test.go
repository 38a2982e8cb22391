package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/mls/mlstest"

	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/ohttp"
	"github.com/mimids/mimids/ohttp/bhttp"
	"github.com/mimids/mimids/protocol"
)

// testKeyPackage returns a signed suite-1 KeyPackage for identity, valid around now.
func testKeyPackage(t testing.TB, identity string, lastResort bool) []byte {
	t.Helper()
	b, _, err := mlstest.NewKeyPackage(mlstest.KeyPackageOptions{Identity: identity, LastResort: lastResort})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wiretap records everything that crosses between A's relay and B's gateway.
type wiretap struct {
	mu      sync.Mutex
	traffic [][]byte // request and response bodies
	headers []http.Header
}

func (w *wiretap) handler(t *testing.T, target string) http.Handler {
	u, _ := url.Parse(target)
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.ModifyResponse = func(r *http.Response) error {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		w.mu.Lock()
		w.traffic = append(w.traffic, b)
		w.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		return nil
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.mu.Lock()
		w.traffic = append(w.traffic, b)
		w.headers = append(w.headers, r.Header.Clone())
		w.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		proxy.ServeHTTP(rw, r)
	})
}

// relayDo sends one inner request to B through A's relay and returns the inner response.
func relayDo(t *testing.T, a *providertest.Provider, token, peer string, keys []byte, path string, body []byte) *bhttp.Response {
	t.Helper()
	oc, err := ohttp.NewClient(keys)
	if err != nil {
		t.Fatal(err)
	}
	req := &bhttp.Request{Method: "POST", Scheme: "https", Authority: peer, Path: path, Content: body}
	enc, cc, err := oc.Encapsulate(req)
	if err != nil {
		t.Fatal(err)
	}
	hr, _ := http.NewRequest("POST", a.Base+protocol.RelayPathPrefix+peer, bytes.NewReader(enc))
	hr.Header.Set("Content-Type", "message/ohttp-req")
	hr.Header.Set("Authorization", "Bearer "+token)
	hr.Header.Set("Cookie", "session=alice-secret")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("relay: %d %s", resp.StatusCode, out)
	}
	inner, err := cc.Decapsulate(out)
	if err != nil {
		t.Fatal(err)
	}
	return inner
}

// TestKeyPackagesAcrossProviders: a client of A fetches the KeyPackages of a user of B
// through A's relay; A sees opaque bytes only.
func TestKeyPackagesAcrossProviders(t *testing.T) {
	lnA, lnB := providertest.ListenPair(t)
	tap := &wiretap{}
	tapSrv := httptest.NewServer(tap.handler(t, "http://"+lnB.Addr().String()))
	defer tapSrv.Close()
	a := providertest.Start(t, "a.example", lnA, func(c *provider.Config) {
		c.Peers = []provider.PeerConfig{{Domain: "b.example", URL: tapSrv.URL}}
	})
	b := providertest.Start(t, "b.example", lnB, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// bob (on B) uploads a stock of 3 KeyPackages and a last resort.
	_, bobToken, err := b.Dir.AddClient(ctx, "bob", "phone", true)
	if err != nil {
		t.Fatal(err)
	}
	bob, err := client.Dial(ctx, client.Config{URL: b.Socket, Token: bobToken})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close(ctx)
	var kps [][]byte
	for i := 0; i < 3; i++ {
		kps = append(kps, testKeyPackage(t, "mimi://b.example/u/bob", false))
	}
	kps = append(kps, testKeyPackage(t, "mimi://b.example/u/bob", true))
	up, _ := protocol.KeyPackageUpload{KeyPackages: kps}.MarshalBinary()
	if _, err := bob.Do(ctx, protocol.MethodKeyPackageUpload, up); err != nil {
		t.Fatalf("upload: %v", err)
	}

	// alice (on A) gets B's gateway keys directly from B, then works through A's relay.
	_, aliceToken, err := a.Dir.AddClient(ctx, "alice", "laptop", true)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + lnB.Addr().String() + ohttp.WellKnownGatewayPath)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	w := protocol.NewWriter(nil)
	w.String("mimi://b.example/u/bob")
	inner := relayDo(t, a, aliceToken, "b.example", keys, protocol.InnerDiscoverPath, w.Bytes())
	var disc protocol.DiscoveryResponse
	if inner.Status != 200 || disc.UnmarshalBinary(inner.Content) != nil || disc.BearerToken == "" || disc.Provider != "b.example" {
		t.Fatalf("discover: %d %+v", inner.Status, disc)
	}

	// Five bundles (bob has one client: a bundle names him once): 3 KeyPackages, then
	// the last resort twice; the first bundle also asks for a user nobody has.
	served := map[string]int{}
	for i := 0; i < 5; i++ {
		reqs := []protocol.KeyPackageRequest{{UserID: disc.UserID, BearerToken: disc.BearerToken,
			Version: mls.ProtocolVersionMLS10, CipherSuite: 1}}
		if i == 0 {
			reqs = append(reqs, protocol.KeyPackageRequest{UserID: "mimi://b.example/u/nobody", BearerToken: disc.BearerToken,
				Version: mls.ProtocolVersionMLS10, CipherSuite: 1})
		}
		body, _ := protocol.KeyPackageRequestBundle{Requests: reqs}.MarshalBinary()
		inner = relayDo(t, a, aliceToken, "b.example", keys, protocol.InnerKeyPackagesPath, body)
		var bundle protocol.KeyPackageResponseBundle
		if inner.Status != 200 || bundle.UnmarshalBinary(inner.Content) != nil || len(bundle.Results) != len(reqs) {
			t.Fatalf("fetch %d: %d %+v", i, inner.Status, bundle)
		}
		if r := bundle.Results[0]; r.Status != protocol.StatusOK {
			t.Fatalf("fetch %d: %v", i, r.Err())
		}
		served[string(bundle.Results[0].Response.KeyPackage)]++
		if i == 0 && bundle.Results[1].Status != protocol.StatusBadToken {
			t.Fatalf("bob's token for nobody: %v, want bad_token", bundle.Results[1].Err())
		}
	}
	if len(served) != 4 {
		t.Fatalf("served %d distinct KeyPackages, want 3 plus the last resort", len(served))
	}

	// What A's relay handled never shows the target, the token or the KeyPackages.
	tap.mu.Lock()
	defer tap.mu.Unlock()
	if len(tap.traffic) != 12 {
		t.Fatalf("wiretap saw %d bodies, want 12", len(tap.traffic))
	}
	secrets := [][]byte{[]byte("bob"), []byte(disc.BearerToken)}
	for _, kp := range kps {
		secrets = append(secrets, kp[len(kp)-64:]) // the signature: unique to each KeyPackage
	}
	for _, b := range tap.traffic {
		for _, s := range secrets {
			if bytes.Contains(b, s) {
				t.Fatalf("relay traffic contains %q", s)
			}
		}
	}
	for _, h := range tap.headers {
		for _, name := range []string{"Authorization", "Cookie", "X-Forwarded-For", "Forwarded"} {
			if h.Get(name) != "" {
				t.Fatalf("relay forwarded %s: %q", name, h.Get(name))
			}
		}
		if strings.Contains(h.Get("User-Agent"), "Go-http-client") {
			t.Fatalf("relay forwarded the client's User-Agent")
		}
	}
}
