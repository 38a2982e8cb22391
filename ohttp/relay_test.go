package ohttp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/ohttp/bhttp"
)

// recorder wraps a handler and keeps the headers and bytes it handled.
type recorder struct {
	next http.Handler

	mu      sync.Mutex
	headers []http.Header
	bytes   [][]byte // request and response bodies
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	cw := httptest.NewRecorder()
	rec.next.ServeHTTP(cw, r)
	rec.mu.Lock()
	rec.headers = append(rec.headers, r.Header.Clone())
	rec.bytes = append(rec.bytes, body, cw.Body.Bytes())
	rec.mu.Unlock()
	for k, v := range cw.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(cw.Code)
	_, _ = w.Write(cw.Body.Bytes())
}

type relayFixture struct {
	gw       *gatewayFixture
	gwSeen   *recorder
	relaySrv *httptest.Server
	relayRec *recorder
	seen     *outcomes
}

func newRelayFixture(t *testing.T, mod func(*RelayConfig)) *relayFixture {
	t.Helper()
	gw := newGatewayFixture(t, nil)
	gwRec := &recorder{next: gw.gw}
	gwSrv := httptest.NewServer(gwRec)
	t.Cleanup(gwSrv.Close)
	seen := &outcomes{}
	cfg := RelayConfig{
		Peers:   map[string]string{"b.example": gwSrv.URL + WellKnownGatewayPath},
		Observe: seen.observe,
	}
	if mod != nil {
		mod(&cfg)
	}
	relay, err := NewRelay(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /ohttp-relay/{peer}", relay)
	mux.Handle("/", relay)
	rec := &recorder{next: mux}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return &relayFixture{gw: gw, gwSeen: gwRec, relaySrv: srv, relayRec: rec, seen: seen}
}

// TestRelayForwardsOnlyTheBody sends a request carrying identifying headers
// through the relay and checks what the gateway and the relay saw.
func TestRelayForwardsOnlyTheBody(t *testing.T) {
	f := newRelayFixture(t, nil)
	const secret = "bearer-token-7c1e0d"
	const userID = "mimi://b.example/u/alice"
	req := &bhttp.Request{Method: "POST", Scheme: "https", Authority: "b.example", Path: "/v1/echo",
		Header:  bhttp.Fields{{Name: "authorization", Value: "Bearer " + secret}},
		Content: []byte(userID)}
	encReq, cc, err := f.gw.client.Encapsulate(req)
	if err != nil {
		t.Fatal(err)
	}
	hr, _ := http.NewRequest(http.MethodPost, f.relaySrv.URL+"/ohttp-relay/B.example", bytes.NewReader(encReq))
	hr.Header.Set("Content-Type", MediaTypeRequest)
	identifying := map[string]string{
		"Authorization":   "Bearer client-credential",
		"Cookie":          "session=abc",
		"User-Agent":      "mimids-client/1.0 (alice's phone)",
		"X-Forwarded-For": "198.51.100.7",
		"Forwarded":       "for=198.51.100.7",
		"X-Client-Id":     "alice",
		"Accept-Language": "mi",
	}
	for k, v := range identifying {
		hr.Header.Set(k, v)
	}
	resp, err := f.relaySrv.Client().Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != MediaTypeResponse {
		t.Fatalf("relay answered %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	inner, err := cc.Decapsulate(body)
	if err != nil || inner.Status != 200 || string(inner.Content) != userID {
		t.Fatalf("inner response %+v, %v", inner, err)
	}
	if len(f.gwSeen.headers) != 1 {
		t.Fatalf("gateway saw %d requests", len(f.gwSeen.headers))
	}
	for name, vals := range f.gwSeen.headers[0] {
		if name != "Content-Type" && name != "Content-Length" {
			t.Errorf("gateway received header %s: %v", name, vals)
		}
		for _, v := range vals {
			for _, id := range identifying {
				if strings.Contains(v, id) {
					t.Errorf("gateway received identifying value %q", v)
				}
			}
		}
	}
	if !bytes.Equal(f.gwSeen.bytes[0], encReq) {
		t.Error("gateway did not receive the client's bytes unchanged")
	}
	for _, b := range f.relayRec.bytes {
		for _, s := range []string{secret, userID} {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("relay handled bytes containing %q", s)
			}
		}
	}
	if f.seen.last() != OutcomeOK {
		t.Errorf("relay outcome %q", f.seen.last())
	}
}

func TestRelayRefusals(t *testing.T) {
	f := newRelayFixture(t, func(c *RelayConfig) {
		c.MaxRequestBytes = 512
		c.Authorize = func(r *http.Request) error {
			if r.Header.Get("Authorization") != "Bearer ok" {
				return errors.New("no")
			}
			return nil
		}
	})
	good, _, _ := f.gw.client.Encapsulate(hello())
	tests := []struct {
		name, method, path, auth, contentType string
		body                                  []byte
		status                                int
		outcome                               Outcome
	}{
		{"get", "GET", "/ohttp-relay/b.example", "Bearer ok", MediaTypeRequest, nil, 405, OutcomeBadMethod},
		{"unauthorized", "POST", "/ohttp-relay/b.example", "Bearer bad", MediaTypeRequest, good, 401, OutcomeUnauthorized},
		{"unknown peer", "POST", "/ohttp-relay/c.example", "Bearer ok", MediaTypeRequest, good, 404, OutcomeUnknownPeer},
		{"url as peer", "POST", "/ohttp-relay/https:%2F%2Fevil.example", "Bearer ok", MediaTypeRequest, good, 404, OutcomeUnknownPeer},
		{"no peer", "POST", "/", "Bearer ok", MediaTypeRequest, good, 404, OutcomeUnknownPeer},
		{"content type", "POST", "/ohttp-relay/b.example", "Bearer ok", "text/plain", good, 415, OutcomeBadMediaType},
		{"oversized", "POST", "/ohttp-relay/b.example", "Bearer ok", MediaTypeRequest, make([]byte, 513), 413, OutcomeTooLarge},
		{"empty", "POST", "/ohttp-relay/b.example", "Bearer ok", MediaTypeRequest, nil, 400, OutcomeMalformed},
		{"any router, last segment", "POST", "/other/prefix/b.example", "Bearer ok", MediaTypeRequest, good, 200, OutcomeOK},
		// The gateway's own refusal passes through.
		{"replay refused by gateway", "POST", "/ohttp-relay/b.example", "Bearer ok", MediaTypeRequest, good, 400, OutcomeOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			hr, _ := http.NewRequest(tc.method, f.relaySrv.URL+tc.path, bytes.NewReader(tc.body))
			hr.Header.Set("Content-Type", tc.contentType)
			hr.Header.Set("Authorization", tc.auth)
			resp, err := f.relaySrv.Client().Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || f.seen.last() != tc.outcome {
				t.Fatalf("status %d outcome %q, want %d %q: %s", resp.StatusCode, f.seen.last(), tc.status, tc.outcome, body)
			}
			if tc.status != 200 {
				decodeProblem(t, resp.Header.Get("Content-Type"), body)
			}
		})
	}
}

func TestRelayRateLimit(t *testing.T) {
	f := newRelayFixture(t, func(c *RelayConfig) {
		c.Limiter = &allowN{n: 2}
		c.LimitKey = func(r *http.Request) string { return r.Header.Get("X-User") }
	})
	send := func(user string) int {
		encReq, _, _ := f.gw.client.Encapsulate(hello())
		hr, _ := http.NewRequest("POST", f.relaySrv.URL+"/ohttp-relay/b.example", bytes.NewReader(encReq))
		hr.Header.Set("Content-Type", MediaTypeRequest)
		hr.Header.Set("X-User", user)
		resp, err := f.relaySrv.Client().Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for i, want := range []int{200, 200, 429} {
		if got := send("alice"); got != want {
			t.Fatalf("alice request %d: %d, want %d", i, got, want)
		}
	}
	if got := send("bob"); got != 200 {
		t.Fatalf("bob: %d", got)
	}
}

func TestRelayUpstreamFailures(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer slow.Close()
	defer close(release)
	redirect := httptest.NewServer(http.RedirectHandler("http://evil.example/", http.StatusFound))
	defer redirect.Close()
	huge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", MediaTypeResponse)
		_, _ = w.Write(make([]byte, 2048))
	}))
	defer huge.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	seen := &outcomes{}
	relay, err := NewRelay(RelayConfig{
		Peers: map[string]string{"slow.example": slow.URL, "redirect.example": redirect.URL,
			"huge.example": huge.URL, "down.example": down.URL},
		Timeout: 200 * time.Millisecond, MaxResponseBytes: 1024, Observe: seen.observe,
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		peer    string
		status  int
		outcome Outcome
	}{
		{"slow.example", 504, OutcomeTimeout},
		{"redirect.example", 502, OutcomeUpstreamError},
		{"huge.example", 502, OutcomeUpstreamError},
		{"down.example", 502, OutcomeUpstreamError},
	}
	for _, tc := range tests {
		t.Run(tc.peer, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/relay/"+tc.peer, bytes.NewReader([]byte("opaque")))
			r.Header.Set("Content-Type", MediaTypeRequest)
			w := httptest.NewRecorder()
			relay.ServeHTTP(w, r)
			if w.Code != tc.status || seen.last() != tc.outcome {
				t.Fatalf("status %d outcome %q, want %d %q", w.Code, seen.last(), tc.status, tc.outcome)
			}
		})
	}
}

