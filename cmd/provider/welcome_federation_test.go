package provider_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/federation/fedcert"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

// fedWorld is three providers with federation links and OHTTP relays between
// them, each restartable on its data directory and ports.
type fedWorld struct {
	t       testing.TB
	ca      *fedcert.CA
	certs   string
	domains []string
	gw      map[string]string // domain -> gateway address
	fed     map[string]string // domain -> federation address
	data    map[string]string // domain -> data directory
	ps      map[string]*providertest.Provider
	logs    map[string]*logLines
	tweak   func(domain string, c *provider.Config) // optional, after the defaults
}

// logLines keeps what a provider logged, one text line per record.
type logLines struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// count returns how many lines contain s.
func (l *logLines) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Count(l.buf.Bytes(), []byte(s))
}

func newFedWorld(t testing.TB, domains ...string) *fedWorld {
	return newFedWorldWith(t, nil, domains...)
}

// newFedWorldWith is newFedWorld with tweak applied to each provider's
// configuration.
func newFedWorldWith(t testing.TB, tweak func(domain string, c *provider.Config), domains ...string) *fedWorld {
	w := &fedWorld{t: t, tweak: tweak, certs: t.TempDir(), domains: domains, gw: map[string]string{}, fed: map[string]string{},
		data: map[string]string{}, ps: map[string]*providertest.Provider{}, logs: map[string]*logLines{}}
	var err error
	if w.ca, err = fedcert.NewCA("test", fedcert.Options{}); err != nil {
		t.Fatal(err)
	}
	lns := map[string]net.Listener{}
	for _, d := range domains {
		iss, err := w.ca.Issue(d, fedcert.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := iss.Write(w.certs, d); err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[d], w.gw[d], w.fed[d], w.data[d] = ln, ln.Addr().String(), "127.0.0.1:0", t.TempDir()
		w.logs[d] = &logLines{}
	}
	for _, d := range domains {
		w.start(d, lns[d])
	}
	ctx := context.Background()
	for _, d := range domains {
		for _, o := range domains {
			if d != o {
				p := federation.Peer{Domain: o, URL: "wss://" + w.fed[o], CA: w.ca.CertPEM()}
				if _, err := federation.AddPeer(ctx, w.ps[d].DB, d, p); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := w.ps[d].Federation.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// start starts domain on its data directory, on ln or else its gateway address.
func (w *fedWorld) start(domain string, ln net.Listener) *providertest.Provider {
	w.t.Helper()
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", w.gw[domain]); err != nil {
			w.t.Fatal(err)
		}
	}
	log := slog.New(slog.NewTextHandler(w.logs[domain], &slog.HandlerOptions{Level: slog.LevelWarn}))
	p := providertest.StartWithLog(w.t, domain, ln, func(c *provider.Config) {
		c.DataDir = w.data[domain]
		c.Federation.Listen = w.fed[domain]
		c.Federation.CertFile = filepath.Join(w.certs, fedcert.CertFile(domain))
		c.Federation.KeyFile = filepath.Join(w.certs, fedcert.KeyFile(domain))
		c.Federation.MinBackoff = gateway.Duration(20 * time.Millisecond)
		c.Federation.MaxBackoff = gateway.Duration(200 * time.Millisecond)
		c.Federation.PeerRefresh = gateway.Duration(100 * time.Millisecond)
		// Pings find a stale link (a restarted peer's) well inside the tests' polls.
		c.Federation.PingInterval = gateway.Duration(time.Second)
		c.Federation.WriteTimeout = gateway.Duration(3 * time.Second)
		for _, o := range w.domains {
			if o != domain {
				c.Peers = append(c.Peers, provider.PeerConfig{Domain: o, URL: "http://" + w.gw[o]})
			}
		}
		if w.tweak != nil {
			w.tweak(domain, c)
		}
	}, log)
	w.fed[domain] = p.Federation.Addr().String()
	w.ps[domain] = p
	return p
}

func (w *fedWorld) restart(domain string) *providertest.Provider {
	w.ps[domain].Stop()
	return w.start(domain, nil)
}

// welcomeBox counts the Welcomes one user's clients took from their mailbox, by
// group.
type welcomeBox struct {
	mu    sync.Mutex
	got   map[string]int      // group id -> deliveries
	refs  map[string][][]byte // group id -> refs of the last delivery
	c     *client.Client      // the current connection
	token string              // the device's token
}

func (b *welcomeBox) handler(_ context.Context, d *client.Delivery) error {
	if wd, err := d.Welcome(); err == nil {
		b.mu.Lock()
		b.got[string(wd.GroupID)]++
		b.refs[string(wd.GroupID)] = wd.KeyPackageRefs
		b.mu.Unlock()
	}
	return nil
}

func (b *welcomeBox) count(gid []byte) (int, [][]byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.got[string(gid)], b.refs[string(gid)]
}

// dialUser adds a device of user on p and connects it with box's handler.
func dialUser(t testing.TB, p *providertest.Provider, user string, box *welcomeBox) {
	t.Helper()
	_, token, err := p.Dir.AddClient(context.Background(), user, "phone", true)
	if err != nil {
		t.Fatal(err)
	}
	box.token = token
	redial(t, p, box)
}

// redial connects box's device to p again.
func redial(t testing.TB, p *providertest.Provider, box *welcomeBox) {
	t.Helper()
	c, err := client.Dial(context.Background(), client.Config{URL: p.Socket, Token: box.token, Handler: box.handler})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	box.c = c
}

// drained reports whether box's device has no mailbox entry left to take.
func drained(t testing.TB, box *welcomeBox) bool {
	st, err := box.c.MailboxStatus(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Pending == 0
}

func newBox() *welcomeBox {
	return &welcomeBox{got: map[string]int{}, refs: map[string][][]byte{}}
}

// uploadKPs uploads n one-time KeyPackages for uri through box's client.
func uploadKPs(t testing.TB, box *welcomeBox, uri string, n int) {
	t.Helper()
	var kps [][]byte
	for range n {
		kp, _, err := mlstest.NewKeyPackage(mlstest.KeyPackageOptions{Identity: uri})
		if err != nil {
			t.Fatal(err)
		}
		kps = append(kps, kp)
	}
	if _, err := box.c.UploadKeyPackages(context.Background(), kps); err != nil {
		t.Fatal(err)
	}
}

// fetchRef fetches one KeyPackage of user at domain through the client's own
// relay and returns its ref: the fetch is what makes domain record it as served.
func fetchRef(t testing.TB, r *client.Remote, domain, user string) []byte {
	t.Helper()
	ctx := context.Background()
	d, err := r.Discover(ctx, domain, nil, user)
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.FetchKeyPackages(ctx, domain, nil, []protocol.KeyPackageRequest{{UserID: d.UserID, BearerToken: d.BearerToken,
		Version: mls.ProtocolVersionMLS10, CipherSuite: 1}})
	if err != nil || res[0].Err() != nil {
		t.Fatalf("fetch %s: %v %v", user, err, res[0].Err())
	}
	suite, _ := mls.CipherSuite(1).Suite()
	return mls.MakeKeyPackageRef(suite, res[0].Response.KeyPackage)
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// createWithWelcome has alice create a group whose Welcome names refs, each for
// the provider beside it; it returns the group id.
func createWithWelcome(t *testing.T, alice *client.Client, refs [][]byte, providers []string) []byte {
	t.Helper()
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{"mimi://a.example/u/alice"}})
	if err != nil {
		t.Fatal(err)
	}
	welcome := &mls.Welcome{CipherSuite: 1, EncryptedGroupInfo: randBytes(200)}
	for _, ref := range refs {
		welcome.Secrets = append(welcome.Secrets, mls.EncryptedGroupSecrets{NewMember: ref,
			EncryptedGroupSecrets: mls.HPKECiphertext{KEMOutput: randBytes(32), Ciphertext: randBytes(100)}})
	}
	wb, err := (&mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatWelcome, Welcome: welcome}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateGroup(context.Background(), &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage,
		PartitionKey: g.PartitionKey, WelcomeData: &protocol.WelcomeData{Welcome: wb, ServiceProviders: providers}}); err != nil {
		t.Fatal(err)
	}
	return g.GroupID
}

// settled reports whether hub p has no Welcome stored for peer and nothing queued
// for it: nothing more can reach peer.
func settled(t *testing.T, p *providertest.Provider, peer string) bool {
	ws, err := p.Hub.PendingWelcomes(context.Background(), peer, 10)
	if err != nil {
		t.Fatal(err)
	}
	qs, err := p.DB.Pending(context.Background(), peer, 0, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return len(ws) == 0 && len(qs) == 0
}

// queuedWelcomes returns the welcome ids of the Welcome envelopes p has queued for
// peer, in queue order.
func queuedWelcomes(t *testing.T, p *providertest.Provider, peer string) []uint64 {
	qs, err := p.DB.Pending(context.Background(), peer, 0, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint64
	for _, q := range qs {
		if q.Type == protocol.EnvelopeWelcomeInit || q.Type == protocol.EnvelopeWelcome {
			ids = append(ids, protocol.NewReader(q.Body).U64("id"))
		}
	}
	return ids
}

// TestWelcomesAcrossProviders: alice on A creates a group whose Welcome names a
// KeyPackage of bob (on B) and one of carol (on C), both fetched through A's relay,
// plus a ref B never served and a ref of carol's that WelcomeData claims is B's.
// Bob and carol each get the Welcome once, with their own ref only; B refuses the
// other two, and C never hears of the ref named for B. A hub pushing a Welcome
// straight away, for refs B did not serve, is refused and nothing is delivered.
func TestWelcomesAcrossProviders(t *testing.T) {
	w := newFedWorld(t, "a.example", "b.example", "c.example")
	a, b := w.ps["a.example"], w.ps["b.example"]
	bob, carol, alice := newBox(), newBox(), newBox()
	dialUser(t, b, "bob", bob)
	dialUser(t, w.ps["c.example"], "carol", carol)
	dialUser(t, a, "alice", alice)
	uploadKPs(t, bob, "mimi://b.example/u/bob", 3)
	uploadKPs(t, carol, "mimi://c.example/u/carol", 3)
	remote, err := alice.c.Remote(client.RemoteConfig{PeerURL: func(d string) string { return "http://" + w.gw[d] }})
	if err != nil {
		t.Fatal(err)
	}
	bobRef := fetchRef(t, remote, "b.example", "mimi://b.example/u/bob")
	carolRef := fetchRef(t, remote, "c.example", "mimi://c.example/u/carol")
	carolRef2 := fetchRef(t, remote, "c.example", "mimi://c.example/u/carol")
	bogus := randBytes(32)

	gid := createWithWelcome(t, alice.c, [][]byte{bobRef, carolRef, bogus, carolRef2},
		[]string{"b.example", "c.example", "b.example", "b.example"})
	poll(t, "the Welcomes are delivered and acknowledged", func() bool {
		nb, _ := bob.count(gid)
		nc, _ := carol.count(gid)
		return nb > 0 && nc > 0 && settled(t, a, "b.example") && settled(t, a, "c.example") && drained(t, bob) && drained(t, carol)
	})
	for _, c := range []struct {
		name string
		box  *welcomeBox
		ref  []byte
	}{{"bob", bob, bobRef}, {"carol", carol, carolRef}} {
		n, refs := c.box.count(gid)
		if n != 1 || len(refs) != 1 || !bytes.Equal(refs[0], c.ref) {
			t.Errorf("%s got the Welcome %d times, last with refs %x; want once with %x", c.name, n, refs, c.ref)
		}
	}

	// B refused the two refs of the offer, logged once; A logged the refusal once.
	const refusedLine = "never served; refused"
	if n := w.logs["b.example"].count(refusedLine); n != 1 {
		t.Errorf("B logged %d refusals of the offer, want 1", n)
	}
	if n := w.logs["a.example"].count("peer refused KeyPackageRefs of a Welcome"); n != 1 {
		t.Errorf("A logged %d partial refusals, want 1", n)
	}
	if n := w.logs["c.example"].count(refusedLine); n != 0 {
		t.Errorf("C logged %d refusals: it was offered a ref that was not named for it", n)
	}

	// A hostile hub: Welcomes and offers for refs B never served, or served by C.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wb := randWelcome(t, bogus)
	for _, refs := range [][][]byte{{bogus}, {carolRef2}, {carolRef}} {
		push, _ := (&protocol.WelcomePush{WelcomeID: 1 << 40, Delivery: protocol.WelcomeDelivery{GroupID: gid,
			KeyPackageRefs: refs, Welcome: wb}}).MarshalBinary()
		if _, err := a.Federation.Call(ctx, "b.example", protocol.EnvelopeWelcome, push); !isCode(err, protocol.CodeNotFound) {
			t.Errorf("welcome for %x: %v, want not_found", refs[0][:4], err)
		}
		offer, _ := (&protocol.WelcomeInit{WelcomeID: 1 << 40, Request: protocol.WelcomeInitRequest{KeyPackageRefs: refs}}).MarshalBinary()
		if _, err := a.Federation.Call(ctx, "b.example", protocol.EnvelopeWelcomeInit, offer); !isCode(err, protocol.CodeNotFound) {
			t.Errorf("welcome_init for %x: %v, want not_found", refs[0][:4], err)
		}
	}
	// An offer of refs B served and not: only the served one is accepted.
	offer, _ := (&protocol.WelcomeInit{WelcomeID: 1 << 41, Request: protocol.WelcomeInitRequest{
		KeyPackageRefs: [][]byte{bogus, bobRef, carolRef}}}).MarshalBinary()
	body, err := a.Federation.Call(ctx, "b.example", protocol.EnvelopeWelcomeInit, offer)
	var ans protocol.WelcomeInitAnswer
	if err != nil || ans.UnmarshalBinary(body) != nil || len(ans.Accepted) != 1 || !bytes.Equal(ans.Accepted[0], bobRef) {
		t.Fatalf("mixed offer: %v, accepted %x; want bob's ref only", err, ans.Accepted)
	}
	if n := w.logs["b.example"].count(refusedLine); n != 1+7 {
		t.Errorf("B logged %d refusals, want one per request: 8", n)
	}
	if !drained(t, bob) {
		t.Fatal("a refused Welcome reached bob's mailbox")
	}
	if n, _ := bob.count(gid); n != 1 {
		t.Fatalf("bob got the Welcome %d times after the refused pushes", n)
	}
}

// TestWelcomesAcrossRestarts: B is down when alice's Welcomes for bob are stored;
// A queues the first offer, restarts (its sender finds the offer queued and does
// not queue it again) and queues the second; B comes back on its store, and bob
// gets each Welcome exactly once.
func TestWelcomesAcrossRestarts(t *testing.T) {
	w := newFedWorld(t, "a.example", "b.example")
	bob, alice := newBox(), newBox()
	dialUser(t, w.ps["b.example"], "bob", bob)
	dialUser(t, w.ps["a.example"], "alice", alice)
	uploadKPs(t, bob, "mimi://b.example/u/bob", 3)
	remote, err := alice.c.Remote(client.RemoteConfig{PeerURL: func(d string) string { return "http://" + w.gw[d] }})
	if err != nil {
		t.Fatal(err)
	}
	ref1 := fetchRef(t, remote, "b.example", "mimi://b.example/u/bob")
	ref2 := fetchRef(t, remote, "b.example", "mimi://b.example/u/bob")
	bob.c.Close(context.Background())
	w.ps["b.example"].Stop()

	gid1 := createWithWelcome(t, alice.c, [][]byte{ref1}, []string{"b.example"})
	poll(t, "A queues the offer for B", func() bool { return len(queuedWelcomes(t, w.ps["a.example"], "b.example")) == 1 })
	alice.c.Close(context.Background())
	a := w.restart("a.example")
	redial(t, a, alice)
	gid2 := createWithWelcome(t, alice.c, [][]byte{ref2}, []string{"b.example"})
	var ids []uint64
	poll(t, "A queues the second offer", func() bool {
		ids = queuedWelcomes(t, a, "b.example")
		return len(ids) >= 2
	})
	if len(ids) != 2 || ids[0] == ids[1] {
		t.Fatalf("A queued Welcomes %v for B; want two different ones, once each", ids)
	}

	b := w.start("b.example", nil)
	redial(t, b, bob)
	poll(t, "bob gets both Welcomes", func() bool {
		n1, _ := bob.count(gid1)
		n2, _ := bob.count(gid2)
		return n1 > 0 && n2 > 0 && settled(t, a, "b.example") && drained(t, bob)
	})
	for _, g := range []struct {
		gid, ref []byte
	}{{gid1, ref1}, {gid2, ref2}} {
		if n, refs := bob.count(g.gid); n != 1 || len(refs) != 1 || !bytes.Equal(refs[0], g.ref) {
			t.Errorf("bob got Welcome %x %d times with refs %x; want once with %x", g.gid[:4], n, refs, g.ref)
		}
	}
}

func randWelcome(t testing.TB, ref []byte) []byte {
	welcome := &mls.Welcome{CipherSuite: 1, EncryptedGroupInfo: randBytes(50), Secrets: []mls.EncryptedGroupSecrets{{NewMember: ref,
		EncryptedGroupSecrets: mls.HPKECiphertext{KEMOutput: randBytes(32), Ciphertext: randBytes(50)}}}}
	wb, err := (&mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatWelcome, Welcome: welcome}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return wb
}

func isCode(err error, want protocol.Code) bool {
	code, ok := protocol.CodeOf(err)
	return err != nil && ok && code == want
}

// TestWelcomesPeerAddedAgain: removing a peer drops its queue with the offer in
// it; once the peer is on the allow-list again, its stored Welcome is offered again
// and delivered once.
func TestWelcomesPeerAddedAgain(t *testing.T) {
	w := newFedWorld(t, "a.example", "b.example")
	a := w.ps["a.example"]
	bob, alice := newBox(), newBox()
	dialUser(t, w.ps["b.example"], "bob", bob)
	dialUser(t, a, "alice", alice)
	uploadKPs(t, bob, "mimi://b.example/u/bob", 1)
	remote, err := alice.c.Remote(client.RemoteConfig{PeerURL: func(d string) string { return "http://" + w.gw[d] }})
	if err != nil {
		t.Fatal(err)
	}
	ref := fetchRef(t, remote, "b.example", "mimi://b.example/u/bob")
	bob.c.Close(context.Background())
	w.ps["b.example"].Stop()
	gid := createWithWelcome(t, alice.c, [][]byte{ref}, []string{"b.example"})
	poll(t, "A queues the offer for B", func() bool { return len(queuedWelcomes(t, a, "b.example")) == 1 })

	ctx := context.Background()
	if ok, err := a.DB.RemovePeer(ctx, "b.example"); !ok || err != nil {
		t.Fatalf("remove peer: %v %v", ok, err)
	}
	if _, err := federation.AddPeer(ctx, a.DB, "a.example", federation.Peer{Domain: "b.example", URL: "wss://" + w.fed["b.example"],
		CA: w.ca.CertPEM()}); err != nil {
		t.Fatal(err)
	}
	if err := a.Federation.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	poll(t, "A offers the Welcome again on the new queue", func() bool { return len(queuedWelcomes(t, a, "b.example")) == 1 })
	b := w.start("b.example", nil)
	redial(t, b, bob)
	poll(t, "bob gets the Welcome", func() bool {
		n, _ := bob.count(gid)
		return n > 0 && settled(t, a, "b.example") && drained(t, bob)
	})
	if n, _ := bob.count(gid); n != 1 {
		t.Fatalf("bob got the Welcome %d times", n)
	}
}

// groupWithBob has alice (on a.example) create a group hosted there whose Welcome
// names a fresh KeyPackage of bob (on b.example), fetched through a.example's relay.
// The Welcome may still be on its way when it returns.
func groupWithBob(ctx context.Context, t *testing.T, w *fedWorld, alice, bob *welcomeBox, o mlstest.Options) *mlstest.Group {
	t.Helper()
	uploadKPs(t, bob, "mimi://b.example/u/bob", 1)
	remote, err := alice.c.Remote(client.RemoteConfig{PeerURL: func(d string) string { return "http://" + w.gw[d] }})
	if err != nil {
		t.Fatal(err)
	}
	bobRef := fetchRef(t, remote, "b.example", "mimi://b.example/u/bob")
	o.Identities = []string{"mimi://a.example/u/alice"}
	g, err := mlstest.NewGroup(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.CreateGroup(ctx, &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey,
		WelcomeData: &protocol.WelcomeData{Welcome: randWelcome(t, bobRef), ServiceProviders: []string{"b.example"}}}); err != nil {
		t.Fatal(err)
	}
	return g
}
