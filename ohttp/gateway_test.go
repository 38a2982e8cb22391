package ohttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mimids/mimids/ohttp/bhttp"
)

// outcomes records what a gateway or relay observed.
type outcomes struct {
	mu  sync.Mutex
	got []Outcome
}

func (o *outcomes) observe(out Outcome, _ error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, out)
}

func (o *outcomes) last() Outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.got) == 0 {
		return ""
	}
	return o.got[len(o.got)-1]
}

func testRoutes() map[Route]HandlerFunc {
	return map[Route]HandlerFunc{
		{Method: "POST", Path: "/v1/echo"}: func(_ context.Context, r *bhttp.Request) *bhttp.Response {
			return bhttp.NewResponse(200, r.Header.Get("content-type"), r.Content)
		},
		{Method: "GET", Path: "/v1/hello"}: func(context.Context, *bhttp.Request) *bhttp.Response {
			return bhttp.NewResponse(200, "text/plain", []byte("hello"))
		},
		{Method: "GET", Path: "/v1/nil"}: func(context.Context, *bhttp.Request) *bhttp.Response { return nil },
		{Method: "GET", Path: "/v1/invalid"}: func(context.Context, *bhttp.Request) *bhttp.Response {
			return &bhttp.Response{Status: 42}
		},
	}
}

type gatewayFixture struct {
	keys   *KeySet
	gw     *Gateway
	seen   *outcomes
	client *Client
}

