package provider_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/federation/fedcert"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/natsbus/natstest"
	"github.com/mimids/mimids/postgres/pgtest"
	"github.com/mimids/mimids/protocol"
)

// leaseTTL is the link leases' term in these tests.
const leaseTTL = 3 * time.Second

// clusterFed is provider a.example as two nodes on one store and one NATS server,
// federating with b.example (one node) over real mTLS links.
type clusterFed struct {
	t     *testing.T
	ca    *fedcert.CA
	certs string
	nats  *natstest.Server
	a     []*providertest.Provider
	b     *providertest.Provider
	bGW   string // b's gateway address
	bFed  string // b's federation address
	bData string
	rec   *received // what b's test handler got
}

func startClusterFed(t *testing.T, stores clusterStores) *clusterFed {
	f := &clusterFed{t: t, certs: t.TempDir(), nats: natstest.Start(t), bData: t.TempDir(), rec: &received{got: map[string][]string{}}}
	var err error
	if f.ca, err = fedcert.NewCA("test", fedcert.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"a.example", "b.example"} {
		iss, err := f.ca.Issue(d, fedcert.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := iss.Write(f.certs, d); err != nil {
			t.Fatal(err)
		}
	}
	bln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.bGW = bln.Addr().String()
	for i, db := range stores(t, 2) {
		f.a = append(f.a, providertest.StartNode(t, "a.example", db, func(c *provider.Config) {
			f.fedConfig("a.example", c)
			c.Cluster.NATSURL = f.nats.URL()
			c.Cluster.NodeID = fmt.Sprintf("node%d", i+1)
			c.Cluster.PollInterval = gateway.Duration(time.Hour) // only NATS carries what crosses nodes
			c.Cluster.LeaseTTL = gateway.Duration(leaseTTL)
			// No queue poll: an envelope queued on the other node reaches the
			// owner's link through its NATS notice.
			c.Federation.PeerRefresh = gateway.Duration(time.Hour)
			c.Peers = []provider.PeerConfig{{Domain: "b.example", URL: "http://" + f.bGW}}
		}))
	}
	f.bFed = "127.0.0.1:0"
	f.startB(bln)
	ctx := context.Background()
	aFed := f.a[0].Federation.Addr().String() // b dials a's first node (a's owner node dials b)
	if _, err := federation.AddPeer(ctx, f.b.DB, "b.example", federation.Peer{Domain: "a.example", URL: "wss://" + aFed, CA: f.ca.CertPEM()}); err != nil {
		t.Fatal(err)
	}
	if _, err := federation.AddPeer(ctx, f.a[0].DB, "a.example", federation.Peer{Domain: "b.example", URL: "wss://" + f.bFed, CA: f.ca.CertPEM()}); err != nil {
		t.Fatal(err)
	}
	for _, p := range append([]*providertest.Provider{f.b}, f.a...) {
		if err := p.Federation.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range f.a {
		waitFor(t, "the node connects to NATS", func() bool { return p.Bus.Health() == nil })
	}
	return f
}

func (f *clusterFed) fedConfig(domain string, c *provider.Config) {
	c.Federation.Listen = "127.0.0.1:0"
	c.Federation.CertFile = filepath.Join(f.certs, fedcert.CertFile(domain))
	c.Federation.KeyFile = filepath.Join(f.certs, fedcert.KeyFile(domain))
	c.Federation.MinBackoff = gateway.Duration(20 * time.Millisecond)
	c.Federation.MaxBackoff = gateway.Duration(200 * time.Millisecond)
	c.Federation.PeerRefresh = gateway.Duration(100 * time.Millisecond)
	c.Federation.PingInterval = gateway.Duration(time.Second)
	c.Federation.WriteTimeout = gateway.Duration(3 * time.Second)
	c.Hub.RatePerSecond = -1
}

// startB starts b.example on its data directory and addresses.
func (f *clusterFed) startB(ln net.Listener) {
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", f.bGW); err != nil {
			f.t.Fatal(err)
		}
	}
	f.b = providertest.StartWith(f.t, "b.example", ln, func(c *provider.Config) {
		f.fedConfig("b.example", c)
		c.DataDir = f.bData
		c.Federation.Listen = f.bFed
		c.Peers = []provider.PeerConfig{{Domain: "a.example", URL: f.a[0].Base}}
	}, func(p *provider.Provider) {
		p.Federation.Handle(typeTest, func(_ context.Context, in *federation.Inbound) ([]byte, error) {
			f.rec.add("b.example", in)
			return nil, nil
		})
	})
	f.bFed = f.b.Federation.Addr().String()
}

// owner waits until one of a's nodes holds b's lease and runs the link, and
// returns it and the other.
func (f *clusterFed) owner() (own, other *providertest.Provider) {
	f.t.Helper()
	poll(f.t, "a node of a holds b's lease and its link is up", func() bool {
		for i, p := range f.a {
			if st, ok := p.Federation.Status("b.example"); ok && st.State == federation.StateUp && p.Leaser.Holds("b.example") {
				own, other = p, f.a[1-i]
				return true
			}
		}
		return false
	})
	if other.Leaser.Holds("b.example") {
		f.t.Fatal("both nodes hold b's lease")
	}
	if st, _ := other.Federation.Status("b.example"); st.State == federation.StateUp {
		f.t.Fatal("the node without the lease runs a link to b")
	}
	return own, other
}

