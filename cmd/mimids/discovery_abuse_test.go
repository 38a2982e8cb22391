package main

// Issue 15, items 5 (unauthenticated discovery, the OHTTP replay cache), 6 (KeyPackage
// drain) and 7 (user enumeration), attacked from outside the server: raw encapsulated
// requests over loopback HTTP from two source addresses (127.0.0.1 and 127.0.0.2), the
// relay with a device token, and the admin CLI on the same store.

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/ohttp"
	"github.com/mimids/mimids/ohttp/bhttp"
	"github.com/mimids/mimids/protocol"
)

// gatewayPeer posts encapsulated requests straight to a provider's gateway, as a peer's
// relay does, from one loopback address.
type gatewayPeer struct {
	t    *testing.T
	hc   *http.Client
	oc   *ohttp.Client
	base string
}

func newGatewayPeer(t *testing.T, p *providertest.Provider, from string) *gatewayPeer {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	hc := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 10 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	resp, err := hc.Get(p.Base + ohttp.WellKnownGatewayPath)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	oc, err := ohttp.NewClient(keys)
	if err != nil {
		t.Fatal(err)
	}
	return &gatewayPeer{t: t, hc: hc, oc: oc, base: p.Base}
}

// encapsulate returns an encapsulated inner POST of path and how to open its answer.
func (g *gatewayPeer) encapsulate(path string, body []byte) ([]byte, *ohttp.ClientContext) {
	req := &bhttp.Request{Method: "POST", Scheme: "https", Authority: "a.example", Path: path, Content: body,
		Header: bhttp.Fields{{Name: "date", Value: time.Now().UTC().Format(http.TimeFormat)}}}
	enc, cc, err := g.oc.Encapsulate(req)
	if err != nil {
		g.t.Fatal(err)
	}
	return enc, cc
}

// post sends an encapsulated request; it returns the outer status and, for 200, the
// inner response.
func (g *gatewayPeer) post(enc []byte, cc *ohttp.ClientContext) (int, *bhttp.Response) {
	resp, err := g.hc.Post(g.base+ohttp.WellKnownGatewayPath, ohttp.MediaTypeRequest, bytes.NewReader(enc))
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil
	}
	inner, err := cc.Decapsulate(out)
	if err != nil {
		g.t.Fatal(err)
	}
	return resp.StatusCode, inner
}

// discover asks for user; it returns the inner status and the token.
func (g *gatewayPeer) discover(user string) (int, string) {
	g.t.Helper()
	w := protocol.NewWriter(nil)
	w.String(user)
	st, inner := g.post(g.encapsulate(protocol.InnerDiscoverPath, w.Bytes()))
	if st != http.StatusOK {
		g.t.Fatalf("discover: outer %d", st)
	}
	var d protocol.DiscoveryResponse
	if inner.Status == http.StatusOK {
		if err := d.UnmarshalBinary(inner.Content); err != nil {
			g.t.Fatal(err)
		}
	}
	return inner.Status, d.BearerToken
}

// fetch sends a bundle; it returns the inner status and the results (for 200).
func (g *gatewayPeer) fetch(reqs ...protocol.KeyPackageRequest) (int, []protocol.KeyPackageResult) {
	g.t.Helper()
	body, err := protocol.KeyPackageRequestBundle{Requests: reqs}.MarshalBinary()
	if err != nil {
		g.t.Fatal(err)
	}
	st, inner := g.post(g.encapsulate(protocol.InnerKeyPackagesPath, body))
	if st != http.StatusOK {
		g.t.Fatalf("fetch: outer %d", st)
	}
	var b protocol.KeyPackageResponseBundle
	if inner.Status == http.StatusOK {
		if err := b.UnmarshalBinary(inner.Content); err != nil {
			g.t.Fatal(err)
		}
	}
	return inner.Status, b.Results
}

func kpReq(user, token string) protocol.KeyPackageRequest {
	return protocol.KeyPackageRequest{UserID: "mimi://a.example/u/" + user, BearerToken: token, Version: mls.ProtocolVersionMLS10, CipherSuite: 1}
}

// fetchOne fetches one KeyPackage of user and returns its status.
func (g *gatewayPeer) fetchOne(user, token string) protocol.FetchStatus {
	g.t.Helper()
	st, res := g.fetch(kpReq(user, token))
	if st != http.StatusOK {
		g.t.Fatalf("fetch of %s: inner %d", user, st)
	}
	return res[0].Status
}