func newGatewayFixture(t testing.TB, mod func(*GatewayConfig)) *gatewayFixture {
	t.Helper()
	ks := NewKeySet(time.Hour)
	if _, err := ks.Rotate(KEMX25519HKDFSHA256, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	seen := &outcomes{}
	cfg := GatewayConfig{Keys: ks, Routes: testRoutes(), Observe: seen.observe}
	if mod != nil {
		mod(&cfg)
	}
	gw, err := NewGateway(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client, err := NewClient(ks.MarshalConfigs())
	if err != nil {
		t.Fatal(err)
	}
	return &gatewayFixture{keys: ks, gw: gw, seen: seen, client: client}
}

func hello() *bhttp.Request {
	return &bhttp.Request{Method: "GET", Scheme: "https", Authority: "b.example", Path: "/v1/hello"}
}

// post sends body to h as an outer POST and returns the recorded answer.
func post(h http.Handler, contentType string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, WellKnownGatewayPath, bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func decodeProblem(t *testing.T, contentType string, body []byte) Problem {
	t.Helper()
	if contentType != MediaTypeProblem {
		t.Fatalf("content type %q, want problem JSON", contentType)
	}
	var p Problem
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("problem JSON: %v", err)
	}
	return p
}

func TestGatewayKeys(t *testing.T) {
	f := newGatewayFixture(t, nil)
	srv := httptest.NewServer(f.gw)
	defer srv.Close()
	resp, err := http.Get(srv.URL + WellKnownGatewayPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != MediaTypeKeys ||
		resp.Header.Get("Cache-Control") != "max-age=1800" || !bytes.Equal(body, f.keys.MarshalConfigs()) {
		t.Fatalf("GET keys: %d %v %x", resp.StatusCode, resp.Header, body)
	}
	empty, _ := NewGateway(GatewayConfig{Keys: NewKeySet(time.Hour)})
	w := httptest.NewRecorder()
	empty.ServeHTTP(w, httptest.NewRequest("GET", WellKnownGatewayPath, nil))
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("GET without keys: %d", w.Code)
	}
	w = httptest.NewRecorder()
	f.gw.ServeHTTP(w, httptest.NewRequest("PUT", WellKnownGatewayPath, nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") == "" {
		t.Fatalf("PUT: %d %v", w.Code, w.Header())
	}
}

func TestGatewayRoundTrip(t *testing.T) {
	f := newGatewayFixture(t, nil)
	srv := httptest.NewServer(f.gw)
	defer srv.Close()
	req := &bhttp.Request{Method: "POST", Scheme: "https", Path: "/v1/echo?x=1",
		Header: bhttp.Fields{{Name: "content-type", Value: "application/octet-stream"}}, Content: []byte("ping")}
	resp, err := f.client.Do(context.Background(), srv.Client(), srv.URL+WellKnownGatewayPath, req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || string(resp.Content) != "ping" || resp.Header.Get("content-type") != "application/octet-stream" {
		t.Fatalf("response %+v", resp)
	}
	if f.seen.last() != OutcomeOK {
		t.Fatalf("outcome %q", f.seen.last())
	}
}

// TestGatewayInnerErrors covers the errors answered inside the
// encapsulation.
func TestGatewayInnerErrors(t *testing.T) {
	f := newGatewayFixture(t, func(c *GatewayConfig) { c.Authorities = []string{"B.example"} })
	old := time.Now().Add(-2 * time.Minute).UTC().Format(http.TimeFormat)
	tests := []struct {
		name    string
		req     *bhttp.Request
		raw     []byte // inner bytes instead of req
		status  int
		outcome Outcome
		typ     string
	}{
		{"found", hello(), nil, 200, OutcomeOK, ""},
		{"unknown path", &bhttp.Request{Method: "GET", Scheme: "https", Path: "/admin"}, nil, 404, OutcomeNotFound, ""},
		{"wrong method", &bhttp.Request{Method: "DELETE", Scheme: "https", Path: "/v1/hello"}, nil, 404, OutcomeNotFound, ""},
		{"other authority", &bhttp.Request{Method: "GET", Scheme: "https", Authority: "evil.example", Path: "/v1/hello"}, nil, 404, OutcomeNotFound, ""},
		{"no authority", &bhttp.Request{Method: "GET", Scheme: "https", Path: "/v1/hello"}, nil, 200, OutcomeOK, ""},
		{"nil response", &bhttp.Request{Method: "GET", Scheme: "https", Path: "/v1/nil"}, nil, 500, OutcomeHandlerError, ""},
		{"invalid response", &bhttp.Request{Method: "GET", Scheme: "https", Path: "/v1/invalid"}, nil, 500, OutcomeHandlerError, ""},
		{"expect 100-continue", &bhttp.Request{Method: "GET", Scheme: "https", Path: "/v1/hello",
			Header: bhttp.Fields{{Name: "expect", Value: "100-continue"}}}, nil, 417, OutcomeBadRequest, ""},
		{"stale date", &bhttp.Request{Method: "GET", Scheme: "https", Path: "/v1/hello",
			Header: bhttp.Fields{{Name: "date", Value: old}}}, nil, 400, OutcomeBadRequest, ProblemTypeDate},
		{"bad date", &bhttp.Request{Method: "GET", Scheme: "https", Path: "/v1/hello",
			Header: bhttp.Fields{{Name: "date", Value: "yesterday"}}}, nil, 400, OutcomeBadRequest, ProblemTypeDate},
		{"no date", nil, []byte{0, 3, 'G', 'E', 'T', 0, 0, 1, '/'}, 400, OutcomeBadRequest, ProblemTypeDate},
		{"not binary HTTP", nil, []byte{0x09, 0x09}, 400, OutcomeBadRequest, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var encReq []byte
			var cc *ClientContext
			var err error
			if tc.raw != nil {
				encReq, cc, err = f.client.EncapsulateRequest(tc.raw)
			} else {
				encReq, cc, err = f.client.Encapsulate(tc.req)
			}
			if err != nil {
				t.Fatal(err)
			}
			w := post(f.gw, MediaTypeRequest, encReq)
			if w.Code != 200 || w.Header().Get("Content-Type") != MediaTypeResponse {
				t.Fatalf("outer answer %d %q", w.Code, w.Header().Get("Content-Type"))
			}
			resp, err := cc.Decapsulate(w.Body.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tc.status || f.seen.last() != tc.outcome {
				t.Fatalf("inner status %d outcome %q, want %d %q", resp.Status, f.seen.last(), tc.status, tc.outcome)
			}
			if tc.status != 200 {
				p := decodeProblem(t, resp.Header.Get("content-type"), resp.Content)
				if p.Status != tc.status || p.Type != tc.typ {
					t.Fatalf("problem %+v", p)
				}
			}
			if tc.typ == ProblemTypeDate && resp.Header.Get("date") == "" {
				t.Fatal("date problem without the gateway's date")
			}
		})
	}
}

// TestGatewayOuterErrors covers the errors answered in clear.
func TestGatewayOuterErrors(t *testing.T) {
	f := newGatewayFixture(t, func(c *GatewayConfig) { c.MaxRequestBytes = 1024 })
	good, _, err := f.client.Encapsulate(hello())
	if err != nil {
		t.Fatal(err)
	}
	unknownKey := bytes.Clone(good)
	unknownKey[0]++
	tamperedEnc := bytes.Clone(good)
	tamperedEnc[HeaderLen+3] ^= 1
	tests := []struct {
		name        string
		contentType string
		body        []byte
		status      int
		outcome     Outcome
		typ         string
	}{
		{"no content type", "", good, 415, OutcomeBadMediaType, ""},
		{"wrong content type", "application/octet-stream", good, 415, OutcomeBadMediaType, ""},
		{"oversized", MediaTypeRequest, make([]byte, 1025), 413, OutcomeTooLarge, ""},
		{"empty", MediaTypeRequest, nil, 400, OutcomeMalformed, ""},
		{"garbage", MediaTypeRequest, bytes.Repeat([]byte("garbage!"), 20), 400, OutcomeUnknownKey, ProblemTypeKey},
		{"unknown key id", MediaTypeRequest, unknownKey, 400, OutcomeUnknownKey, ProblemTypeKey},
		{"truncated header", MediaTypeRequest, good[:5], 400, OutcomeMalformed, ""},
		{"truncated ciphertext", MediaTypeRequest, good[:len(good)-3], 400, OutcomeDecrypt, ""},
		{"tampered enc", MediaTypeRequest, tamperedEnc, 400, OutcomeDecrypt, ""},
		{"valid", MediaTypeRequest + "; charset=x", good, 200, OutcomeOK, ""},
		{"replayed", MediaTypeRequest, good, 400, OutcomeReplay, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := post(f.gw, tc.contentType, tc.body)
			if w.Code != tc.status || f.seen.last() != tc.outcome {
				t.Fatalf("status %d outcome %q, want %d %q", w.Code, f.seen.last(), tc.status, tc.outcome)
			}
			if tc.status == 200 {
				return
			}
			p := decodeProblem(t, w.Header().Get("Content-Type"), w.Body.Bytes())
			if p.Status != tc.status || p.Type != tc.typ || p.Title == "" {
				t.Fatalf("problem %+v", p)
			}
		})
	}
}

func TestGatewayOversizedStream(t *testing.T) {
	f := newGatewayFixture(t, func(c *GatewayConfig) { c.MaxRequestBytes = 100 })
	r := httptest.NewRequest(http.MethodPost, WellKnownGatewayPath, io.LimitReader(zeros{}, 1<<20))
	r.ContentLength = -1
	r.Header.Set("Content-Type", MediaTypeRequest)
	w := httptest.NewRecorder()
	f.gw.ServeHTTP(w, r)
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d", w.Code)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestGatewayReplayCacheFull(t *testing.T) {
	f := newGatewayFixture(t, func(c *GatewayConfig) { c.ReplayCapacity = 1 })
	for i, want := range []int{200, 503} {
		encReq, _, _ := f.client.Encapsulate(hello())
		w := post(f.gw, MediaTypeRequest, encReq)
		if w.Code != want {
			t.Fatalf("request %d: status %d, want %d", i, w.Code, want)
		}
		if want == 503 && (w.Header().Get("Retry-After") == "" || f.seen.last() != OutcomeOverloaded) {
			t.Fatalf("overloaded answer: %v %q", w.Header(), f.seen.last())
		}
	}
}

// TestGatewayReplayAfterWindow: once the replay window has forgotten a
// request's enc, its Date refuses it.
func TestGatewayReplayAfterWindow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newGatewayFixture(t, nil)
		encReq, _, err := f.client.Encapsulate(hello())
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if _, err := f.gw.Handle(ctx, encReq); err != nil {
			t.Fatal(err)
		}
		time.Sleep(DefaultReplayWindow - time.Second)
		if _, err := f.gw.Handle(ctx, encReq); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay within the window: %v", err)
		}
		time.Sleep(time.Second)
		if _, err := f.gw.Handle(ctx, encReq); err != nil {
			t.Fatalf("outer: %v", err)
		}
		if f.seen.last() != OutcomeBadRequest {
			t.Fatalf("replay after the window: outcome %q, want the Date refusal", f.seen.last())
		}
	})
}