// fedDevice is one client of a user on one node: its Welcomes and pushes.
type fedDevice struct {
	*welcomeBox
	pushes *pushLog
}

func dialFedDevice(t *testing.T, p *providertest.Provider, user, name string) *fedDevice {
	t.Helper()
	_, token, err := p.Dir.AddClient(context.Background(), user, name, true)
	if err != nil {
		t.Fatal(err)
	}
	d := &fedDevice{welcomeBox: newBox(), pushes: &pushLog{}}
	d.token = token
	c, err := client.Dial(context.Background(), client.Config{URL: p.Socket, Token: token, Handler: d.handler, OnPush: d.pushes.onPush})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	d.c = c
	return d
}

// groupFor has host (a client of a user on hostDomain) create a group hosted
// there whose Welcome names a fresh KeyPackage of member (uri on memberDomain,
// reached at memberGW), and waits for member to take it.
func groupFor(ctx context.Context, t *testing.T, host *fedDevice, hostURI string, member *fedDevice, memberURI, memberDomain, memberGW string) *mlstest.Group {
	t.Helper()
	uploadKPs(t, member.welcomeBox, memberURI, 1)
	remote, err := host.c.Remote(client.RemoteConfig{PeerURL: func(string) string { return memberGW }})
	if err != nil {
		t.Fatal(err)
	}
	ref := fetchRef(t, remote, memberDomain, memberURI)
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{hostURI}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := host.c.CreateGroup(ctx, &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey,
		WelcomeData: &protocol.WelcomeData{Welcome: randWelcome(t, ref), ServiceProviders: []string{memberDomain}}}); err != nil {
		t.Fatal(err)
	}
	poll(t, memberURI+" gets the Welcome", func() bool { n, _ := member.count(g.GroupID); return n == 1 && drained(t, member.welcomeBox) })
	if _, err := member.c.Receive(ctx, g.PartitionKey, 0); err != nil { // the member's provider learns the hub
		t.Fatal(err)
	}
	return g
}

// sends sends n application messages of g through c and appends them to sent.
func sends(ctx context.Context, t *testing.T, g *mlstest.Group, c *client.Client, n int, sent *[][]byte) {
	t.Helper()
	for range n {
		m, err := g.RandomApplication(60)
		if err != nil {
			t.Fatal(err)
		}
		ctr, err := c.Send(ctx, &protocol.SendRequest{Message: m, PartitionKey: g.PartitionKey})
		if err != nil || int(ctr) != len(*sent) {
			t.Fatalf("send %d: counter %d, %v", len(*sent), ctr, err)
		}
		*sent = append(*sent, m)
	}
}

// pushesOf returns the pushes of the partition masked d got.
func pushesOf(d *fedDevice, masked []byte) []protocol.Push {
	var out []protocol.Push
	for _, p := range d.pushes.snapshot() {
		if bytes.Equal(p.Masked, masked) {
			out = append(out, p)
		}
	}
	return out
}

// checkPushes fails unless d got exactly sent on the partition masked, in counter
// order, each once.
func checkPushes(t *testing.T, who string, d *fedDevice, masked []byte, sent [][]byte) {
	t.Helper()
	poll(t, who+" gets every message", func() bool { return len(pushesOf(d, masked)) >= len(sent) })
	got := pushesOf(d, masked)
	if len(got) != len(sent) {
		t.Fatalf("%s: %d pushes for %d messages", who, len(got), len(sent))
	}
	for i, p := range got {
		var m protocol.Message
		if err := m.UnmarshalBinary(p.Message); err != nil || p.Counter != uint32(i) || !bytes.Equal(m.Message, sent[i]) {
			t.Fatalf("%s: push %d has counter %d (%v); want counter %d with the message sent", who, i, p.Counter, err, i)
		}
	}
}

// subscribeAll subscribes each device to g's partition from its start and
// returns the partition's masked key.
func subscribeAll(ctx context.Context, t *testing.T, g *mlstest.Group, ds ...*fedDevice) []byte {
	t.Helper()
	var masked []byte
	for _, d := range ds {
		m, err := d.c.Subscribe(ctx, g.PartitionKey, 0)
		if err != nil || masked != nil && !bytes.Equal(m, masked) {
			t.Fatalf("subscribe: %x, %v", m, err)
		}
		masked = m
	}
	return masked
}

func TestClusterFederationSQLite(t *testing.T) { testClusterFederation(t, fileSQLite) }

func TestClusterFederationPostgres(t *testing.T) {
	testClusterFederation(t, postgresNodes(pgtest.StartServer(t)))
}