// storeRows counts the rows of every table of the store.
func storeRows(t *testing.T, p *providertest.Provider) int64 {
	t.Helper()
	n, err := p.DB.TotalRows(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// mailboxWatcher collects the KeyPackage notices a client receives.
type mailboxWatcher struct {
	mu        sync.Mutex
	low       int
	exhausted []protocol.ExhaustedReason
}

func (m *mailboxWatcher) handle(_ context.Context, d *client.Delivery) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := d.KeyPackagesLow(); err == nil {
		m.low++
	}
	if n, err := d.KeyPackagesExhausted(); err == nil {
		m.exhausted = append(m.exhausted, n.Reason)
	}
	return nil
}

func (m *mailboxWatcher) reasons() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fmt.Sprint(m.exhausted)
}

// stockedUser adds user with one client that uploads n one-time KeyPackages (and a last
// resort if lastResort), watching its mailbox.
func stockedUser(t *testing.T, p *providertest.Provider, user string, n int, lastResort bool) (*client.Client, *mailboxWatcher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, token, err := p.Dir.AddClient(ctx, user, "phone", true)
	if err != nil {
		t.Fatal(err)
	}
	w := &mailboxWatcher{}
	c, err := client.Dial(ctx, client.Config{URL: p.Socket, Token: token, Handler: w.handle})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	var kps [][]byte
	for range n {
		kps = append(kps, testKeyPackage(t, "mimi://a.example/u/"+user, false))
	}
	if lastResort {
		kps = append(kps, testKeyPackage(t, "mimi://a.example/u/"+user, true))
	}
	if len(kps) > 0 {
		if _, err := c.UploadKeyPackages(ctx, kps); err != nil {
			t.Fatal(err)
		}
	}
	return c, w
}

// poll waits (bounded) until cond holds.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestDiscoveryFloodStoresNothing: a flood of unauthenticated discoveries from one
// address adds no row to the store, and is rate-limited for that address only.
func TestDiscoveryFloodStoresNothing(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, nil)
	stockedUser(t, p, "bob", 3, true)
	flood, other := newGatewayPeer(t, p, "127.0.0.2"), newGatewayPeer(t, p, "127.0.0.1")
	_, devToken, err := p.Dir.AddClient(context.Background(), "alice", "laptop", true)
	if err != nil {
		t.Fatal(err)
	}
	before := storeRows(t, p)
	tokens := map[string]bool{}
	limited := 0
	for range 300 {
		switch st, tok := flood.discover("mimi://a.example/u/bob"); st {
		case http.StatusOK:
			tokens[tok] = true
		case http.StatusTooManyRequests:
			limited++
		default:
			t.Fatalf("discover: inner %d", st)
		}
	}
	// discovery.burst_per_source is 100, and 10 more come back each second.
	if len(tokens) < 100 || len(tokens) > 200 || limited == 0 {
		t.Fatalf("flood: %d distinct tokens, %d rate-limited; want 100 to 200 and some refused", len(tokens), limited)
	}
	if st, tok := other.discover("bob"); st != http.StatusOK || tok == "" {
		t.Fatalf("another source during the flood: %d", st)
	}
	// Through the relay too: each client of ours is its own source.
	remote, err := client.NewRemote(client.RemoteConfig{Base: p.Base, Token: devToken, Domain: "a.example", HTTPClient: other.hc})
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if _, err := remote.Discover(context.Background(), "a.example", nil, "mimi://a.example/u/bob"); err != nil {
			t.Fatal(err)
		}
	}
	if after := storeRows(t, p); after != before {
		t.Fatalf("the store went from %d to %d rows over %d discoveries", before, after, 300+1+20)
	}
	// The tokens work: any of them fetches bob's KeyPackage.
	for tok := range tokens {
		if st := other.fetchOne("bob", tok); st != protocol.StatusOK {
			t.Fatalf("a flood token: %s", st)
		}
		break
	}
}

// settableClock is a provider clock the test moves.
type settableClock struct {
	mu sync.Mutex
	d  time.Duration
}

func (c *settableClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.d)
}

func (c *settableClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.d += d
}

