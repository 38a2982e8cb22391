package provider_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/natsbus/natstest"
	"github.com/mimids/mimids/postgres/pgtest"
	"github.com/mimids/mimids/protocol"
)

// clusterStores opens the store that n nodes of one provider share, one handle per
// node. On PostgreSQL each node has a pool of its own; on SQLite, whose lock admits
// one server process per file, the in-process nodes share one handle (or open the
// file as the admin CLI does), and what one node commits still reaches the others'
// sockets only through NATS (or the store).
type clusterStores func(t testing.TB, n int) []provider.Store

func sharedSQLite(t testing.TB, n int) []provider.Store {
	cfg := provider.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Store.Synchronous = "normal"
	db, err := provider.ServeStore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	dbs := make([]provider.Store, n)
	for i := range dbs {
		dbs[i] = db
	}
	return dbs
}

// postgresNodes gives each node a pool of its own over one new database on srv,
// as nodes on several machines have.
func postgresNodes(srv *pgtest.Server) clusterStores {
	return func(t testing.TB, nodes int) []provider.Store {
		cfg := provider.DefaultConfig()
		cfg.DataDir = t.TempDir()
		cfg.Store.Driver, cfg.Store.DSN = provider.DriverPostgres, srv.NewDatabase(t)
		dbs := make([]provider.Store, nodes)
		for i := range dbs {
			db, err := provider.ServeStore(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			dbs[i] = db
		}
		return dbs
	}
}

// fileSQLite opens one SQLite file n times: the first node holds it as a server
// does, the others open it as the admin CLI does beside a server. Each node has its
// own writer and readers, as nodes on one database have their own pools.
func fileSQLite(t testing.TB, n int) []provider.Store {
	cfg := provider.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Store.Synchronous = "normal"
	dbs := make([]provider.Store, n)
	for i := range dbs {
		open := provider.OpenStore
		if i == 0 {
			open = provider.ServeStore
		}
		db, err := open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
	}
	return dbs
}

// cluster is n nodes of a.example on one store and one NATS server.
type cluster struct {
	nats  *natstest.Server
	nodes []*providertest.Provider
	admin string // the admin token (one store, one token for every node)
}

// startCluster starts n nodes; unless edit says otherwise their safety-net poll
// is an hour, so what reaches another node within a test came through NATS.
func startCluster(t testing.TB, stores clusterStores, n int, edit func(*provider.Config)) *cluster {
	t.Helper()
	c := &cluster{nats: natstest.Start(t)}
	for i, db := range stores(t, n) {
		p := providertest.StartNode(t, "a.example", db, func(cfg *provider.Config) {
			cfg.Cluster.NATSURL = c.nats.URL()
			cfg.Cluster.NodeID = fmt.Sprintf("node%d", i+1)
			cfg.Cluster.PollInterval = gateway.Duration(time.Hour)
			cfg.Hub.RatePerSecond = -1
			if edit != nil {
				edit(cfg)
			}
		})
		if p.AdminToken != "" {
			c.admin = p.AdminToken
		}
		c.nodes = append(c.nodes, p)
	}
	for _, p := range c.nodes {
		p.AdminToken = c.admin
		waitFor(t, "the node connects to NATS", func() bool { return p.Bus.Health() == nil })
	}
	return c
}

// pushRecorder records a device's pushes and partition events with their arrival times.
type pushRecorder struct {
	mu     sync.Mutex
	pushes []protocol.Push
	at     []time.Time
	events []protocol.PartitionEvent
}

func (r *pushRecorder) onPush(f protocol.Frame) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch f := f.(type) {
	case *protocol.Push:
		r.pushes = append(r.pushes, *f)
		r.at = append(r.at, time.Now())
	case *protocol.PartitionEvent:
		r.events = append(r.events, *f)
	}
}

func (r *pushRecorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pushes)
}

func (r *pushRecorder) terminated() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events) > 0 && r.events[len(r.events)-1].Event == protocol.EventTerminated
}

// check fails unless the pushes are exactly the messages sent, in counter order,
// each once.
func (r *pushRecorder) check(t *testing.T, who string, sent map[uint32][]byte) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pushes) != len(sent) {
		t.Fatalf("%s got %d pushes for %d messages", who, len(r.pushes), len(sent))
	}
	for i, p := range r.pushes {
		var m protocol.Message
		if err := m.UnmarshalBinary(p.Message); err != nil {
			t.Fatalf("%s: push %d: %v", who, i, err)
		}
		if p.Counter != uint32(i) || !bytes.Equal(m.Message, sent[p.Counter]) {
			t.Fatalf("%s: push %d has counter %d; want counter %d with its message", who, i, p.Counter, i)
		}
	}
}

