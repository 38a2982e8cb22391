package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/gateway/wire"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/ohttp"
	"github.com/mimids/mimids/ohttp/bhttp"
	"github.com/mimids/mimids/sqlite"
)

// This file holds the in-process provider the KeyPackage, OHTTP and group tests run
// against: the real gateway, directory, KeyPackage store, discovery, hub, OHTTP
// gateway and relay over a real SQLite file on a loopback port, wired the way
// cmd/mimids wires them (its socket and inner-route adapters are re-stated here,
// since package main cannot be imported).

// testProvider is one provider served in-process.
type testProvider struct {
	domain string
	db     *sqlite.DB
	dir    *directory.Directory
	mb     *mailbox.Mailbox
	disc   *directory.Discovery
	kps    *directory.KeyPackages
	hub    *hub.Hub
	keys   *ohttp.KeySet
	srv    *gateway.Server
	relay  *byteRecorder // what the relay handled (nil without peers)
	gwHits *byteRecorder // what the OHTTP gateway handled
	base   string        // http://127.0.0.1:port
	socket string        // ws://127.0.0.1:port/v1/socket
}

type providerOpts struct {
	peers     map[string]string // peer domain -> base URL; a relay is served when set
	kpNow     time.Time         // KeyPackage validation and claim clock (zero: now)
	relayRate float64           // relay token bucket (0: 1000/s)
	lowStock  int               // KeyPackage low-stock threshold (0: default)
}