// TestTokensForgedExpiredRevoked: a token changed in any byte, or made up, is
// bad_token; an expired one too; one revoked with the admin CLI (another store handle,
// which tells the running server through the change log) is revoked_token, and so is
// every token of a user revoked with -user.
func TestTokensForgedExpiredRevoked(t *testing.T) {
	clk := &settableClock{}
	p := providertest.Start(t, "a.example", nil, func(c *provider.Config) {
		c.Discovery.TokenTTL = provider.DefaultConfig().Discovery.TokenTTL / (30 * 24 * 60) // one minute
		c.Clock = clk.now
	})
	stockedUser(t, p, "bob", 5, true)
	g := newGatewayPeer(t, p, "127.0.0.1")
	_, tok := g.discover("bob")
	if st := g.fetchOne("bob", tok); st != protocol.StatusOK {
		t.Fatalf("genuine token: %s", st)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, "mbt_"))
	if err != nil {
		t.Fatal(err)
	}
	forge := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x01
		return "mbt_" + base64.RawURLEncoding.EncodeToString(b)
	}
	for name, bad := range map[string]string{"made up": "mbt_" + strings.Repeat("A", 94), "user id": forge(21),
		"expiry": forge(37), "token id": forge(13), "mac": forge(50), "not ours": "mdt_" + tok[4:]} {
		if st := g.fetchOne("bob", bad); st != protocol.StatusBadToken {
			t.Errorf("forged (%s): %s, want bad_token", name, st)
		}
	}
	// Revoked with the CLI, given in full.
	_, t1 := g.discover("bob")
	_, t2 := g.discover("bob")
	data := p.Config.DataDir
	if code, out, errs := mimids(t, "tokens", "revoke", "-data", data, t1); code != 0 || !strings.HasPrefix(out, "revoked token ") {
		t.Fatalf("tokens revoke: exit %d, %q %q", code, out, errs)
	}
	poll(t, "the server to apply the revocation", func() bool { return g.fetchOne("bob", t1) == protocol.StatusRevokedToken })
	if st := g.fetchOne("bob", t2); st != protocol.StatusOK {
		t.Fatalf("the other token: %s", st)
	}
	// Every token of bob (issued before the CLI's clock says now).
	time.Sleep(2 * time.Millisecond) // t2 is issued strictly before the cutoff
	if code, _, errs := mimids(t, "tokens", "revoke", "-data", data, "-user", "bob"); code != 0 {
		t.Fatalf("tokens revoke -user: exit %d, %q", code, errs)
	}
	poll(t, "the server to apply the user revocation", func() bool { return g.fetchOne("bob", t2) == protocol.StatusRevokedToken })
	time.Sleep(2 * time.Millisecond)
	if _, t3 := g.discover("bob"); g.fetchOne("bob", t3) != protocol.StatusOK {
		t.Fatal("a token issued after the revocation is refused")
	}
	code, out, _ := mimids(t, "tokens", "list", "-data", data)
	if code != 0 || !strings.Contains(out, "signs new tokens") || !strings.Contains(out, "revoked token ") ||
		!strings.Contains(out, `revoked tokens of user "bob"`) {
		t.Fatalf("tokens list: %q", out)
	}
	// Rotating with -retire ends every token issued so far.
	_, t4 := g.discover("bob")
	if code, _, errs := mimids(t, "tokens", "rotate", "-data", data, "-retire"); code != 0 {
		t.Fatalf("tokens rotate: %q", errs)
	}
	poll(t, "the server to load the new secret", func() bool { return g.fetchOne("bob", t4) == protocol.StatusRevokedToken })
	_, t5 := g.discover("bob")
	if g.fetchOne("bob", t5) != protocol.StatusOK {
		t.Fatal("a token of the new secret is refused")
	}
	// Expired: a minute later.
	clk.advance(61 * time.Second)
	if st := g.fetchOne("bob", t5); st != protocol.StatusBadToken {
		t.Fatalf("expired token: %s", st)
	}
}

// TestReplayFloodOneSource: one source that floods the gateway fills its share of the
// replay cache and is answered 503; other sources (another address, a client of our
// relay) are served; a replay is still refused, whoever sends it.
func TestReplayFloodOneSource(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, func(c *provider.Config) {
		c.OHTTP.ReplayCapacity, c.OHTTP.ReplayPerSource = 400, 100
		c.Discovery.RatePerSource = 0
	})
	stockedUser(t, p, "bob", 0, false)
	flood, other := newGatewayPeer(t, p, "127.0.0.2"), newGatewayPeer(t, p, "127.0.0.1")
	w := protocol.NewWriter(nil)
	w.String("bob")
	var accepted []byte
	counts := map[int]int{}
	for range 150 {
		enc, cc := flood.encapsulate(protocol.InnerDiscoverPath, w.Bytes())
		st, _ := flood.post(enc, cc)
		counts[st]++
		if st == http.StatusOK {
			accepted = enc
		}
	}
	if counts[http.StatusOK] != 100 || counts[http.StatusServiceUnavailable] != 50 {
		t.Fatalf("flood answers %v, want 100 ok then 50 503", counts)
	}
	for i := range 20 {
		if st, _ := other.post(other.encapsulate(protocol.InnerDiscoverPath, w.Bytes())); st != http.StatusOK {
			t.Fatalf("another address, request %d: %d", i, st)
		}
	}
	_, devToken, _ := p.Dir.AddClient(context.Background(), "alice", "laptop", true)
	remote, err := client.NewRemote(client.RemoteConfig{Base: p.Base, Token: devToken, Domain: "a.example", HTTPClient: other.hc})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := remote.Discover(context.Background(), "a.example", nil, "mimi://a.example/u/bob"); err != nil {
			t.Fatalf("a client of our relay: %v", err)
		}
	}
	resp, err := other.hc.Post(p.Base+ohttp.WellKnownGatewayPath, ohttp.MediaTypeRequest, bytes.NewReader(accepted))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("the flood's request replayed from another address: %d, want 400", resp.StatusCode)
	}
	m := p.Metrics(t)
	if got := m[`mimids_ohttp_gateway_requests_total{outcome="source_overloaded"}`]; got != 50 {
		t.Fatalf("source_overloaded = %v, want 50", got)
	}
}