// device is one client of alice's on one node.
type device struct {
	c      *client.Client
	pushes *pushRecorder
	box    *noticeBox
	id     int64
}

func dialDevice(t testing.TB, p *providertest.Provider, name string) *device {
	t.Helper()
	ctx := context.Background()
	cl, token, err := p.Dir.AddClient(ctx, "alice", name, true)
	if err != nil {
		t.Fatal(err)
	}
	d := &device{pushes: &pushRecorder{}, box: &noticeBox{}, id: cl.ID}
	d.c, err = client.Dial(ctx, client.Config{URL: p.Socket, Token: token, Handler: d.box.handler, OnPush: d.pushes.onPush})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.c.Close(context.Background()) })
	return d
}

// clusterGroup is alice's group, created through dev, with every device in subs
// subscribed to its partition from counter 0.
func clusterGroup(t testing.TB, dev *device, subs ...*device) *mlstest.Group {
	t.Helper()
	ctx := context.Background()
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{"mimi://a.example/u/alice"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dev.c.CreateGroup(ctx, &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey}); err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		if _, err := s.c.Subscribe(ctx, g.PartitionKey, 0); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

// sender sends application messages to a group and remembers them by counter.
type sender struct {
	g    *mlstest.Group
	mu   sync.Mutex
	sent map[uint32][]byte
}

func (s *sender) send(t testing.TB, d *device, n int) { s.sendSized(t, d, n, 60) }

func (s *sender) sendSized(t testing.TB, d *device, n, size int) {
	t.Helper()
	for range n {
		m, err := s.g.RandomApplication(size)
		if err != nil {
			t.Error(err)
			return
		}
		ctr, err := d.c.Send(context.Background(), &protocol.SendRequest{Message: m, PartitionKey: s.g.PartitionKey})
		if err != nil {
			t.Errorf("send: %v", err)
			return
		}
		s.mu.Lock()
		s.sent[ctr] = m
		s.mu.Unlock()
	}
}

func (s *sender) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sent)
}

func TestClusterSQLite(t *testing.T) {
	t.Run("one handle", func(t *testing.T) { testCluster(t, sharedSQLite) })
	t.Run("a handle per node", func(t *testing.T) { testCluster(t, fileSQLite) })
}

// TestClusterPostgres is the same suite with every node on a pool of its own over
// one PostgreSQL database, as nodes on several machines are.
func TestClusterPostgres(t *testing.T) {
	testCluster(t, postgresNodes(pgtest.StartServer(t)))
}

// testCluster is the two-node suite over any store that several nodes can share.
func testCluster(t *testing.T, stores clusterStores) {
	t.Run("sends from both nodes reach every subscriber in one order", func(t *testing.T) { testClusterSends(t, stores) })
	t.Run("mailbox entries and revocations cross nodes", func(t *testing.T) { testClusterMailboxRevoke(t, stores) })
	t.Run("NATS restarted mid-stream", func(t *testing.T) { testClusterNATSRestart(t, stores) })
	t.Run("the poll finds what no node announced", func(t *testing.T) { testClusterPoll(t, stores) })
	t.Run("a lost notification is a gap filled from the store", func(t *testing.T) { testClusterGap(t, stores) })
}

// testClusterGap: a message committed with no notification (as if NATS dropped it)
// and then one announced as usual: the subscriber on node 2 sees the gap, reads the
// store, and gets both once, in counter order.
func testClusterGap(t *testing.T, stores clusterStores) {
	c := startCluster(t, stores, 2, nil)
	phone, watch2 := dialDevice(t, c.nodes[0], "phone"), dialDevice(t, c.nodes[1], "watch2")
	g := clusterGroup(t, phone, watch2)
	s := &sender{g: g, sent: map[uint32][]byte{}}
	s.send(t, phone, 3)
	poll(t, "node 2's subscriber follows", func() bool { return watch2.pushes.count() == 3 })
	m, err := g.RandomApplication(60)
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.nodes[0].DB.Append(context.Background(), hub.AppendRequest{Masked: g.MaskedPartitionKey(),
		RequestHash: randomBytes(32), ContentType: mls.ContentTypeApplication, Message: m, At: time.Now()}, nil)
	if err != nil || res.Counter != 3 {
		t.Fatalf("append without a notification: counter %d, %v", res.Counter, err)
	}
	s.sent[res.Counter] = m
	s.send(t, phone, 2)
	poll(t, "node 2's subscriber fills the gap", func() bool { return watch2.pushes.count() >= 6 })
	watch2.pushes.check(t, "node 2's subscriber", s.sent)
}