func TestGatewayConfigValidate(t *testing.T) {
	err := GatewayConfig{
		ReplayWindow: time.Minute, MaxClockSkew: time.Minute,
		Routes: map[Route]HandlerFunc{{Method: "GET", Path: "nope"}: nil},
	}.Validate()
	for _, want := range []string{"no key set", "ReplayWindow", "invalid route"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	err = GatewayConfig{Keys: NewKeySet(time.Minute), KeysMaxAge: time.Hour}.Validate()
	if err == nil || !strings.Contains(err.Error(), "KeysMaxAge") {
		t.Errorf("Validate() = %v", err)
	}
	if _, err := NewGateway(GatewayConfig{}); err == nil {
		t.Error("NewGateway accepted an empty config")
	}
}

func TestMemoryReplayCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewMemoryReplayCache(time.Minute, 100, 0)
		enc := func(i int) []byte { return []byte{byte(i), byte(i >> 8), 1, 2, 3} }
		for i := range 100 {
			if err := c.Add("a", enc(i)); err != nil {
				t.Fatalf("add %d: %v", i, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err := c.Add("a", enc(100)); !errors.Is(err, ErrReplayCacheFull) {
			t.Fatalf("full: %v", err)
		}
		if err := c.Add("a", enc(5)); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay: %v", err)
		}
		// 50 s later the first entries (added at 0..10 s) have expired.
		time.Sleep(50 * time.Second)
		if err := c.Add("a", enc(0)); err != nil {
			t.Fatalf("after the window: %v", err)
		}
		if err := c.Add("a", enc(99)); !errors.Is(err, ErrReplay) {
			t.Fatalf("recent replay: %v", err)
		}
		time.Sleep(time.Minute)
		if err := c.Add("a", enc(99)); err != nil || c.Len() != 1 || c.Sources() != 1 {
			t.Fatalf("after everything expired: %v, len %d, sources %d", err, c.Len(), c.Sources())
		}
	})
}

