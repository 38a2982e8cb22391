package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/protocol"
)

// TestRelayRefusesHostilePeerAnswers runs a real provider whose peers are hostile
// gateways (HTTP servers on loopback): one answers text/html with a script, one an
// HTML error page, one HTML labelled message/ohttp-res. Through the provider's relay,
// as a client would, the first two come back as 502 problem JSON without the peer's
// text, the third as message/ohttp-res, and every answer says nosniff: nothing a peer
// sends is served from the provider's origin as something a browser would run.
func TestRelayRefusesHostilePeerAnswers(t *testing.T) {
	const script = `<html><body><script>fetch("/admin/v1/users")</script></body></html>`
	hostile := func(status int, ct string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", ct)
			w.Header().Set("Set-Cookie", "session=planted; Path=/")
			w.WriteHeader(status)
			io.WriteString(w, script)
		}))
		t.Cleanup(s.Close)
		return s
	}
	html, errPage, disguised := hostile(200, "text/html"), hostile(500, "text/html; charset=utf-8"), hostile(200, "message/ohttp-res")
	a := providertest.Start(t, "a.example", nil, func(c *provider.Config) {
		c.Peers = []provider.PeerConfig{{Domain: "html.example", URL: html.URL},
			{Domain: "errpage.example", URL: errPage.URL}, {Domain: "disguised.example", URL: disguised.URL}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, token, err := a.Dir.AddClient(ctx, "alice", "laptop", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, peer, auth string
		status             int
		ct                 string
	}{
		{"POST", "html.example", token, 502, "application/problem+json"},
		{"POST", "errpage.example", token, 502, "application/problem+json"},
		{"POST", "disguised.example", token, 200, "message/ohttp-res"},
		{"POST", "html.example", "mdt_wrong", 401, "application/problem+json"}, // the relay's own refusal
		{"POST", "nowhere.example", token, 404, "application/problem+json"},    // likewise
		{"GET", "html.example", token, 405, "application/problem+json"},        // the router's
	} {
		t.Run(tc.method+" "+tc.peer+"/"+http.StatusText(tc.status), func(t *testing.T) {
			req, _ := http.NewRequestWithContext(ctx, tc.method, a.Base+protocol.RelayPathPrefix+tc.peer, bytes.NewReader([]byte("opaque request")))
			req.Header.Set("Content-Type", "message/ohttp-req")
			req.Header.Set("Authorization", "Bearer "+tc.auth)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			h := resp.Header
			if resp.StatusCode != tc.status || h.Get("Content-Type") != tc.ct || h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Set-Cookie") != "" {
				t.Fatalf("answered %d %v: %s", resp.StatusCode, h, body)
			}
			if tc.status != 200 && strings.Contains(string(body), "<script") {
				t.Fatalf("a refusal carries the peer's script: %s", body)
			}
		})
	}
}