// testClusterSends: devices on node 1 and node 2 send to one group at once (some
// messages too large to travel whole); a subscriber on each node gets every message
// once, in counter order, and the
// partition's termination on node 1 reaches node 2's subscriber.
func testClusterSends(t *testing.T, stores clusterStores) {
	c := startCluster(t, stores, 2, nil)
	phone, laptop := dialDevice(t, c.nodes[0], "phone"), dialDevice(t, c.nodes[1], "laptop")
	watch1, watch2 := dialDevice(t, c.nodes[0], "watch1"), dialDevice(t, c.nodes[1], "watch2")
	g := clusterGroup(t, phone, watch1, watch2)
	s := &sender{g: g, sent: map[uint32][]byte{}}
	var wg sync.WaitGroup
	wg.Go(func() { s.send(t, phone, 40) })
	wg.Go(func() { s.send(t, laptop, 40) })
	wg.Go(func() { s.sendSized(t, laptop, 5, 12_000) }) // past MaxInline: announced by counter
	wg.Wait()
	for i, w := range []*device{watch1, watch2} {
		poll(t, fmt.Sprintf("node %d's subscriber gets every message", i+1), func() bool { return w.pushes.count() >= s.total() })
		w.pushes.check(t, fmt.Sprintf("node %d's subscriber", i+1), s.sent)
	}
	if err := c.nodes[0].Hub.Terminate(context.Background(), g.GroupID, g.MaskedPartitionKey()); err != nil {
		t.Fatal(err)
	}
	poll(t, "node 2's subscriber gets the terminated event", watch2.pushes.terminated)
}