// TestReplayCachePerSource: a source that fills its share is refused while the others
// are served; a replay is refused whichever source sends it; a source's share frees
// up as its entries expire.
func TestReplayCachePerSource(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := NewMemoryReplayCache(time.Minute, 100, 10)
		enc := func(src byte, i int) []byte { return []byte{src, byte(i), byte(i >> 8)} }
		for i := range 10 {
			if err := c.Add("flood", enc('f', i)); err != nil {
				t.Fatalf("add %d: %v", i, err)
			}
		}
		for i := range 1000 {
			if err := c.Add("flood", enc('f', 10+i)); !errors.Is(err, ErrReplaySourceFull) || !errors.Is(err, ErrReplayCacheFull) {
				t.Fatalf("flood %d: %v, want ErrReplaySourceFull", i, err)
			}
		}
		for i := range 10 {
			if err := c.Add("honest", enc('h', i)); err != nil {
				t.Fatalf("another source, request %d: %v", i, err)
			}
		}
		if err := c.Add("honest", enc('f', 3)); !errors.Is(err, ErrReplay) {
			t.Fatalf("another source replaying the flood's request: %v", err)
		}
		if c.Len() != 20 || c.Sources() != 2 {
			t.Fatalf("len %d, sources %d; want 20, 2 (refused requests take no room)", c.Len(), c.Sources())
		}
		time.Sleep(time.Minute)
		if err := c.Add("flood", enc('f', 2000)); err != nil || c.Len() != 1 {
			t.Fatalf("after the window: %v, len %d", err, c.Len())
		}
	})
}

// TestReplayCacheBounded: many sources fill the cache, which stays at its capacity.
func TestReplayCacheBounded(t *testing.T) {
	c := NewMemoryReplayCache(time.Minute, 64, 4)
	added := 0
	for s := range 100 {
		for i := range 8 {
			if c.Add(fmt.Sprintf("s%d", s), []byte{byte(s), byte(i)}) == nil {
				added++
			}
		}
	}
	if added != 64 || c.Len() != 64 || c.Sources() != 16 {
		t.Fatalf("added %d, len %d, sources %d; want 64, 64, 16", added, c.Len(), c.Sources())
	}
}

func TestRequestSource(t *testing.T) {
	for _, tc := range []struct{ remote, want string }{
		{"192.0.2.7:4711", "addr:192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:443", "addr:2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.7]:1", "addr:192.0.2.7"},
		{"pipe", "addr:pipe"},
	} {
		r := httptest.NewRequest("POST", "/", nil)
		r.RemoteAddr = tc.remote
		if got := RequestSource(r); got != tc.want {
			t.Errorf("RequestSource(%q) = %q, want %q", tc.remote, got, tc.want)
		}
	}
	r := httptest.NewRequest("POST", "/", nil).WithContext(WithSource(context.Background(), "client:1"))
	if got := RequestSource(r); got != "client:1" {
		t.Errorf("with a named source: %q", got)
	}
}
