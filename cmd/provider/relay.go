package provider

import (
	"net/http"

	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/ohttp"
)

// The Oblivious HTTP relay's hop to a peer's gateway (docs/protocol.md §3.3, §5.13):
// for a peer on the federation allow-list, the relay posts to the peer's federation
// listener (the URL of its entry) with this provider's certificate, and the peer's
// certificate must prove its domain by that entry (its CA bundle or pin), as for a
// link; a mismatch fails the TLS handshake and the client gets 502. The listener
// serves the gateway to allowed peers only and attributes each request to the
// relaying peer (source "peer:DOMAIN") rather than to an address.

// relayRoute is the relay's route to a peer of the allow-list; not ok without
// federation or for another domain (then the configured peers apply).
func (p *Provider) relayRoute(peer string) (string, *http.Client, bool) {
	if p.Federation == nil {
		return "", nil, false
	}
	return p.Federation.PeerHTTP(peer)
}

// registerRelayHop serves the gateway's POST on the federation listener.
func (p *Provider) registerRelayHop() {
	gw := p.Gateway.OHTTPGateway()
	p.Federation.HandleHTTP("POST "+ohttp.WellKnownGatewayPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := ohttp.WithSource(r.Context(), "peer:"+federation.PeerOf(r.Context()))
		gw.ServeHTTP(w, r.WithContext(ctx))
	}))
}
