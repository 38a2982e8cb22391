package provider_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/postgres/pgtest"
	"github.com/mimids/mimids/protocol"
)

// The hub's checks of handshakes on two nodes of one provider: each node keeps
// its own public state per partition, and must check a proposal or commit
// against the end of the partition's log, whichever node sequenced the rest.

func TestClusterHandshakesSQLite(t *testing.T) {
	t.Run("one handle", func(t *testing.T) { testClusterHandshakes(t, sharedSQLite) })
	t.Run("a handle per node", func(t *testing.T) { testClusterHandshakes(t, fileSQLite) })
}

func TestClusterHandshakesPostgres(t *testing.T) {
	testClusterHandshakes(t, postgresNodes(pgtest.StartServer(t)))
}

func testClusterHandshakes(t *testing.T, stores clusterStores) {
	t.Run("a proposal on one node, its commit on the other", func(t *testing.T) { testClusterProposalCommit(t, stores) })
	t.Run("two commits to one epoch on two nodes at once", func(t *testing.T) { testClusterConcurrentCommits(t, stores) })
}

// bob is b.example's bob as his provider forwards him over the federation link.
var bob = protocol.Sender{ClientURI: "mimi://b.example/d/bob/phone", UserURI: "mimi://b.example/u/bob", Peer: "b.example"}

// forkFixture is a ts-mls fixture with its branches (fork.json).
type forkFixture struct {
	tsFixture
	Branches []tsFixture `json:"branches"`
}

func loadForkFixture(t *testing.T, name string) *forkFixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "mls", "testdata", "tsmls", name))
	if err != nil {
		t.Fatal(err)
	}
	var f forkFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

// groupIDOf is the group ID in an encoded MLSMessage(GroupInfo).
func groupIDOf(t *testing.T, gi []byte) []byte {
	t.Helper()
	m, err := mls.DecodeMLSMessage(gi)
	if err != nil || m.GroupInfo == nil {
		t.Fatalf("GroupInfo: %v", err)
	}
	return m.GroupInfo.GroupContext.GroupID
}

// sameOnBothNodes fails unless both nodes serve the same GroupInfo for the group
// (want, if not nil) and see the same members in each partition of masked.
func sameOnBothNodes(t *testing.T, c *cluster, groupID, want []byte, masked ...[]byte) {
	t.Helper()
	ctx := context.Background()
	var infos [][]byte
	for i, n := range c.nodes {
		gi, err := n.Hub.GroupInfo(ctx, &protocol.GroupInfoRequest{GroupID: groupID})
		if err != nil {
			t.Fatalf("node %d: GroupInfo: %v", i+1, err)
		}
		infos = append(infos, gi.GroupInfo)
	}
	if !slices.Equal(infos[0], infos[1]) || (want != nil && !slices.Equal(infos[0], want)) {
		t.Fatal("the nodes serve different GroupInfos, or not the expected commit's")
	}
	for _, m := range masked {
		v1, err1 := c.nodes[0].Hub.View(ctx, m)
		v2, err2 := c.nodes[1].Hub.View(ctx, m)
		if err1 != nil || err2 != nil || !v1.Visible || v1.Epoch != v2.Epoch || !slices.Equal(v1.Members, v2.Members) {
			t.Fatalf("partition %x: node 1 sees %+v (%v), node 2 %+v (%v)", m, v1, err1, v2, err2)
		}
	}
}

// send sends a step through a device's socket (alice) or, forwarded for bob,
// to a node's hub, and checks its counter.
func sendStep(t *testing.T, f *tsFixture, i int, via any, want uint32) {
	t.Helper()
	var c uint32
	var err error
	switch via := via.(type) {
	case *device:
		c, err = via.c.Send(context.Background(), f.sendRequest(i))
	case *providertest.Provider:
		var resp protocol.SendResponse
		resp, err = via.Hub.Send(context.Background(), bob, f.sendRequest(i))
		c = resp.Counter
	}
	if err != nil || c != want {
		t.Fatalf("step %d: counter %d, %v; want counter %d", i, c, err, want)
	}
}

