package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimids/mimids/mls/mlstest"

	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// The KeyPackage, OHTTP and group tests run against real providers started by
// cmd/provider/providertest: the same wiring as mimids serve. The one exception is
// the provider that stores the ts-mls KeyPackages (fixtureprovider_test.go).

// startProvider starts a real provider for domain with the hub's per-user rate
// limit off (the tests and benchmarks send in bursts); edit may change the rest.
func startProvider(t testing.TB, domain string, edit func(*provider.Config)) *providertest.Provider {
	t.Helper()
	return providertest.Start(t, domain, nil, func(c *provider.Config) {
		c.Hub.RatePerSecond = -1
		if edit != nil {
			edit(c)
		}
	})
}

// addClient registers user/name and returns the device token.
func addClient(t testing.TB, dir *directory.Directory, user, name string) (directory.Client, string) {
	t.Helper()
	c, token, err := dir.AddClient(context.Background(), user, name, true)
	if err != nil {
		t.Fatal(err)
	}
	return c, token
}

// dialAs connects a new client of user to the provider with that socket and directory.
func dialAs(t testing.TB, socket string, dir *directory.Directory, user string, cfg Config) (*Client, directory.Client) {
	t.Helper()
	dc, token := addClient(t, dir, user, fmt.Sprintf("d%d", deviceSeq.Add(1)))
	cfg.URL, cfg.Token = socket, token
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = 10*time.Millisecond, 50*time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c, dc
}

var deviceSeq atomic.Int64

// tap serves a recording reverse proxy to target (a provider's base URL) until the
// test ends: what passes through it is what target handled.
func tap(t testing.TB, target string) (base string, rec *byteRecorder) {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	tr := &http.Transport{} // its own connections, closed before target stops
	proxy.Transport = tr
	rec = &byteRecorder{next: proxy}
	s := httptest.NewServer(rec)
	t.Cleanup(func() {
		s.Close()
		tr.CloseIdleConnections()
	})
	return s.URL, rec
}

// byteRecorder keeps the headers and bodies an HTTP handler saw and sent.
type byteRecorder struct {
	next http.Handler

	mu      sync.Mutex
	n       int
	headers []http.Header
	bodies  [][]byte
}

func (rec *byteRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	cw := &captureWriter{ResponseWriter: w}
	rec.next.ServeHTTP(cw, r)
	rec.mu.Lock()
	rec.n++
	rec.headers = append(rec.headers, r.Header.Clone(), w.Header().Clone())
	rec.bodies = append(rec.bodies, []byte(r.URL.String()), body, cw.buf.Bytes())
	rec.mu.Unlock()
}

func (rec *byteRecorder) count() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.n
}

// contains reports whether any recorded byte string or header value holds s.
func (rec *byteRecorder) contains(s []byte) bool {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, b := range rec.bodies {
		if bytes.Contains(b, s) {
			return true
		}
	}
	for _, h := range rec.headers {
		for _, vs := range h {
			for _, v := range vs {
				if strings.Contains(v, string(s)) {
					return true
				}
			}
		}
	}
	return false
}

type captureWriter struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (w *captureWriter) Write(b []byte) (int, error) {
	w.buf.Write(b)
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (the proxy flushes).
func (w *captureWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// syntheticGroup is a valid one-member group of suite 1 built in Go (mls/mlstest):
// its GroupInfo (with ratchet_tree) and a random partition key.
func syntheticGroup(tb testing.TB) (groupID, groupInfo, partitionKey []byte) {
	tb.Helper()
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{"mimi://a.example/u/alice"}})
	if err != nil {
		tb.Fatal(err)
	}
	return g.GroupID, g.GroupInfoMessage, g.PartitionKey
}

