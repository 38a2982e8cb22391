package provider_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/federation/fedcert"
)

// TestRelayHopUsesTheAllowList: A and B federate with no `peers` configured, so
// A's relay can reach B's gateway only through the allow-list: alice on A
// discovers bob on B and fetches his KeyPackage through A's relay, over B's
// federation listener. With A's entry for B pinning another certificate, or naming
// another CA, the hop's TLS handshake fails and the relay answers 502; with the
// right CA again, it works.
func TestRelayHopUsesTheAllowList(t *testing.T) {
	w := newFedWorldWith(t, func(_ string, c *provider.Config) { c.Peers = nil }, "a.example", "b.example")
	a := w.ps["a.example"]
	alice, bob := newBox(), newBox()
	dialUser(t, a, "alice", alice)
	dialUser(t, w.ps["b.example"], "bob", bob)
	uploadKPs(t, bob, "mimi://b.example/u/bob", 3)
	remote, err := alice.c.Remote(client.RemoteConfig{PeerURL: func(d string) string { return "http://" + w.gw[d] }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if ref := fetchRef(t, remote, "b.example", "mimi://b.example/u/bob"); len(ref) == 0 {
		t.Fatal("no KeyPackageRef through the relay")
	}
	other, err := fedcert.NewCA("other", fedcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := fedcert.SelfSigned("b.example", fedcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pin, err := federation.ParsePin(stranger.Pin())
	if err != nil {
		t.Fatal(err)
	}
	setEntry := func(p federation.Peer) {
		t.Helper()
		p.Domain, p.URL = "b.example", "wss://"+w.fed["b.example"]
		if _, err := federation.AddPeer(ctx, a.DB, "a.example", p); err != nil {
			t.Fatal(err)
		}
		if err := a.Federation.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name  string
		entry federation.Peer
	}{
		{"pinned to another certificate", federation.Peer{Pin: pin}},
		{"another CA", federation.Peer{CA: other.CertPEM()}},
	} {
		setEntry(c.entry)
		_, err := remote.Discover(ctx, "b.example", nil, "mimi://b.example/u/bob")
		var re *client.RelayError
		if !errors.As(err, &re) || re.StatusCode != http.StatusBadGateway {
			t.Fatalf("%s: discover through A's relay: %v, want the relay's 502", c.name, err)
		}
	}
	setEntry(federation.Peer{CA: w.ca.CertPEM()})
	if ref := fetchRef(t, remote, "b.example", "mimi://b.example/u/bob"); len(ref) == 0 {
		t.Fatal("no KeyPackageRef with the right CA again")
	}
}