func startProvider(t testing.TB, domain string, o providerOpts) *testProvider {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "mimids.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	p := &testProvider{domain: domain, db: db, dir: directory.New(db, domain), mb: mailbox.New(db, mailbox.Metrics{})}
	now := time.Now
	if !o.kpNow.IsZero() {
		now = func() time.Time { return o.kpNow }
	}
	if p.disc, err = directory.NewDiscovery(p.dir, db, directory.DiscoveryConfig{}); err != nil {
		t.Fatal(err)
	}
	if p.kps, err = directory.NewKeyPackages(p.dir, db, p.disc, p.mb, directory.KeyPackageConfig{Clock: now, LowThreshold: o.lowStock}, nil); err != nil {
		t.Fatal(err)
	}
	if p.hub, err = hub.New(hub.Config{Domain: domain, RatePerSecond: -1}, db, testRouter{p.kps}, testHubMailbox{p.mb}); err != nil {
		t.Fatal(err)
	}
	p.srv = gateway.New(gateway.Config{}, gateway.Deps{Directory: p.dir, Mailbox: p.mb, Ready: db.Ping,
		Partitions: testPartitions{p.hub}})
	registerTestKeyPackages(p.srv, p.kps)
	registerTestHub(p.srv, p.hub)
	p.keys = ohttp.NewKeySet(time.Hour)
	if _, err := p.keys.Rotate(ohttp.KEMX25519HKDFSHA256, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	og, err := ohttp.NewGateway(ohttp.GatewayConfig{Keys: p.keys, Routes: testInnerRoutes(p.kps, p.disc, now), Authorities: []string{domain}})
	if err != nil {
		t.Fatal(err)
	}
	p.gwHits = &byteRecorder{next: og}
	e := p.srv.Echo()
	e.Match([]string{"GET", "HEAD", "POST"}, ohttp.WellKnownGatewayPath, echo.WrapHandler(p.gwHits))
	if len(o.peers) > 0 {
		p.relay = &byteRecorder{next: newTestRelay(t, p.dir, o)}
		e.POST(RelayPathPrefix+":peer", echo.WrapHandler(p.relay))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.base, p.socket = "http://"+ln.Addr().String(), "ws://"+ln.Addr().String()+"/v1/socket"
	done := make(chan error, 2)
	go func() { done <- p.srv.Serve(ctx, ln) }()
	go func() { done <- p.hub.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range 2 {
			select {
			case err := <-done:
				if err != nil && !errors.Is(err, context.Canceled) {
					t.Errorf("provider %s: %v", domain, err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("provider %s did not stop", domain)
			}
		}
		db.Close()
	})
	return p
}

func newTestRelay(t testing.TB, dir *directory.Directory, o providerOpts) http.Handler {
	t.Helper()
	peers := make(map[string]string, len(o.peers))
	for d, u := range o.peers {
		peers[d] = u + ohttp.WellKnownGatewayPath
	}
	token := func(r *http.Request) string {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		return tok
	}
	rate := o.relayRate
	if rate == 0 {
		rate = 1000
	}
	// The relay's own connections to the gateways, closed before the providers stop.
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.Cleanup(hc.CloseIdleConnections)
	relay, err := ohttp.NewRelay(ohttp.RelayConfig{
		Client:    hc,
		Peers:     peers,
		PeerFunc:  func(r *http.Request) string { return strings.TrimPrefix(r.URL.Path, RelayPathPrefix) },
		Authorize: func(r *http.Request) error { _, err := dir.Authenticate(r.Context(), []byte(token(r))); return err },
		Limiter:   ohttp.NewTokenBuckets(rate, max(1, int(rate)), 1000),
		LimitKey:  func(r *http.Request) string { return string(directory.HashToken(token(r))) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return relay
}

// addClient registers user/name and returns the device token.
func (p *testProvider) addClient(t testing.TB, user, name string) (directory.Client, string) {
	t.Helper()
	c, token, err := p.dir.AddClient(context.Background(), user, name, true)
	if err != nil {
		t.Fatal(err)
	}
	return c, token
}

// dialAs connects a new client of user to the provider.
func (p *testProvider) dialAs(t testing.TB, user string, cfg Config) (*Client, directory.Client) {
	t.Helper()
	dc, token := p.addClient(t, user, fmt.Sprintf("d%d", deviceSeq.Add(1)))
	cfg.URL, cfg.Token = p.socket, token
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

// registerTestKeyPackages serves the KeyPackage socket methods (as cmd/mimids).
func registerTestKeyPackages(srv *gateway.Server, kps *directory.KeyPackages) {
	srv.Handle(wire.MethodKeyPackageUpload, func(ctx context.Context, c *gateway.Caller, body []byte) ([]byte, error) {
		var up directory.KeyPackageUpload
		if err := up.UnmarshalBinary(body); err != nil {
			return nil, &wire.Error{Code: wire.CodeMalformed, Message: err.Error()}
		}
		refs, err := kps.Upload(ctx, c.Client, up.KeyPackages)
		if err != nil {
			return nil, testKPError(err)
		}
		return directory.KeyPackageUploadResult{Refs: refs}.MarshalBinary()
	})
	srv.Handle(wire.MethodKeyPackageCount, func(ctx context.Context, c *gateway.Caller, body []byte) ([]byte, error) {
		r := wire.NewReader(body)
		suite := mls.CipherSuite(r.U16("cipher_suite"))
		if err := r.Done(); err != nil {
			return nil, &wire.Error{Code: wire.CodeMalformed, Message: err.Error()}
		}
		st, err := kps.Count(ctx, c.Client, suite)
		if err != nil {
			return nil, testKPError(err)
		}
		return st.MarshalBinary()
	})
}

func testKPError(err error) error {
	code := wire.CodeInternal
	switch {
	case errors.Is(err, directory.ErrMalformed):
		code = wire.CodeMalformed
	case errors.Is(err, directory.ErrBundleTooLarge), errors.Is(err, directory.ErrKeyPackageLimit), errors.Is(err, directory.ErrFieldTooLarge):
		code = wire.CodeTooLarge
	case errors.Is(err, directory.ErrDuplicateKeyPackage):
		code = wire.CodeConflict
	case errors.Is(err, directory.ErrInvalidKeyPackage), errors.Is(err, directory.ErrIdentityMismatch),
		errors.Is(err, directory.ErrLastResortConflict):
		code = wire.CodeKeyPackageRejected
	}
	return &wire.Error{Code: code, Message: err.Error()}
}

// testInnerRoutes is the OHTTP gateway's handler table (as cmd/mimids).
func testInnerRoutes(kps *directory.KeyPackages, disc *directory.Discovery, now func() time.Time) map[ohttp.Route]ohttp.HandlerFunc {
	return map[ohttp.Route]ohttp.HandlerFunc{
		{Method: http.MethodPost, Path: InnerKeyPackages}: func(ctx context.Context, req *bhttp.Request) *bhttp.Response {
			out, err := kps.ServeBundle(ctx, req.Content, now())
			switch {
			case errors.Is(err, directory.ErrMalformed):
				return bhttp.NewResponse(http.StatusBadRequest, "text/plain", []byte(err.Error()))
			case errors.Is(err, directory.ErrBundleTooLarge):
				return bhttp.NewResponse(http.StatusRequestEntityTooLarge, "text/plain", []byte(err.Error()))
			case err != nil:
				return bhttp.NewResponse(http.StatusInternalServerError, "", nil)
			}
			return bhttp.NewResponse(http.StatusOK, innerContentType, out)
		},
		{Method: http.MethodPost, Path: InnerDiscover}: func(ctx context.Context, req *bhttp.Request) *bhttp.Response {
			r := wire.NewReader(req.Content)
			user := r.OpaqueMax("user_id", directory.MaxUserIDLen)
			if err := r.Done(); err != nil {
				return bhttp.NewResponse(http.StatusBadRequest, "text/plain", []byte(err.Error()))
			}
			resp, err := disc.Discover(ctx, string(user), "ohttp")
			switch {
			case errors.Is(err, directory.ErrUnknownUser), errors.Is(err, directory.ErrNotFound):
				return bhttp.NewResponse(http.StatusNotFound, "", nil)
			case err != nil:
				return bhttp.NewResponse(http.StatusInternalServerError, "", nil)
			}
			out, _ := resp.MarshalBinary()
			return bhttp.NewResponse(http.StatusOK, innerContentType, out)
		},
	}
}

// Hub adapters (as cmd/mimids).

type testRouter struct{ kp *directory.KeyPackages }

func (r testRouter) ClientForRef(ctx context.Context, ref []byte) (int64, bool, error) {
	c, err := r.kp.ClientForRef(ctx, ref)
	if errors.Is(err, directory.ErrNotFound) {
		return 0, false, nil
	}
	return c.ID, err == nil, err
}

type testHubMailbox struct{ mb *mailbox.Mailbox }

func (m testHubMailbox) Deliver(ctx context.Context, clientID int64, kind uint16, payload []byte) error {
	_, err := m.mb.Enqueue(ctx, mailbox.Target{ClientID: clientID}, kind, payload)
	return err
}

type testPartitions struct{ h *hub.Hub }

type testSink struct{ s gateway.PartitionSink }

func (k testSink) Notify(e hub.Entry) { k.s.Notify(testEntry(e)) }
func (k testSink) Refetch()           { k.s.Refetch() }

func testEntry(e hub.Entry) gateway.PartitionEntry {
	if e.Terminated {
		return gateway.PartitionEntry{Counter: e.Counter, Terminated: true}
	}
	m := hub.MessageOf(e)
	b, _ := m.MarshalBinary()
	return gateway.PartitionEntry{Counter: e.Counter, Message: b}
}

func (p testPartitions) Subscribe(masked []byte, s gateway.PartitionSink) func() {
	return p.h.Subscribe(masked, testSink{s})
}

func (p testPartitions) Fetch(ctx context.Context, masked []byte, after int64, limit int) ([]gateway.PartitionEntry, error) {
	es, err := p.h.Fetch(ctx, masked, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]gateway.PartitionEntry, 0, len(es)+1)
	for _, e := range es {
		out = append(out, testEntry(e))
	}
	if len(es) < limit {
		info, err := p.h.Partition(ctx, masked)
		if err != nil {
			return nil, err
		}
		if info.Terminated {
			out = append(out, gateway.PartitionEntry{Counter: uint32(after + 1 + int64(len(es))), Terminated: true})
		}
	}
	return out, nil
}

func (p testPartitions) Masked(ctx context.Context, partitionKey []byte) ([]byte, error) {
	info, err := p.h.PartitionByKey(ctx, partitionKey)
	if err != nil {
		return nil, testHubError(err)
	}
	return info.Masked, nil
}

func registerTestHub(srv *gateway.Server, h *hub.Hub) {
	sender := func(c *gateway.Caller) hub.Sender {
		return hub.Sender{ClientID: c.Client.ID, UserURI: c.UserURI, Local: true}
	}
	srv.Handle(wire.MethodCreateGroup, testHubMethod(func(ctx context.Context, c *gateway.Caller, req *hub.CreateGroupRequest) (encoding.BinaryMarshaler, error) {
		resp, err := h.CreateGroup(ctx, sender(c), req)
		return &resp, err
	}))
	srv.Handle(wire.MethodSend, testHubMethod(func(ctx context.Context, c *gateway.Caller, req *hub.SendRequest) (encoding.BinaryMarshaler, error) {
		return h.Send(ctx, sender(c), req)
	}))
	srv.Handle(wire.MethodReceive, testHubMethod(func(ctx context.Context, _ *gateway.Caller, req *hub.ReceiveRequest) (encoding.BinaryMarshaler, error) {
		return h.Receive(ctx, req)
	}))
	srv.Handle(wire.MethodGroupInfo, testHubMethod(func(ctx context.Context, _ *gateway.Caller, req *hub.GroupInfoRequest) (encoding.BinaryMarshaler, error) {
		return h.GroupInfo(ctx, req)
	}))
	srv.Handle(wire.MethodExternalJoin, testHubMethod(func(ctx context.Context, c *gateway.Caller, req *hub.ExternalJoinRequest) (encoding.BinaryMarshaler, error) {
		resp, err := h.ExternalJoin(ctx, sender(c), req)
		return &resp, err
	}))
	srv.Handle(wire.MethodReport, testHubMethod(func(ctx context.Context, c *gateway.Caller, req *hub.Report) (encoding.BinaryMarshaler, error) {
		id, err := h.FileReport(ctx, sender(c), *req)
		return testReportID(id), err
	}))
}

type testReportID int64

func (r testReportID) MarshalBinary() ([]byte, error) {
	w := wire.NewWriter(nil)
	w.U64(uint64(r))
	return w.Bytes(), nil
}

func testHubMethod[T any, PT interface {
	*T
	encoding.BinaryUnmarshaler
}](fn func(context.Context, *gateway.Caller, PT) (encoding.BinaryMarshaler, error)) gateway.Handler {
	return func(ctx context.Context, c *gateway.Caller, body []byte) ([]byte, error) {
		req := PT(new(T))
		if err := req.UnmarshalBinary(body); err != nil {
			return nil, &wire.Error{Code: wire.CodeMalformed, Message: err.Error()}
		}
		resp, err := fn(ctx, c, req)
		if err != nil {
			return nil, testHubError(err)
		}
		return resp.MarshalBinary()
	}
}

func testHubError(err error) error {
	code := wire.CodeInternal
	switch {
	case errors.Is(err, hub.ErrMalformed):
		code = wire.CodeMalformed
	case errors.Is(err, hub.ErrTooLarge):
		code = wire.CodeTooLarge
	case errors.Is(err, hub.ErrUnknownGroup), errors.Is(err, hub.ErrUnknownPartition),
		errors.Is(err, hub.ErrNoGroupInfo), errors.Is(err, hub.ErrNotFound):
		code = wire.CodeNotFound
	case errors.Is(err, hub.ErrGroupExists), errors.Is(err, hub.ErrPartitionExists):
		code = wire.CodeConflict
	case errors.Is(err, hub.ErrTreeRequired):
		code = wire.CodeTreeRequired
	case errors.Is(err, hub.ErrTerminated):
		code = wire.CodeTerminated
	case errors.Is(err, hub.ErrWrongPartition):
		code = wire.CodeWrongPartition
	case errors.Is(err, hub.ErrBanned), errors.Is(err, hub.ErrMuted), errors.Is(err, hub.ErrRemovedSender):
		code = wire.CodePolicy
	case errors.Is(err, hub.ErrInvalidMessage), errors.Is(err, hub.ErrInvalidGroupInfo),
		errors.Is(err, hub.ErrTreeMismatch), errors.Is(err, hub.ErrWelcomeMismatch):
		code = wire.CodeInvalidMLS
	}
	return &wire.Error{Code: code, Message: err.Error()}
}

// syntheticGroup is a valid one-member group of suite 1 built in Go: its
// GroupInfo (with ratchet_tree) and a random partition key. Its HPKE keys are
// random bytes: the hub never uses them.
func syntheticGroup(tb testing.TB) (groupID, groupInfo, partitionKey []byte) {
	tb.Helper()
	groupID, partitionKey = randomBytes(16), randomBytes(16)
	s, err := mls.CipherSuite(1).Suite()
	if err != nil {
		tb.Fatal(err)
	}
	priv, pub, err := s.GenerateSignatureKey()
	if err != nil {
		tb.Fatal(err)
	}
	ln := &mls.LeafNode{
		EncryptionKey: randomBytes(32), SignatureKey: pub,
		Credential: mls.Credential{CredentialType: mls.CredentialTypeBasic, Identity: []byte("mimi://a.example/u/alice")},
		Capabilities: mls.Capabilities{Versions: []mls.ProtocolVersion{mls.ProtocolVersionMLS10},
			CipherSuites: []mls.CipherSuite{1}, Credentials: []mls.CredentialType{mls.CredentialTypeBasic}},
		LeafNodeSource: mls.LeafNodeSourceKeyPackage,
		Lifetime:       mls.Lifetime{NotBefore: 0, NotAfter: 1<<63 - 1},
	}
	tbs, err := ln.TBS(groupID, 0)
	if err != nil {
		tb.Fatal(err)
	}
	if ln.Signature, err = s.SignWithLabel(priv, mls.LeafNodeTBSLabel, tbs); err != nil {
		tb.Fatal(err)
	}
	rt := mls.RatchetTree{&mls.Node{NodeType: mls.NodeTypeLeaf, Leaf: ln}}
	tree, err := mls.NewTree(1, rt)
	if err != nil {
		tb.Fatal(err)
	}
	rtBytes, err := rt.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	gi := &mls.GroupInfo{
		GroupContext: mls.GroupContext{Version: mls.ProtocolVersionMLS10, CipherSuite: 1, GroupID: groupID,
			TreeHash: tree.TreeHash(), ConfirmedTranscriptHash: []byte{}},
		Extensions:      mls.Extensions{{ExtensionType: mls.ExtensionTypeRatchetTree, ExtensionData: rtBytes}},
		ConfirmationTag: randomBytes(32),
	}
	if tbs, err = gi.TBS(); err != nil {
		tb.Fatal(err)
	}
	if gi.Signature, err = s.SignWithLabel(priv, mls.GroupInfoTBSLabel, tbs); err != nil {
		tb.Fatal(err)
	}
	groupInfo, err = (&mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatGroupInfo, GroupInfo: gi}).Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return groupID, groupInfo, partitionKey
}

// syntheticApp is an application PrivateMessage of n bytes of ciphertext, unique by i.
func syntheticApp(tb testing.TB, groupID []byte, i uint64, n int) []byte {
	ct := make([]byte, max(n, 8))
	binary.BigEndian.PutUint64(ct, i)
	m := &mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatPrivateMessage,
		PrivateMessage: &mls.PrivateMessage{GroupID: groupID, ContentType: mls.ContentTypeApplication,
			AuthenticatedData: []byte{}, EncryptedSenderData: make([]byte, 28), Ciphertext: ct}}
	b, err := m.Marshal()
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
	p       *testProvider
	sender  *Client
	groupID []byte
	pk      []byte
	masked  []byte
	sent    uint64
}

func newSynthGroup(t testing.TB, p *testProvider) *synthGroup {
	t.Helper()
	g := &synthGroup{p: p}
	var gi []byte
	g.groupID, gi, g.pk = syntheticGroup(t)
	g.sender, _ = p.dialAs(t, "alice", Config{})
	resp, err := g.sender.CreateGroup(context.Background(), &hub.CreateGroupRequest{GroupInfo: gi, PartitionKey: g.pk})
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
		c, err := g.sender.Send(context.Background(), &hub.SendRequest{Message: syntheticApp(t, g.groupID, g.sent, size), PartitionKey: g.pk})
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

type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := hex.DecodeString(s)
	*h = v
	return err
}

type kpFixture struct {
	Identity       string   `json:"identity"`
	User           string   `json:"user"`
	Provider       string   `json:"provider"`
	CipherSuite    uint16   `json:"cipher_suite"`
	KeyPackage     hexBytes `json:"key_package"`
	KeyPackageBare hexBytes `json:"key_package_bare"`
	KeyPackageRef  hexBytes `json:"key_package_ref"`
	LastResort     bool     `json:"last_resort"`
}

type kpFixtures struct {
	ValidationTime int64       `json:"validation_time"`
	KeyPackages    []kpFixture `json:"key_packages"`
}

// loadKeyPackages reads the ts-mls KeyPackages; a missing file fails the test.
func loadKeyPackages(t testing.TB) kpFixtures {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "mls", "testdata", "tsmls", "keypackages.json"))
	if err != nil {
		t.Fatal(err)
	}
	var f kpFixtures
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.KeyPackages) == 0 || f.ValidationTime == 0 {
		t.Fatal("keypackages.json: no KeyPackages or no validation_time")
	}
	return f
}

func (f kpFixtures) now() time.Time { return time.Unix(f.ValidationTime, 0) }

// of returns the fixtures of one user URI.
func (f kpFixtures) of(identity string) []kpFixture {
	var out []kpFixture
	for _, k := range f.KeyPackages {
		if k.Identity == identity {
			out = append(out, k)
		}
	}
	return out
}

func TestUploadKeyPackagesAndCount(t *testing.T) {
	fx := loadKeyPackages(t)
	b := startProvider(t, "b.example", providerOpts{kpNow: fx.now()})
	c, _ := b.dialAs(t, "bob", Config{})
	ctx := ctxT(t)
	bob := fx.of("mimi://b.example/u/bob")
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
	if want := (directory.KeyPackageStock{CipherSuite: 1, Available: 2, LastResort: true}); st != want {
		t.Errorf("count = %+v, want %+v", st, want)
	}
	if st, err := c.KeyPackageCount(ctx, 3); err != nil || st.Available != 0 || st.LastResort {
		t.Errorf("count suite 3 = %+v, %v; want none", st, err)
	}
	if refs, err := c.UploadKeyPackages(ctx, nil); refs != nil || err != nil {
		t.Errorf("empty upload = %v, %v", refs, err)
	}

	alice := fx.of("mimi://a.example/u/alice")
	for _, tc := range []struct {
		name string
		kps  [][]byte
		code wire.Code
	}{
		{"duplicate", [][]byte{bob[0].KeyPackage}, wire.CodeConflict},
		{"another user's", [][]byte{alice[0].KeyPackage}, wire.CodeKeyPackageRejected},
		{"garbage", [][]byte{[]byte("not a key package")}, wire.CodeKeyPackageRejected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.UploadKeyPackages(ctx, tc.kps)
			if got := ErrorCode(err); got != tc.code {
				t.Fatalf("upload: %v (code %s), want code %s", err, got, tc.code)
			}
		})
	}
	if _, err := c.UploadKeyPackages(ctx, [][]byte{make([]byte, directory.MaxKeyPackageSize+5)}); err == nil || ErrorCode(err) != 0 {
		t.Errorf("oversized upload: %v, want a local error", err)
	}
}

func TestDeliveryKeyPackagesLow(t *testing.T) {
	low, _ := directory.KeyPackagesLow{CipherSuite: 2, Remaining: 3}.MarshalBinary()
	for _, tc := range []struct {
		name string
		d    Delivery
		want directory.KeyPackagesLow
		ok   bool
	}{
		{"valid", Delivery{Seq: 1, Kind: wire.KindKeyPackagesLow, Payload: low}, directory.KeyPackagesLow{CipherSuite: 2, Remaining: 3}, true},
		{"other kind", Delivery{Seq: 2, Kind: wire.KindNotice, Payload: low}, directory.KeyPackagesLow{}, false},
		{"truncated", Delivery{Seq: 3, Kind: wire.KindKeyPackagesLow, Payload: low[:5]}, directory.KeyPackagesLow{}, false},
		{"trailing", Delivery{Seq: 4, Kind: wire.KindKeyPackagesLow, Payload: append(low, 0)}, directory.KeyPackagesLow{}, false},
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