// TestKeyPackageDrainRefused: the drain of issue 15 (one token, one bundle of 100
// requests for one user) is refused whole; one token then claims 10, and however many
// tokens a drainer gets, 20 one-time KeyPackages go at once, then the last resort; the
// user's client is told.
func TestKeyPackageDrainRefused(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, nil)
	bob, watch := stockedUser(t, p, "bob", 30, true)
	g := newGatewayPeer(t, p, "127.0.0.2")
	ctx := context.Background()
	_, tok := g.discover("bob")
	var bundle []protocol.KeyPackageRequest
	for range 100 {
		bundle = append(bundle, kpReq("bob", tok))
	}
	if st, _ := g.fetch(bundle...); st != http.StatusBadRequest {
		t.Fatalf("bundle of 100 for bob: inner %d, want 400", st)
	}
	if st, err := bob.KeyPackageCount(ctx, 1); err != nil || st.Available != 30 {
		t.Fatalf("stock after the refused bundle: %+v, %v", st, err)
	}
	statuses := func(tok string, n int) map[protocol.FetchStatus]int {
		out := map[protocol.FetchStatus]int{}
		for range n {
			out[g.fetchOne("bob", tok)]++
		}
		return out
	}
	if got := statuses(tok, 12); got[protocol.StatusOK] != 10 || got[protocol.StatusRateLimited] != 2 {
		t.Fatalf("one token, 12 fetches: %v; want 10 ok, 2 rate_limited", got)
	}
	_, tok2 := g.discover("bob")
	_, tok3 := g.discover("bob")
	statuses(tok2, 10)
	if got := statuses(tok3, 5); got[protocol.StatusOK] != 5 {
		t.Fatalf("a third token: %v", got)
	}
	// 20 one-time KeyPackages went (with margin for a refill), the rest got the last resort.
	if st, err := bob.KeyPackageCount(ctx, 1); err != nil || st.Available < 9 || !st.LastResort {
		t.Fatalf("bob's stock after the drain: %+v, %v; want 10 one-time left", st, err)
	}
	poll(t, "bob's client to be told", func() bool { return watch.reasons() == "[claims_limited]" })

	// carol, with one one-time KeyPackage: when her last resort is served, she is told.
	_, cw := stockedUser(t, p, "carol", 1, true)
	_, ct := g.discover("carol")
	for range 3 {
		if st := g.fetchOne("carol", ct); st != protocol.StatusOK {
			t.Fatalf("carol: %s", st)
		}
	}
	poll(t, "carol's client to be told", func() bool { return cw.reasons() == "[last_resort_served]" })
}

// TestTokenEnumeration: a per-requester token presented for any other name answers
// bad_token, whether that user exists or not, with the same message.
func TestTokenEnumeration(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, nil)
	stockedUser(t, p, "bob", 2, false)
	stockedUser(t, p, "carol", 2, false)
	g := newGatewayPeer(t, p, "127.0.0.1")
	_, tok := g.discover("bob")
	st, res := g.fetch(kpReq("carol", tok), kpReq("nobody", tok), kpReq("bob", tok))
	if st != http.StatusOK {
		t.Fatalf("fetch: inner %d", st)
	}
	if res[0].Status != protocol.StatusBadToken || res[1].Status != protocol.StatusBadToken || res[0].Message != res[1].Message {
		t.Fatalf("existing %s %q, nonexisting %s %q: want the same bad_token", res[0].Status, res[0].Message, res[1].Status, res[1].Message)
	}
	if res[2].Status != protocol.StatusOK {
		t.Fatalf("bob's own: %s", res[2].Status)
	}
}
