package ohttp

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestRelayLocal: a domain of RelayConfig.Local is served by its handler in
// process, with no peer configured, and the handler sees what a gateway
// reached over HTTP would: the client's bytes and nothing that names it.
func TestRelayLocal(t *testing.T) {
	gw := newGatewayFixture(t, nil)
	gwSeen := &recorder{next: gw.gw}
	seen := &outcomes{}
	relay, err := NewRelay(RelayConfig{Local: map[string]http.Handler{"a.example": gwSeen}, Observe: seen.observe})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(relay)
	defer srv.Close()
	send := func(peer string, body []byte) (*http.Response, []byte) {
		t.Helper()
		hr, _ := http.NewRequest(http.MethodPost, srv.URL+"/ohttp-relay/"+peer, bytes.NewReader(body))
		hr.Header.Set("Content-Type", MediaTypeRequest)
		hr.Header.Set("Authorization", "Bearer client-credential")
		hr.Header.Set("Cookie", "session=abc")
		hr.Header.Set("X-Forwarded-For", "198.51.100.7")
		resp, err := srv.Client().Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	enc, cc, err := gw.client.Encapsulate(hello())
	if err != nil {
		t.Fatal(err)
	}
	resp, body := send("A.example", enc)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != MediaTypeResponse || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("relay answered %d %v: %s", resp.StatusCode, resp.Header, body)
	}
	if inner, err := cc.Decapsulate(body); err != nil || inner.Status != 200 {
		t.Fatalf("inner response %+v, %v", inner, err)
	}
	if seen.last() != OutcomeOK || gw.seen.last() != OutcomeOK {
		t.Errorf("outcomes: relay %q, gateway %q", seen.last(), gw.seen.last())
	}
	if len(gwSeen.headers) != 1 || !bytes.Equal(gwSeen.bytes[0], enc) {
		t.Fatalf("gateway saw %d requests, bytes unchanged: %v", len(gwSeen.headers), len(gwSeen.bytes) > 0 && bytes.Equal(gwSeen.bytes[0], enc))
	}
	for name, vals := range gwSeen.headers[0] {
		if name != "Content-Type" {
			t.Errorf("gateway received header %s: %v", name, vals)
		}
	}

	// The gateway's refusal in clear passes through, as from a peer.
	resp, body = send("a.example", enc)
	if resp.StatusCode != 400 || gw.seen.last() != OutcomeReplay || seen.last() != OutcomeOK {
		t.Fatalf("replay: %d, gateway %q, relay %q: %s", resp.StatusCode, gw.seen.last(), seen.last(), body)
	}
	decodeProblem(t, resp.Header.Get("Content-Type"), body)
	// Anything else is still refused.
	if resp, _ := send("b.example", enc); resp.StatusCode != 404 || seen.last() != OutcomeUnknownPeer {
		t.Fatalf("unknown peer: %d %q", resp.StatusCode, seen.last())
	}
}

func TestRelayLocalFailures(t *testing.T) {
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	redirect := http.RedirectHandler("http://evil.example/", http.StatusFound)
	huge := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", MediaTypeResponse)
		for range 4 {
			_, _ = w.Write(make([]byte, 512))
		}
	})
	seen := &outcomes{}
	relay, err := NewRelay(RelayConfig{
		Local:   map[string]http.Handler{"slow.example": slow, "redirect.example": redirect, "huge.example": huge},
		Timeout: 100 * time.Millisecond, MaxResponseBytes: 1024, Observe: seen.observe,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		peer    string
		status  int
		outcome Outcome
	}{
		{"slow.example", 504, OutcomeTimeout},
		{"redirect.example", 502, OutcomeUpstreamError},
		{"huge.example", 502, OutcomeUpstreamError},
	} {
		t.Run(tc.peer, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/relay/"+tc.peer, bytes.NewReader([]byte("opaque")))
			r.Header.Set("Content-Type", MediaTypeRequest)
			w := httptest.NewRecorder()
			relay.ServeHTTP(w, r)
			if w.Code != tc.status || seen.last() != tc.outcome {
				t.Fatalf("status %d outcome %q, want %d %q", w.Code, seen.last(), tc.status, tc.outcome)
			}
			decodeProblem(t, w.Header().Get("Content-Type"), w.Body.Bytes())
		})
	}
}

func TestRelayLocalValidate(t *testing.T) {
	err := RelayConfig{
		Peers: map[string]string{"b.example": "https://b.example/x"},
		Local: map[string]http.Handler{"b.example": http.NotFoundHandler(), "A.example": http.NotFoundHandler(), "c.example": nil},
	}.Validate()
	for _, want := range []string{`"b.example" is both`, `invalid local name "A.example"`, `no handler for local "c.example"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	if err := (RelayConfig{Local: map[string]http.Handler{"a.example": http.NotFoundHandler()}}).Validate(); err != nil {
		t.Errorf("local only: %v", err)
	}
}
