package provider_test

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/ohttp"
	"github.com/mimids/mimids/protocol"
)

// TestOHTTPMetrics: every request to the Oblivious HTTP gateway and relay is counted
// by outcome and timed, local fetches included, as GET /metrics shows.
func TestOHTTPMetrics(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, func(c *provider.Config) {
		c.Peers = []provider.PeerConfig{{Domain: "b.example", URL: "http://127.0.0.1:1"}} // nothing listens
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, token, err := p.Dir.AddClient(ctx, "alice", "phone", true)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	send := func(method, path, contentType, bearer string, body []byte) int {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, p.Base+path, bytes.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	relay := protocol.RelayPathPrefix
	for _, r := range []struct {
		method, path, contentType, bearer string
		status                            int
	}{
		{"GET", ohttp.WellKnownGatewayPath, "", "", 200},
		{"POST", ohttp.WellKnownGatewayPath, "text/plain", "", 415},
		{"POST", ohttp.WellKnownGatewayPath, ohttp.MediaTypeRequest, "", 400},
		{"POST", relay + "a.example", ohttp.MediaTypeRequest, "mdt_nope", 401},
		{"POST", relay + "c.example", ohttp.MediaTypeRequest, token, 404},
		{"POST", relay + "b.example", ohttp.MediaTypeRequest, token, 502},
	} {
		if got := send(r.method, r.path, r.contentType, r.bearer, []byte("opaque")); got != r.status {
			t.Fatalf("%s %s: %d, want %d", r.method, r.path, got, r.status)
		}
	}
	// A local discovery: the keys (GET), then one relay request served by the gateway.
	remote, err := client.NewRemote(client.RemoteConfig{Base: p.Base, Token: token, Domain: "a.example", HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Discover(ctx, "a.example", nil, "mimi://a.example/u/alice"); err != nil {
		t.Fatal(err)
	}

	m := p.Metrics(t)
	for series, want := range map[string]float64{
		`mimids_ohttp_gateway_requests_total{outcome="ok"}`:             3,
		`mimids_ohttp_gateway_requests_total{outcome="bad_media_type"}`: 1,
		`mimids_ohttp_gateway_requests_total{outcome="malformed"}`:      1,
		`mimids_ohttp_gateway_request_seconds_count{method="GET"}`:      2,
		`mimids_ohttp_gateway_request_seconds_count{method="POST"}`:     3,
		`mimids_ohttp_relay_requests_total{outcome="ok"}`:               1,
		`mimids_ohttp_relay_requests_total{outcome="unauthorized"}`:     1,
		`mimids_ohttp_relay_requests_total{outcome="unknown_peer"}`:     1,
		`mimids_ohttp_relay_requests_total{outcome="upstream_error"}`:   1,
		`mimids_ohttp_relay_request_seconds_count{target="local"}`:      2,
		`mimids_ohttp_relay_request_seconds_count{target="unknown"}`:    1,
		`mimids_ohttp_relay_request_seconds_count{target="peer"}`:       1,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	if m[`mimids_ohttp_relay_request_seconds_sum{target="local"}`] <= 0 {
		t.Error("relay latency of local requests not observed")
	}
}