// syntheticApp is an application PrivateMessage of n bytes of ciphertext, unique by i.
func syntheticApp(tb testing.TB, groupID []byte, i uint64, n int) []byte {
	ct := make([]byte, max(n, 8))
	binary.BigEndian.PutUint64(ct, i)
	b, err := mlstest.ApplicationMessage(groupID, 0, ct)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// synthGroup is a synthetic group hosted by a provider, with a sender.
type synthGroup struct {
	sender  *Client
	groupID []byte
	pk      []byte
	masked  []byte
	sent    uint64
}

func newSynthGroup(t testing.TB, p *providertest.Provider) *synthGroup {
	t.Helper()
	g := &synthGroup{}
	var gi []byte
	g.groupID, gi, g.pk = syntheticGroup(t)
	g.sender, _ = dialAs(t, p.Socket, p.Dir, "alice", Config{})
	resp, err := g.sender.CreateGroup(context.Background(), &protocol.CreateGroupRequest{GroupInfo: gi, PartitionKey: g.pk})
	if err != nil {
		t.Fatal(err)
	}
	g.masked = resp.MaskedPartitionKey
	return g
}

// send sequences n application messages of size bytes each.
func (g *synthGroup) send(t testing.TB, n, size int) {
	t.Helper()
	for range n {
		c, err := g.sender.Send(context.Background(), &protocol.SendRequest{Message: syntheticApp(t, g.groupID, g.sent, size), PartitionKey: g.pk})
		if err != nil {
			t.Fatal(err)
		}
		if uint64(c) != g.sent {
			t.Fatalf("counter %d, want %d", c, g.sent)
		}
		g.sent++
	}
}

// ts-mls KeyPackages (mls/testdata/tsmls/keypackages.json).

type hexBytes = mlstest.Hex

type kpFixture = mlstest.KeyPackageFixture

type kpFixtures = mlstest.KeyPackageFixtures

// loadKeyPackages reads the ts-mls KeyPackages; a missing file fails the test.
func loadKeyPackages(t testing.TB) kpFixtures {
	t.Helper()
	f, err := mlstest.LoadKeyPackageFixtures(filepath.Join("..", "mls", "testdata", "tsmls", "keypackages.json"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestUploadKeyPackagesAndCount(t *testing.T) {
	fx := loadKeyPackages(t)
	b := startFixtureProvider(t, "b.example", fx.Now(), 0)
	c, _ := dialAs(t, b.socket, b.dir, "bob", Config{})
	ctx := ctxT(t)
	bob := fx.Of("mimi://b.example/u/bob")
	if len(bob) != 3 {
		t.Fatalf("fixture: %d KeyPackages of bob, want 3", len(bob))
	}
	// Two MLSMessage-wrapped, one bare.
	refs, err := c.UploadKeyPackages(ctx, [][]byte{bob[0].KeyPackage, bob[1].KeyPackageBare, bob[2].KeyPackage})
	if err != nil {
		t.Fatal(err)
	}
	for i, ref := range refs {
		if !bytes.Equal(ref, bob[i].KeyPackageRef) {
			t.Errorf("ref %d = %x, want %x", i, ref, bob[i].KeyPackageRef)
		}
	}
	st, err := c.KeyPackageCount(ctx, mls.CipherSuite(bob[0].CipherSuite))
	if err != nil {
		t.Fatal(err)
	}
	if want := (protocol.KeyPackageStock{CipherSuite: 1, Available: 2, LastResort: true}); st != want {
		t.Errorf("count = %+v, want %+v", st, want)
	}
	if st, err := c.KeyPackageCount(ctx, 3); err != nil || st.Available != 0 || st.LastResort {
		t.Errorf("count suite 3 = %+v, %v; want none", st, err)
	}
	if refs, err := c.UploadKeyPackages(ctx, nil); refs != nil || err != nil {
		t.Errorf("empty upload = %v, %v", refs, err)
	}

	alice := fx.Of("mimi://a.example/u/alice")
	for _, tc := range []struct {
		name string
		kps  [][]byte
		code protocol.Code
	}{
		{"duplicate", [][]byte{bob[0].KeyPackage}, protocol.CodeConflict},
		{"another user's", [][]byte{alice[0].KeyPackage}, protocol.CodeKeyPackageRejected},
		{"garbage", [][]byte{[]byte("not a key package")}, protocol.CodeKeyPackageRejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.UploadKeyPackages(ctx, tc.kps)
			if got := ErrorCode(err); got != tc.code {
				t.Fatalf("upload: %v (code %s), want code %s", err, got, tc.code)
			}
		})
	}
	if _, err := c.UploadKeyPackages(ctx, [][]byte{make([]byte, protocol.MaxKeyPackageSize+5)}); err == nil || ErrorCode(err) != 0 {
		t.Errorf("oversized upload: %v, want a local error", err)
	}
}

func TestDeliveryKeyPackagesExhausted(t *testing.T) {
	n, _ := protocol.KeyPackagesExhausted{CipherSuite: 1, Reason: protocol.ExhaustedLastResortServed}.MarshalBinary()
	if got, err := (&Delivery{Kind: protocol.KindKeyPackagesExhausted, Payload: n}).KeyPackagesExhausted(); err != nil ||
		got.Reason != protocol.ExhaustedLastResortServed || got.CipherSuite != 1 {
		t.Fatalf("KeyPackagesExhausted = %+v, %v", got, err)
	}
	for _, d := range []Delivery{{Kind: protocol.KindKeyPackagesLow, Payload: n}, {Kind: protocol.KindKeyPackagesExhausted, Payload: n[:2]}} {
		if _, err := d.KeyPackagesExhausted(); !errors.Is(err, ErrProtocol) {
			t.Errorf("%+v: %v, want ErrProtocol", d, err)
		}
	}
}

func TestDeliveryKeyPackagesLow(t *testing.T) {
	low, _ := protocol.KeyPackagesLow{CipherSuite: 2, Remaining: 3}.MarshalBinary()
	for _, tc := range []struct {
		name string
		d    Delivery
		want protocol.KeyPackagesLow
		ok   bool
	}{
		{"valid", Delivery{Seq: 1, Kind: protocol.KindKeyPackagesLow, Payload: low}, protocol.KeyPackagesLow{CipherSuite: 2, Remaining: 3}, true},
		{"other kind", Delivery{Seq: 2, Kind: protocol.KindNotice, Payload: low}, protocol.KeyPackagesLow{}, false},
		{"truncated", Delivery{Seq: 3, Kind: protocol.KindKeyPackagesLow, Payload: low[:5]}, protocol.KeyPackagesLow{}, false},
		{"trailing", Delivery{Seq: 4, Kind: protocol.KindKeyPackagesLow, Payload: append(low, 0)}, protocol.KeyPackagesLow{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.d.KeyPackagesLow()
			if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
				t.Fatalf("KeyPackagesLow = %+v, %v", got, err)
			}
			if err != nil && !errors.Is(err, ErrProtocol) {
				t.Errorf("error %v does not wrap ErrProtocol", err)
			}
		})
	}
}
