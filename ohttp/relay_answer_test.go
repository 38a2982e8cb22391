package ohttp

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestRelayAnswerTypes: a gateway (a peer over HTTP, or a local handler) chooses its
// status, Content-Type and body; the relay passes on only a 200 message/ohttp-res or
// a 4xx/5xx problem JSON, under its own Content-Type, and answers anything else 502.
// Every answer, its own problems included, says nosniff.
func TestRelayAnswerTypes(t *testing.T) {
	const script = `<html><script>alert(document.cookie)</script></html>`
	for _, tc := range []struct {
		name       string
		status     int
		ct, body   string
		retryAfter string
		want       int
		wantCT     string
		wantRA     string
	}{
		{"ohttp answer", 200, MediaTypeResponse, "opaque", "", 200, MediaTypeResponse, ""},
		{"ohttp answer with parameters", 200, "Message/OHTTP-res; x=\"<b>\"", "opaque", "", 200, MediaTypeResponse, ""},
		{"problem", 400, MediaTypeProblem, `{"title":"replay","status":400}`, "", 400, MediaTypeProblem, ""},
		{"overloaded problem", 503, MediaTypeProblem, `{"title":"busy","status":503}`, "2", 503, MediaTypeProblem, "2"},
		{"retry-after text dropped", 503, MediaTypeProblem, `{"title":"busy","status":503}`, "<script>", 503, MediaTypeProblem, ""},
		{"html", 200, "text/html", script, "", 502, MediaTypeProblem, ""},
		{"html error page", 500, "text/html; charset=utf-8", script, "", 502, MediaTypeProblem, ""},
		{"no content type", 200, "", script, "", 502, MediaTypeProblem, ""},
		{"javascript", 200, "application/javascript", "alert(1)", "", 502, MediaTypeProblem, ""},
		{"svg", 200, "image/svg+xml", "<svg onload=alert(1)>", "", 502, MediaTypeProblem, ""},
		{"problem that is not JSON", 400, MediaTypeProblem, script, "", 502, MediaTypeProblem, ""},
		{"problem with 200", 200, MediaTypeProblem, `{"title":"x","status":200}`, "", 502, MediaTypeProblem, ""},
		{"ohttp answer with 201", 201, MediaTypeResponse, "opaque", "", 502, MediaTypeProblem, ""},
		{"ohttp answer with 404", 404, MediaTypeResponse, "opaque", "", 502, MediaTypeProblem, ""},
	} {
		gw := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header()["Content-Type"] = []string{tc.ct} // an empty one stays empty
			if tc.retryAfter != "" {
				w.Header().Set("Retry-After", tc.retryAfter)
			}
			w.Header().Set("Set-Cookie", "session=stolen")
			w.WriteHeader(tc.status)
			_, _ = w.Write([]byte(tc.body))
		})
		peer := httptest.NewServer(gw)
		defer peer.Close()
		seen := &outcomes{}
		relay, err := NewRelay(RelayConfig{Peers: map[string]string{"b.example": peer.URL},
			Local: map[string]http.Handler{"a.example": gw}, Observe: seen.observe})
		if err != nil {
			t.Fatal(err)
		}
		for _, target := range []string{"b.example", "a.example"} {
			t.Run(tc.name+"/"+target, func(t *testing.T) {
				r := httptest.NewRequest("POST", "/relay/"+target, bytes.NewReader([]byte("opaque")))
				r.Header.Set("Content-Type", MediaTypeRequest)
				w := httptest.NewRecorder()
				relay.ServeHTTP(w, r)
				h := w.Header()
				if w.Code != tc.want || h.Get("Content-Type") != tc.wantCT || h.Get("X-Content-Type-Options") != "nosniff" ||
					h.Get("Retry-After") != tc.wantRA || h.Get("Set-Cookie") != "" {
					t.Fatalf("answered %d %v", w.Code, h)
				}
				if tc.want == 502 {
					if decodeProblem(t, h.Get("Content-Type"), w.Body.Bytes()); bytes.Contains(w.Body.Bytes(), []byte("<")) {
						t.Fatalf("502 body carries the peer's text: %s", w.Body.Bytes())
					}
					if seen.last() != OutcomeUpstreamError {
						t.Fatalf("outcome %q", seen.last())
					}
				} else if w.Body.String() != tc.body {
					t.Fatalf("body %q, want the gateway's", w.Body.String())
				}
			})
		}
	}
	// The relay's own refusals say nosniff too.
	relay, _ := NewRelay(RelayConfig{Peers: map[string]string{"b.example": "http://127.0.0.1:1"}})
	for _, r := range []*http.Request{httptest.NewRequest("GET", "/relay/b.example", nil), httptest.NewRequest("POST", "/relay/c.example", nil)} {
		w := httptest.NewRecorder()
		relay.ServeHTTP(w, r)
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s %s: %d without nosniff", r.Method, r.URL, w.Code)
		}
		decodeProblem(t, w.Header().Get("Content-Type"), w.Body.Bytes())
	}
}