// testClusterMailboxRevoke: a notice posted on node 1 reaches a device connected to
// node 2; revoking that device on node 1 closes its socket on node 2 with 4003.
func testClusterMailboxRevoke(t *testing.T, stores clusterStores) {
	c := startCluster(t, stores, 2, nil)
	laptop := dialDevice(t, c.nodes[1], "laptop")
	cls, err := c.nodes[0].Dir.ListClients(context.Background(), "alice")
	if err != nil || len(cls) != 1 {
		t.Fatalf("alice's clients: %v, %v", cls, err)
	}
	uri := c.nodes[0].Dir.ClientURI(cls[0])
	if st, _, out := adminNotice(t, c.nodes[0], map[string]any{"client": uri}, "hello from node 1"); st != http.StatusAccepted {
		t.Fatalf("notice: %d %v", st, out)
	}
	poll(t, "the device on node 2 gets the notice", func() bool { return len(laptop.box.noticeTexts()) == 1 })
	start := time.Now()
	req, _ := http.NewRequest(http.MethodDelete, c.nodes[0].Base+"/admin/v1/users/alice/clients/laptop", nil)
	req.Header.Set("Authorization", "Bearer "+c.admin)
	resp, err := (&http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	select {
	case <-laptop.c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the revoked device's socket on node 2 stays open")
	}
	if err := laptop.c.Err(); err == nil || !errors.Is(err, client.ErrRevoked) {
		t.Fatalf("the device stopped with %v, want revoked", err)
	}
	t.Logf("revoked on node 1, socket on node 2 closed after %v", time.Since(start))
}

// testClusterNATSRestart: NATS goes away while node 1 sequences, and comes back
// empty; node 2's subscriber catches up from the store and then follows live, with
// nothing lost, reordered or duplicated.
func testClusterNATSRestart(t *testing.T, stores clusterStores) {
	c := startCluster(t, stores, 2, nil)
	phone, watch2 := dialDevice(t, c.nodes[0], "phone"), dialDevice(t, c.nodes[1], "watch2")
	g := clusterGroup(t, phone, watch2)
	s := &sender{g: g, sent: map[uint32][]byte{}}
	s.send(t, phone, 20)
	poll(t, "node 2's subscriber follows", func() bool { return watch2.pushes.count() == 20 })
	resyncs := c.nodes[1].Bus.Stats().Resyncs
	c.nats.Stop()
	s.send(t, phone, 20) // node 2 cannot hear of these
	c.nats.Restart(t)
	poll(t, "node 2 reconnects and resyncs", func() bool { return c.nodes[1].Bus.Stats().Resyncs > resyncs })
	poll(t, "node 2's subscriber catches up", func() bool { return watch2.pushes.count() >= 40 })
	// Notifications from before node 2 was subscribed again are lost (node 1 may
	// flush what it buffered while NATS was away before that), as may be the first
	// ones of the first batch (sent while node 2's subscription was on its way):
	// the subscriber had those from the store. The ones after node 2 is back all
	// reach it: node 1 sends them, or buffers them until it is back too.
	received := c.nodes[1].Bus.Stats().Received
	s.send(t, phone, 20)
	poll(t, "node 2's subscriber follows again", func() bool { return watch2.pushes.count() >= 60 })
	watch2.pushes.check(t, "node 2's subscriber", s.sent)
	// The subscriber may have had the last entries from the store (a resync) before
	// their notifications reached node 2: the count of received ones catches up.
	poll(t, "node 2 counts the notifications it received", func() bool {
		return c.nodes[1].Metrics(t)["mimids_cluster_received_total"] >= float64(received+20)
	})
	m := c.nodes[1].Metrics(t)
	t.Logf("node 2 received %d notifications before the last 20 messages, %.0f after", received, m["mimids_cluster_received_total"])
	if m["mimids_cluster_resyncs_total"] < 2 || m["mimids_cluster_nats_connected"] != 1 || m["mimids_cluster_received_total"] < float64(received+20) {
		t.Fatalf("node 2's cluster metrics: resyncs %v, connected %v, received %v", m["mimids_cluster_resyncs_total"],
			m["mimids_cluster_nats_connected"], m["mimids_cluster_received_total"])
	}
}

// testClusterPoll: a termination written to the store with no notification (as by
// a node that died right after its commit) reaches node 2's subscriber through the
// safety-net poll.
func testClusterPoll(t *testing.T, stores clusterStores) {
	c := startCluster(t, stores, 2, func(cfg *provider.Config) { cfg.Cluster.PollInterval = gateway.Duration(200 * time.Millisecond) })
	phone, watch2 := dialDevice(t, c.nodes[0], "phone"), dialDevice(t, c.nodes[1], "watch2")
	g := clusterGroup(t, phone, watch2)
	s := &sender{g: g, sent: map[uint32][]byte{}}
	s.send(t, phone, 1)
	poll(t, "node 2's subscriber follows", func() bool { return watch2.pushes.count() == 1 })
	bus := c.nodes[1].Bus
	polled := bus.Stats().Polled
	poll(t, "node 2 polls the partition twice", func() bool { return bus.Stats().Polled >= polled+2 })
	pokes := bus.Stats().PollPokes
	if _, err := c.nodes[0].DB.Terminate(context.Background(), g.MaskedPartitionKey(), time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	poll(t, "node 2's subscriber gets the terminated event", watch2.pushes.terminated)
	if bus.Stats().PollPokes == pokes {
		t.Fatal("the event did not come from node 2's poll")
	}
}

// BenchmarkClusterFanOut sends to a group with one subscriber on the sending node
// and one on the other, one message at a time (each waits for both pushes), and
// reports the time from Send to each push at its p50 and p99, and the other
// node's push less this node's (nats-added: what NATS adds).
func BenchmarkClusterFanOut(b *testing.B) {
	c := startCluster(b, sharedSQLite, 2, nil)
	phone := dialDevice(b, c.nodes[0], "phone")
	watch1, watch2 := dialDevice(b, c.nodes[0], "watch1"), dialDevice(b, c.nodes[1], "watch2")
	g := clusterGroup(b, phone, watch1, watch2)
	s := &sender{g: g, sent: map[uint32][]byte{}}
	var local, remote, added []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		s.send(b, phone, 1)
		waitFor(b, "both pushes", func() bool { return watch1.pushes.count() > i && watch2.pushes.count() > i })
		local = append(local, watch1.pushes.arrival(i).Sub(start))
		remote = append(remote, watch2.pushes.arrival(i).Sub(start))
		added = append(added, watch2.pushes.arrival(i).Sub(watch1.pushes.arrival(i)))
	}
	b.StopTimer()
	for _, m := range []struct {
		name string
		ds   []time.Duration
	}{{"same-node", local}, {"other-node", remote}, {"nats-added", added}} {
		sort.Slice(m.ds, func(i, j int) bool { return m.ds[i] < m.ds[j] })
		b.ReportMetric(float64(m.ds[len(m.ds)/2].Microseconds()), m.name+"-p50-µs")
		b.ReportMetric(float64(m.ds[len(m.ds)*99/100].Microseconds()), m.name+"-p99-µs")
	}
}

func (r *pushRecorder) arrival(i int) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.at[i]
}

// noticeBox collects the notices a device took from its mailbox.
type noticeBox struct {
	mu    sync.Mutex
	texts []string
}

func (b *noticeBox) handler(_ context.Context, d *client.Delivery) error {
	if n, err := d.Notice(); err == nil {
		b.mu.Lock()
		b.texts = append(b.texts, n.Text)
		b.mu.Unlock()
	}
	return nil
}

func (b *noticeBox) noticeTexts() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.texts...)
}
