package ohttp

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Media types of RFC 9458 and RFC 9457, and the RFC 9540 gateway path.
const (
	MediaTypeKeys     = "application/ohttp-keys"
	MediaTypeRequest  = "message/ohttp-req"
	MediaTypeResponse = "message/ohttp-res"
	MediaTypeBHTTP    = "message/bhttp"
	MediaTypeProblem  = "application/problem+json"

	// WellKnownGatewayPath is where a gateway publishes its keys and takes
	// requests (RFC 9540).
	WellKnownGatewayPath = "/.well-known/ohttp-gateway"
)

// Problem types registered by RFC 9458 Section 9.
const (
	// ProblemTypeKey signals an outdated or unknown key configuration.
	ProblemTypeKey = "https://iana.org/assignments/http-problem-types#ohttp-key"
	// ProblemTypeDate signals a Date field outside the accepted window.
	ProblemTypeDate = "https://iana.org/assignments/http-problem-types#date"
)

// Problem is an RFC 9457 problem detail. An empty Type means "about:blank":
// the status code says it all and Title is its summary.
type Problem struct {
	Type   string `json:"type,omitempty"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Error makes a Problem usable as an error.
func (p *Problem) Error() string {
	s := "ohttp: " + strconv.Itoa(p.Status) + " " + p.Title
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	return s
}

// marshal encodes p as JSON; a Problem always encodes.
func (p *Problem) marshal() []byte {
	b, err := json.Marshal(p)
	if err != nil {
		return []byte(`{"title":"internal error","status":500}`)
	}
	return b
}

// WriteProblem answers with p as application/problem+json, not to be sniffed as
// anything else.
func WriteProblem(w http.ResponseWriter, p *Problem) {
	b := p.marshal()
	h := w.Header()
	h.Set("Content-Type", MediaTypeProblem)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_, _ = w.Write(b)
}