// testClusterProposalCommit: the ts-mls group create-2 (alice of a.example, bob
// of b.example) on two nodes. Node 2 loads epoch 1 (alice sends there); node 1
// sequences bob's Update proposal; alice's commit of it by reference reaches node
// 2, which must see the proposal: it is sequenced, and both nodes then serve the
// same GroupInfo and state. The following commits alternate between the nodes.
func testClusterProposalCommit(t *testing.T, stores clusterStores) {
	c := startCluster(t, stores, 2, nil)
	phone, laptop := dialDevice(t, c.nodes[0], "phone"), dialDevice(t, c.nodes[1], "laptop")
	f := loadTSFixture(t, "create-2.json")
	if _, err := phone.c.CreateGroup(context.Background(), &protocol.CreateGroupRequest{GroupInfo: f.Initial.GroupInfo,
		RatchetTree: f.Initial.RatchetTree, PartitionKey: f.Initial.PartitionKey}); err != nil {
		t.Fatal(err)
	}
	groupID := groupIDOf(t, f.Initial.GroupInfo)
	masked := func(pk []byte) []byte { s, _ := mls.CipherSuite(1).Suite(); return s.Hash(pk) }
	sendStep(t, f, 0, phone, 0)
	sendStep(t, f, 1, phone, 1) // alice adds bob
	sendStep(t, f, 2, c.nodes[0], 0)
	sendStep(t, f, 3, laptop, 1) // node 2 loads epoch 1
	sendStep(t, f, 4, c.nodes[0], 2)
	sendStep(t, f, 5, laptop, 3) // alice commits bob's proposal by reference, on node 2
	if st := c.nodes[1].Hub.Stats(); st.CatchUps < 1 || st.Checked != 1 {
		t.Fatalf("node 2's hub stats: %+v", st)
	}
	sameOnBothNodes(t, c, groupID, f.Steps[5].After.GroupInfoWithTree, masked(f.Steps[5].After.PartitionKey))
	sendStep(t, f, 7, c.nodes[1], 0) // bob's full commit, on node 2
	sameOnBothNodes(t, c, groupID, f.Steps[7].After.GroupInfoWithTree, masked(f.Steps[7].After.PartitionKey))
	sendStep(t, f, 10, phone, 0) // alice removes bob, on node 1
	sameOnBothNodes(t, c, groupID, f.Steps[10].After.GroupInfoWithTree, masked(f.Steps[10].After.PartitionKey))
}

// testClusterConcurrentCommits: fork.json's epoch 2 gets two commits at once,
// alice's (branch a) on node 1 and bob's (branch b) on node 2. As on one node,
// both are sequenced, one after the other: the first one opens the main line's
// partition, whose GroupInfo both nodes serve; the later one is a fork. Each new
// partition's state is the same on both nodes.
func testClusterConcurrentCommits(t *testing.T, stores clusterStores) {
	c := startCluster(t, stores, 2, nil)
	phone := dialDevice(t, c.nodes[0], "phone")
	f := loadForkFixture(t, "fork.json")
	if _, err := phone.c.CreateGroup(context.Background(), &protocol.CreateGroupRequest{GroupInfo: f.Initial.GroupInfo,
		RatchetTree: f.Initial.RatchetTree, PartitionKey: f.Initial.PartitionKey}); err != nil {
		t.Fatal(err)
	}
	groupID := groupIDOf(t, f.Initial.GroupInfo)
	masked := func(pk []byte) []byte { s, _ := mls.CipherSuite(1).Suite(); return s.Hash(pk) }
	sendStep(t, &f.tsFixture, 0, phone, 0)      // alice adds bob and carol
	sendStep(t, &f.tsFixture, 2, c.nodes[1], 0) // bob commits, on node 2
	sendStep(t, &f.tsFixture, 3, phone, 0)      // alice's message in epoch 2
	a, b := &f.Branches[0], &f.Branches[1]
	var ca, cb protocol.SendResponse
	var erra, errb error
	var wg sync.WaitGroup
	wg.Go(func() { ca.Counter, erra = phone.c.Send(context.Background(), a.sendRequest(0)) })
	wg.Go(func() { cb, errb = c.nodes[1].Hub.Send(context.Background(), bob, b.sendRequest(0)) })
	wg.Wait()
	if erra != nil || errb != nil || ca.Counter+cb.Counter != 3 {
		t.Fatalf("commits to epoch 2: alice's on node 1 counter %d (%v), bob's on node 2 counter %d (%v)", ca.Counter, erra, cb.Counter, errb)
	}
	if forks := c.nodes[0].Hub.Stats().Forks + c.nodes[1].Hub.Stats().Forks; forks != 1 {
		t.Fatalf("%d forks, want 1", forks)
	}
	first := a
	if cb.Counter < ca.Counter {
		first = b
	}
	sameOnBothNodes(t, c, groupID, first.Steps[0].After.GroupInfoWithTree,
		masked(a.Steps[0].After.PartitionKey), masked(b.Steps[0].After.PartitionKey))
	t.Logf("rechecks: node 1 %d, node 2 %d", c.nodes[0].Hub.Stats().Rechecks, c.nodes[1].Hub.Stats().Rechecks)
}

// TestClusterCLIMailboxMetrics: mailbox entries the admin CLI commits reach every
// node through the change log; each node counts them in
// mimids_mailbox_enqueued_cli_total and not in mimids_mailbox_enqueued_total, so
// that the sum of enqueued_total over the nodes counts every entry once.
func TestClusterCLIMailboxMetrics(t *testing.T) {
	c := startCluster(t, sharedSQLite, 2, nil)
	phone := dialDevice(t, c.nodes[0], "phone")
	// What `mimids notice` records after committing three entries for phone.
	if err := c.nodes[0].Dir.RecordChange(context.Background(), directory.Change{Kind: directory.ChangeMailbox, ClientID: phone.id, Entries: 3}); err != nil {
		t.Fatal(err)
	}
	for i, n := range c.nodes {
		poll(t, fmt.Sprintf("node %d counts the CLI's entries", i+1), func() bool { return n.Metrics(t)["mimids_mailbox_enqueued_cli_total"] == 3 })
		if m := n.Metrics(t); m["mimids_mailbox_enqueued_total"] != 0 {
			t.Fatalf("node %d: mimids_mailbox_enqueued_total %v, want 0 (the CLI's entries are not this node's)", i+1, m["mimids_mailbox_enqueued_total"])
		}
	}
}