// testClusterFederation: a.example runs as two nodes, b.example as one. One node
// of a holds b's lease and runs the link; the other does not dial b. A group hosted
// on a with bob (b) as member: bob's sends through b reach alice's devices on both
// of a's nodes. A group hosted on b with alice as member: a send from alice's
// fedDevice on the node without the lease works (its Call is forwarded to the owner
// over NATS), and her devices on both nodes get b's pushes of the partition (the
// owner's copy appends wake the other node). Then b goes away, envelopes are
// queued on both of a's nodes, and the owner dies holding the lease: the other
// node takes it over once it expires and delivers them once, in order.
func testClusterFederation(t *testing.T, stores clusterStores) {
	f := startClusterFed(t, stores)
	own, other := f.owner()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	aliceOwn := dialFedDevice(t, own, "alice", "laptop")
	aliceOther := dialFedDevice(t, other, "alice", "phone")
	bob := dialFedDevice(t, f.b, "bob", "phone")
	aGW := strings.TrimPrefix(f.a[0].Base, "http://")

	// A group hosted on a, created on the node without the lease.
	ga := groupFor(ctx, t, aliceOther, "mimi://a.example/u/alice", bob, "mimi://b.example/u/bob", "b.example", "http://"+f.bGW)
	maskedA := subscribeAll(ctx, t, ga, aliceOwn, aliceOther)
	var sentA [][]byte
	sends(ctx, t, ga, bob.c, 3, &sentA) // through b, to a's owner node
	sends(ctx, t, ga, aliceOther.c, 2, &sentA)
	sends(ctx, t, ga, bob.c, 3, &sentA)
	checkPushes(t, "alice on the owner node", aliceOwn, maskedA, sentA)
	checkPushes(t, "alice on the other node", aliceOther, maskedA, sentA)

	// A group hosted on b; alice's Welcome reaches her fedDevice on the other node.
	gb := groupFor(ctx, t, bob, "mimi://b.example/u/bob", aliceOther, "mimi://a.example/u/alice", "a.example", "http://"+aGW)
	var sentB [][]byte
	sends(ctx, t, gb, aliceOther.c, 2, &sentB) // a Call from the node without the lease
	maskedB := subscribeAll(ctx, t, gb, aliceOther, aliceOwn)
	sends(ctx, t, gb, bob.c, 4, &sentB)
	sends(ctx, t, gb, aliceOther.c, 1, &sentB)
	checkPushes(t, "alice on the other node, from a's copy", aliceOther, maskedB, sentB)
	checkPushes(t, "alice on the owner node, from a's copy", aliceOwn, maskedB, sentB)
	// What forwarding a Call over NATS adds to a send to a group hosted at b.
	for _, d := range []struct {
		name string
		c    *client.Client
	}{{"the owner node", aliceOwn.c}, {"the other node (forwarded)", aliceOther.c}} {
		start := time.Now()
		sends(ctx, t, gb, d.c, 10, &sentB)
		t.Logf("send to b's group from %s: %v each (mean of 10)", d.name, time.Since(start)/10)
	}
	checkPushes(t, "alice on the other node, after more sends", aliceOther, maskedB, sentB)

	// An envelope queued on the node without the lease goes out at once (its
	// NATS notice wakes the owner's link; no queue poll runs here).
	if _, err := other.Federation.Send(ctx, "b.example", typeTest, []byte("0")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b gets the envelope queued on the other node", func() bool { return f.rec.count("b.example", "a.example") == 1 })
	if st, err := other.DB.PeerStatuses(ctx); err != nil || len(st) != 1 || st[0].State != federation.StateUp {
		t.Fatalf("recorded link status %+v, %v; want up (the owner's)", st, err)
	}

	// b goes away; both nodes queue; the owner dies holding the lease.
	f.b.Stop()
	for i := 1; i <= 10; i++ {
		from := other
		if i > 5 {
			from = own
		}
		if _, err := from.Federation.Send(ctx, "b.example", typeTest, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	ownID := own.Config.Cluster.NodeID
	own.Stop()
	// A node that dies does not release its leases: put the lease back as the
	// dead node left it (unless the other node took it in between).
	ls, err := other.DB.AcquireLease(ctx, "b.example", ownID, time.Now(), leaseTTL)
	if err != nil {
		t.Fatal(err)
	}
	died := time.Now()
	f.startB(nil)
	poll(t, "the other node takes b's lease over", func() bool { return other.Leaser.Holds("b.example") })
	took := time.Since(died)
	if ls.Owner == ownID && took > leaseTTL+leaseTTL/3+2*time.Second {
		t.Fatalf("the lease was taken over %v after the owner died; term %v", took, leaseTTL)
	}
	t.Logf("lease held by %s at the death; taken over after %v (term %v)", ls.Owner, took, leaseTTL)
	poll(t, "b gets every queued envelope", func() bool { return f.rec.count("b.example", "a.example") >= 11 })
	f.rec.mu.Lock()
	got := strings.Join(f.rec.got["b.example"], ",")
	f.rec.mu.Unlock()
	want := "a.example:0"
	for i := 1; i <= 10; i++ {
		want += fmt.Sprintf(",a.example:%d", i)
	}
	if got != want {
		t.Fatalf("b got %s\nwant %s (each once, in order)", got, want)
	}
}