func TestRelayConfigValidate(t *testing.T) {
	err := RelayConfig{
		Peers:  map[string]string{"B.example": "https://b.example/x", "c.example": "ftp://c.example", "d.example": "https://u:p@d.example"},
		Client: &http.Client{Jar: jar{}},
	}.Validate()
	for _, want := range []string{`invalid peer name "B.example"`, "ftp://c.example", "u:p@d.example", "cookie jar"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	if _, err := NewRelay(RelayConfig{}); err == nil {
		t.Error("NewRelay accepted no peers")
	}
}

type jar struct{ http.CookieJar }

func TestClientDoErrors(t *testing.T) {
	f := newGatewayFixture(t, nil)
	srv := httptest.NewServer(f.gw)
	defer srv.Close()
	// A stale configuration: the gateway answers in clear.
	f.keys.Remove(f.client.Config().KeyID)
	_, err := f.client.Do(context.Background(), srv.Client(), srv.URL, hello())
	var se *StatusError
	if !errors.As(err, &se) || se.StatusCode != 400 || se.ContentType != MediaTypeProblem {
		t.Fatalf("stale key: %v", err)
	}
	if _, err := NewClient([]byte{0, 1}); !errors.Is(err, ErrInvalidKeyConfig) {
		t.Fatalf("bad list: %v", err)
	}
}

// allowN is a Limiter that allows each key n requests.
type allowN struct {
	mu   sync.Mutex
	n    int
	used map[string]int
}

func (a *allowN) Allow(key string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.used == nil {
		a.used = map[string]int{}
	}
	a.used[key]++
	return a.used[key] <= a.n
}
