package hub_test

import (
	"context"
	"sync"
	"testing"

	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// secondNode is another Hub over e's store, as a second node of the provider
// is: it shares nothing in memory with e.h. wrap, if not nil, wraps the store it
// sees.
func secondNode(t *testing.T, e *env, wrap func(hub.Store) hub.Store) *hub.Hub {
	t.Helper()
	var s hub.Store = e.db
	if wrap != nil {
		s = wrap(s)
	}
	cfg := e.cfg
	cfg.Policy = e.pol
	h, err := hub.New(cfg, s, e.router, e.mbox)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// sendVia sends a fixture step through h.
func sendVia(t *testing.T, e *env, h *hub.Hub, st *tsStep) (uint32, error) {
	t.Helper()
	req := &protocol.SendRequest{Message: st.Message, PartitionKey: st.PartitionKey}
	if st.After != nil {
		req.CommitData = commitData(st, sendOpts{})
	}
	resp, err := h.Send(context.Background(), e.senderOf(st.Sender.Identity), roundTrip(t, req, &protocol.SendRequest{}))
	return resp.Counter, err
}

// TestProposalFromAnotherNode: node 2 caches the partition's state, node 1
// sequences bob's Update proposal, and alice's commit of it by reference reaches
// node 2, which catches up from the store and accepts it; node 2's state of the
// new epoch is the one node 1 computes.
func TestProposalFromAnotherNode(t *testing.T) {
	g := loadFixture(t, "create-2.json")
	e := newEnv(t, "a.example", nil)
	e.create(g)
	node2 := secondNode(t, e, nil)
	newReplayer(e, g).run(t, g.Steps[:4], sendOpts{})
	epoch1 := mask(t, g.Steps[4].PartitionKey)
	if v, err := node2.View(context.Background(), epoch1); err != nil || !v.Visible {
		t.Fatalf("node 2 loads epoch 1: %+v, %v", v, err)
	}
	if c, err := sendVia(t, e, e.h, &g.Steps[4]); err != nil || c != 2 {
		t.Fatalf("bob's proposal on node 1: %d, %v", c, err)
	}
	if c, err := sendVia(t, e, node2, &g.Steps[5]); err != nil || c != 3 {
		t.Fatalf("alice's commit of it on node 2: %d, %v", c, err)
	}
	if st := node2.Stats(); st.CatchUps != 1 || st.Checked != 1 {
		t.Fatalf("node 2's stats: %+v", st)
	}
	epoch2 := mask(t, g.Steps[5].After.PartitionKey)
	v1, err1 := e.h.View(context.Background(), epoch2)
	v2, err2 := node2.View(context.Background(), epoch2)
	if err1 != nil || err2 != nil || !v1.Visible || v1.Epoch != 2 || len(v1.Members) != 2 || !equalViews(v1, v2) {
		t.Fatalf("epoch 2 on node 1 %+v (%v), on node 2 %+v (%v)", v1, err1, v2, err2)
	}
	// The next commit (bob's, on node 1) is checked against node 2's result.
	if c, err := sendVia(t, e, e.h, &g.Steps[7]); err != nil || c != 0 {
		t.Fatalf("bob's commit on node 1: %d, %v", c, err)
	}
}

func equalViews(a, b hub.PartitionView) bool {
	if a.Visible != b.Visible || a.Epoch != b.Epoch || len(a.Members) != len(b.Members) {
		return false
	}
	for i := range a.Members {
		if a.Members[i] != b.Members[i] {
			return false
		}
	}
	return true
}

// injectingStore runs inject once, before the first conditional Append: another
// node's handshake lands between this node's check and its append.
type injectingStore struct {
	hub.Store
	once   sync.Once
	inject func()
}

func (s *injectingStore) Append(ctx context.Context, a hub.AppendRequest, published func(hub.Entry)) (hub.AppendResult, error) {
	if a.Checked {
		s.once.Do(s.inject)
	}
	return s.Store.Append(ctx, a, published)
}

// TestHandshakeBetweenCheckAndAppend: node 1 sequences a (PrivateMessage)
// proposal after node 2 checked alice's commit but before node 2 appends it. The
// append is refused as stale, node 2 applies the proposal and checks the commit
// again, and it is sequenced after the proposal, with the proposal accounted for
// (the partition now has a proposal the hub cannot read).
func TestHandshakeBetweenCheckAndAppend(t *testing.T) {
	g := loadFixture(t, "create-2.json")
	e := newEnv(t, "a.example", nil)
	e.create(g)
	newReplayer(e, g).run(t, g.Steps[:5], sendOpts{}) // up to bob's Update proposal (counter 2)
	private := g.Steps[3]
	private.Kind = "proposal"
	private.Message = remarshal(t, private.Message, func(m *mls.MLSMessage) { m.PrivateMessage.ContentType = mls.ContentTypeProposal })
	var injected error
	node2 := secondNode(t, e, func(s hub.Store) hub.Store {
		return &injectingStore{Store: s, inject: func() { _, injected = sendVia(t, e, e.h, &private) }}
	})
	c, err := sendVia(t, e, node2, &g.Steps[5])
	if injected != nil || err != nil || c != 4 {
		t.Fatalf("commit on node 2 after node 1's proposal: counter %d, %v (injected: %v)", c, err, injected)
	}
	if st := node2.Stats(); st.Rechecks != 1 || st.CatchUps != 1 || st.Sequenced != 1 {
		t.Fatalf("node 2's stats: %+v", st)
	}
	es, err := e.db.Entries(context.Background(), mask(t, g.Steps[5].PartitionKey), -1, 10, 1<<20)
	if err != nil || len(es) != 5 || es[3].ContentType != mls.ContentTypeProposal || es[4].ContentType != mls.ContentTypeCommit {
		t.Fatalf("log of epoch 1: %d entries, %v", len(es), err)
	}
}

// TestConcurrentCommitsOnTwoNodes: two commits to one epoch checked on two
// nodes at once are both sequenced, as on one node: one opens the main line,
// the other a fork; both nodes serve the same GroupInfo.
func TestConcurrentCommitsOnTwoNodes(t *testing.T) {
	g := loadFixture(t, "fork.json")
	e := newEnv(t, "a.example", nil)
	e.create(g)
	node2 := secondNode(t, e, nil)
	newReplayer(e, g).run(t, g.Steps, sendOpts{})
	a, b := g.branchSteps(t, "a")[4], g.branchSteps(t, "b")[4]
	var ca, cb uint32
	var erra, errb error
	var wg sync.WaitGroup
	wg.Go(func() { ca, erra = sendVia(t, e, e.h, &a) })
	wg.Go(func() { cb, errb = sendVia(t, e, node2, &b) })
	wg.Wait()
	if erra != nil || errb != nil || ca+cb != 3 || ca == cb {
		t.Fatalf("commits to epoch 2: node 1 counter %d (%v), node 2 counter %d (%v)", ca, erra, cb, errb)
	}
	if forks := e.h.Stats().Forks + node2.Stats().Forks; forks != 1 {
		t.Fatalf("%d forks, want 1", forks)
	}
	gi1, err1 := e.h.GroupInfo(context.Background(), &protocol.GroupInfoRequest{GroupID: g.GroupID})
	gi2, err2 := node2.GroupInfo(context.Background(), &protocol.GroupInfoRequest{GroupID: g.GroupID})
	if err1 != nil || err2 != nil || string(gi1.GroupInfo) != string(gi2.GroupInfo) {
		t.Fatalf("GroupInfo on node 1 (%v) and node 2 (%v) differ", err1, err2)
	}
	first := a // the main line follows the first sequenced commit
	if cb < ca {
		first = b
	}
	if string(gi1.GroupInfo) != string(first.After.GroupInfoWithTree) && string(gi1.GroupInfo) != string(first.After.GroupInfo) {
		t.Fatal("the GroupInfo served is not the first sequenced commit's")
	}
	for _, st := range []tsStep{a, b} {
		masked := mask(t, st.After.PartitionKey)
		v1, _ := e.h.View(context.Background(), masked)
		v2, _ := node2.View(context.Background(), masked)
		if !v1.Visible || !equalViews(v1, v2) {
			t.Fatalf("%s: node 1 sees %+v, node 2 %+v", st.Description, v1, v2)
		}
	}
	if c, err := sendVia(t, e, node2, &a); err != nil || c != ca {
		t.Fatalf("retry of node 1's commit on node 2: counter %d, %v; want %d", c, err, ca)
	}
}

// TestProposalBetweenCheckAndAppend: node 1's (PrivateMessage) proposal lands
// between node 2's check of bob's Update proposal and its append; node 2 checks
// it again and sequences it after node 1's, and alice's commit of bob's proposal
// on node 1 is accepted.
func TestProposalBetweenCheckAndAppend(t *testing.T) {
	g := loadFixture(t, "create-2.json")
	e := newEnv(t, "a.example", nil)
	e.create(g)
	newReplayer(e, g).run(t, g.Steps[:4], sendOpts{})
	private := g.Steps[3]
	private.Kind = "proposal"
	private.Message = remarshal(t, private.Message, func(m *mls.MLSMessage) { m.PrivateMessage.ContentType = mls.ContentTypeProposal })
	var injected error
	node2 := secondNode(t, e, func(s hub.Store) hub.Store {
		return &injectingStore{Store: s, inject: func() { _, injected = sendVia(t, e, e.h, &private) }}
	})
	if c, err := sendVia(t, e, node2, &g.Steps[4]); injected != nil || err != nil || c != 3 {
		t.Fatalf("bob's proposal on node 2 after node 1's: counter %d, %v (injected: %v)", c, err, injected)
	}
	if st := node2.Stats(); st.Rechecks != 1 || st.Checked != 1 {
		t.Fatalf("node 2's stats: %+v", st)
	}
	if c, err := sendVia(t, e, e.h, &g.Steps[5]); err != nil || c != 4 {
		t.Fatalf("alice's commit on node 1: counter %d, %v", c, err)
	}
}
