package hub_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// remarshal decodes an MLSMessage, lets edit change it, and encodes it.
func remarshal(t testing.TB, b []byte, edit func(m *mls.MLSMessage)) []byte {
	t.Helper()
	m, err := mls.DecodeMLSMessage(append([]byte(nil), b...))
	if err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	g := loadFixture(t, "create-2.json")
	fork := loadFixture(t, "fork.json")
	grow := loadFixture(t, "grow-100.json")
	priv := loadFixture(t, "private-3.json")
	e := newEnv(t, "a.example", func(c *hub.Config) { c.MaxMessageSize = 4096 })
	e.create(g)
	e.create(fork)
	e.create(grow)
	e.create(priv)
	send := func(st *tsStep, mod func(*protocol.SendRequest)) error {
		req := &protocol.SendRequest{Message: st.Message, PartitionKey: st.PartitionKey}
		if st.After != nil {
			req.CommitData = commitData(st, sendOpts{})
		}
		if mod != nil {
			mod(req)
		}
		_, err := e.h.Send(ctx, e.senderOf(st.Sender.Identity), req)
		return err
	}
	app0, add, app1, proposal, commit1 := &g.Steps[0], &g.Steps[1], &g.Steps[2], &g.Steps[4], &g.Steps[5]
	if err := send(app0, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		st   *tsStep
		mod  func(*protocol.SendRequest)
		want error
		also error
	}{
		{"unknown group", app0, func(r *protocol.SendRequest) {
			r.Message = remarshal(t, r.Message, func(m *mls.MLSMessage) { m.PrivateMessage.GroupID = []byte("no such group") })
		}, hub.ErrUnknownGroup, nil},
		{"unknown partition key", app0, func(r *protocol.SendRequest) { r.PartitionKey = make([]byte, 16) }, hub.ErrUnknownPartition, nil},
		{"partition of another group", app0, func(r *protocol.SendRequest) { r.PartitionKey = fork.Initial.PartitionKey }, hub.ErrWrongPartition, nil},
		{"short partition key", app0, func(r *protocol.SendRequest) { r.PartitionKey = r.PartitionKey[:15] }, hub.ErrMalformed, nil},
		{"commit without CommitData", add, func(r *protocol.SendRequest) { r.CommitData = nil }, hub.ErrMalformed, nil},
		{"CommitData on an application message", app0, func(r *protocol.SendRequest) { r.CommitData = commitData(add, sendOpts{}) }, hub.ErrMalformed, nil},
		{"Welcome with too few providers", add, func(r *protocol.SendRequest) { r.CommitData.WelcomeData.ServiceProviders = nil }, hub.ErrWelcomeMismatch, nil},
		{"Welcome of another commit", add, func(r *protocol.SendRequest) {
			r.CommitData.WelcomeData = commitData(&fork.Steps[0], sendOpts{}).WelcomeData
			r.CommitData.WelcomeData.ServiceProviders = r.CommitData.WelcomeData.ServiceProviders[:1]
		}, hub.ErrWelcomeMismatch, nil},
		{"GroupInfo of another epoch", add, func(r *protocol.SendRequest) { r.CommitData.GroupInfo = g.Steps[5].After.GroupInfoWithTree }, hub.ErrInvalidGroupInfo, nil},
		{"GroupInfo of another group", add, func(r *protocol.SendRequest) { r.CommitData.GroupInfo = fork.Steps[0].After.GroupInfo }, hub.ErrInvalidGroupInfo, nil},
		{"next partition key is the current one", add, func(r *protocol.SendRequest) { r.CommitData.NextPartitionKey = r.PartitionKey }, hub.ErrPartitionExists, nil},
		{"next partition key of another group", add, func(r *protocol.SendRequest) { r.CommitData.NextPartitionKey = fork.Initial.PartitionKey }, hub.ErrPartitionExists, nil},
		{"bad signature", add, func(r *protocol.SendRequest) {
			r.Message = remarshal(t, r.Message, func(m *mls.MLSMessage) { m.PublicMessage.Auth.Signature[5] ^= 1 })
		}, hub.ErrInvalidMessage, mls.ErrBadSignature},
		{"sender leaf out of range", add, func(r *protocol.SendRequest) {
			r.Message = remarshal(t, r.Message, func(m *mls.MLSMessage) { m.PublicMessage.Content.Sender.LeafIndex = 99 })
		}, hub.ErrRemovedSender, mls.ErrBlankSender},
		{"proposal for another epoch", proposal, func(r *protocol.SendRequest) { r.PartitionKey = g.Initial.PartitionKey }, hub.ErrWrongPartition, nil},
		{"application data in a PublicMessage", add, func(r *protocol.SendRequest) {
			r.Message = remarshal(t, r.Message, func(m *mls.MLSMessage) {
				c := &m.PublicMessage.Content
				c.ContentType, c.Commit, c.ApplicationData = mls.ContentTypeApplication, nil, []byte("hi")
				m.PublicMessage.Auth.ConfirmationTag = nil
			})
			r.CommitData = nil
		}, hub.ErrInvalidMessage, nil},
		{"oversized message", &grow.Steps[4], nil, hub.ErrTooLarge, nil},
		{"GroupInfo without tree for a private commit", &priv.Steps[0], func(r *protocol.SendRequest) { r.CommitData.GroupInfo = priv.Steps[0].After.GroupInfo }, hub.ErrTreeRequired, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := send(tc.st, tc.mod)
			if !errors.Is(err, tc.want) || tc.also != nil && !errors.Is(err, tc.also) {
				t.Fatalf("err %v, want %v (%v)", err, tc.want, tc.also)
			}
		})
	}
	// None of the refusals left anything behind: the fixture goes on.
	for _, st := range []*tsStep{add, app1} {
		if err := send(st, nil); err != nil {
			t.Fatalf("after the refusals, %s: %v", st.Description, err)
		}
	}
	_ = commit1
	if st := e.h.Stats(); st.Refused != 18 {
		t.Fatalf("%d refusals counted, want 18", st.Refused)
	}
}

func TestWelcomeForCommitWithoutAdds(t *testing.T) {
	g := loadFixture(t, "create-2.json")
	e := newEnv(t, "a.example", nil)
	e.create(g)
	r := newReplayer(e, g)
	r.run(t, g.Steps[:7], sendOpts{})
	st := g.Steps[7] // bob commits with no proposals
	st.Welcome = g.Steps[1].Welcome
	if _, err := e.sendStep(&st, sendOpts{}); !errors.Is(err, hub.ErrWelcomeMismatch) {
		t.Fatalf("Welcome on a commit without Adds: %v", err)
	}
	if _, err := e.sendStep(&g.Steps[7], sendOpts{}); err != nil {
		t.Fatal(err)
	}
}

func TestCreateGroupBadInput(t *testing.T) {
	ctx := context.Background()
	g := loadFixture(t, "create-2.json")
	grow := loadFixture(t, "grow-100.json")
	e := newEnv(t, "a.example", nil)
	alice := protocol.Sender{ClientID: 1, UserURI: "mimi://a.example/u/alice", Local: true}
	create := func(r *protocol.CreateGroupRequest, s protocol.Sender) error {
		_, err := e.h.CreateGroup(ctx, s, r)
		return err
	}
	base := func() *protocol.CreateGroupRequest {
		return &protocol.CreateGroupRequest{GroupInfo: g.Initial.GroupInfo, RatchetTree: g.Initial.RatchetTree, PartitionKey: g.Initial.PartitionKey}
	}
	for _, tc := range []struct {
		name   string
		mod    func(*protocol.CreateGroupRequest)
		sender protocol.Sender
		want   error
	}{
		{"tree of another epoch", func(r *protocol.CreateGroupRequest) { r.RatchetTree = g.Steps[1].After.RatchetTree }, alice, hub.ErrTreeMismatch},
		{"no tree", func(r *protocol.CreateGroupRequest) { r.RatchetTree = nil }, alice, hub.ErrTreeRequired},
		{"two different trees", func(r *protocol.CreateGroupRequest) {
			r.GroupInfo, r.RatchetTree = g.Initial.GroupInfoWithTree, g.Steps[1].After.RatchetTree
		}, alice, hub.ErrTreeMismatch},
		{"unknown suite", func(r *protocol.CreateGroupRequest) {
			r.GroupInfo = remarshal(t, r.GroupInfo, func(m *mls.MLSMessage) { m.GroupInfo.GroupContext.CipherSuite = 0x7777 })
		}, alice, hub.ErrInvalidGroupInfo},
		{"bad GroupInfo signature", func(r *protocol.CreateGroupRequest) {
			r.GroupInfo = remarshal(t, r.GroupInfo, func(m *mls.MLSMessage) { m.GroupInfo.Signature[3] ^= 1 })
		}, alice, hub.ErrInvalidGroupInfo},
		{"not a GroupInfo", func(r *protocol.CreateGroupRequest) { r.GroupInfo = g.Steps[0].Message }, alice, hub.ErrMalformed},
		{"remote creator", nil, protocol.Sender{UserURI: "mimi://b.example/u/bob"}, hub.ErrMalformed},
		{"oversized GroupInfo", func(r *protocol.CreateGroupRequest) { r.GroupInfo = make([]byte, 5<<20) }, alice, hub.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := base()
			if tc.mod != nil {
				tc.mod(r)
			}
			if err := create(r, tc.sender); !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
	if err := create(base(), alice); err != nil {
		t.Fatal(err)
	}
	if err := create(base(), alice); err != nil {
		t.Fatalf("a retried CreateGroupRequest: %v", err)
	}
	reuse := base()
	reuse.PartitionKey = grow.Initial.PartitionKey
	if err := create(reuse, alice); !errors.Is(err, hub.ErrGroupExists) {
		t.Fatalf("reused group ID: %v", err)
	}
	if err := e.pol.Ban(ctx, "mimi://a.example/d/alice/phone", "spam"); err != nil {
		t.Fatal(err)
	}
	growReq := &protocol.CreateGroupRequest{GroupInfo: grow.Initial.GroupInfoWithTree, PartitionKey: grow.Initial.PartitionKey}
	if err := create(growReq, protocol.Sender{UserURI: "mimi://a.example/u/carol", Local: true}); !errors.Is(err, hub.ErrBanned) {
		t.Fatalf("group whose member is banned: %v", err)
	}
}

func TestBansAndRateLimits(t *testing.T) {
	ctx := context.Background()
	g := loadFixture(t, "create-2.json")
	e := newEnv(t, "a.example", nil)
	e.polCfg.RatePerSecond, e.polCfg.RateBurst = 1, 4
	e.restart()
	e.create(g)
	if err := e.pol.Ban(ctx, "mimi://b.example/u/bob", "abuse"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sendStep(&g.Steps[0], sendOpts{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sendStep(&g.Steps[1], sendOpts{}); !errors.Is(err, hub.ErrBanned) {
		t.Fatalf("adding a provider-banned user: %v", err)
	}
	if ok, err := e.pol.Unban(ctx, "mimi://b.example/u/bob"); !ok || err != nil {
		t.Fatalf("Unban = %v, %v", ok, err)
	}
	if bans, _ := e.pol.ListBans(ctx); len(bans) != 0 {
		t.Fatalf("bans left: %+v", bans)
	}
	// Alice's bucket (burst 4): the creation, her message and the add
	// refused for the ban took three. One more goes through, then she waits;
	// retries are answered from the log and take none.
	if _, err := e.sendStep(&g.Steps[1], sendOpts{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sendStep(&g.Steps[3], sendOpts{}); !errors.Is(err, hub.ErrRateLimited) {
		t.Fatalf("over the rate: %v", err)
	}
	if _, err := e.sendStep(&g.Steps[0], sendOpts{}); err != nil {
		t.Fatalf("a retry is answered from the log without a token: %v", err)
	}
	// Bob is remote: no limit applies to him.
	for _, i := range []int{2, 4} {
		if _, err := e.sendStep(&g.Steps[i], sendOpts{}); err != nil {
			t.Fatalf("remote bob, step %d: %v", i, err)
		}
	}
	e.clock.add(time.Second)
	if _, err := e.sendStep(&g.Steps[3], sendOpts{}); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	// A banned local user cannot send anything.
	e.pol.Ban(ctx, "mimi://a.example/u/alice", "")
	e.clock.add(time.Hour)
	if _, err := e.sendStep(&g.Steps[5], sendOpts{}); !errors.Is(err, hub.ErrBanned) {
		t.Fatalf("banned local sender: %v", err)
	}
}

// TestPrivateCommitWithoutGroupInfo: a PrivateMessage commit without
// GroupInfo opens a partition the hub has no view of; it sequences there
// without checks until a commit brings a GroupInfo with its tree.
func TestPrivateCommitWithoutGroupInfo(t *testing.T) {
	ctx := context.Background()
	g := loadFixture(t, "private-3.json")
	e := newEnv(t, "a.example", nil)
	e.create(g)
	r := newReplayer(e, g)
	r.step(t, 0, &g.Steps[0], sendOpts{noGroupInfo: true})
	for i := 1; i < len(g.Steps); i++ {
		r.step(t, i, &g.Steps[i], sendOpts{})
	}
	ps, _ := e.h.Partitions(ctx, g.GroupID)
	if ps[1].HasGroupInfo || ps[1].Verified || !ps[2].HasGroupInfo {
		t.Fatalf("partitions %+v", ps[:3])
	}
	if _, err := e.h.GroupInfo(ctx, &protocol.GroupInfoRequest{GroupID: g.GroupID}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.h.GroupInfo(ctx, &protocol.GroupInfoRequest{GroupID: []byte("nope")}); !errors.Is(err, hub.ErrUnknownGroup) {
		t.Fatalf("GroupInfo of an unknown group: %v", err)
	}
}

// TestUnknownProposalRef tests both sides of the rule for a commit that
// covers a proposal the hub never saw: refused when every proposal of the
// partition was public, sequenced unchecked after a PrivateMessage proposal
// (which it may cover).
func TestUnknownProposalRef(t *testing.T) {
	g := loadFixture(t, "create-2.json")
	for _, private := range []bool{false, true} {
		t.Run(map[bool]string{false: "all public", true: "after a private proposal"}[private], func(t *testing.T) {
			e := newEnv(t, "a.example", nil)
			e.create(g)
			r := newReplayer(e, g)
			r.run(t, g.Steps[:4], sendOpts{}) // up to, not including, bob's Update proposal
			if private {
				st := g.Steps[3] // an application message of epoch 1, made a proposal
				st.Kind = "proposal"
				st.Message = remarshal(t, st.Message, func(m *mls.MLSMessage) { m.PrivateMessage.ContentType = mls.ContentTypeProposal })
				r.step(t, 4, &st, sendOpts{})
			}
			_, err := e.sendStep(&g.Steps[5], sendOpts{}) // alice commits bob's proposal by reference
			if !private {
				if !errors.Is(err, hub.ErrInvalidMessage) || !errors.Is(err, mls.ErrUnknownProposalRef) {
					t.Fatalf("commit covering an unknown public proposal: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("commit after a private proposal: %v", err)
			}
			if st := e.h.Stats(); st.Unchecked != 2 { // the private proposal and the commit
				t.Fatalf("stats %+v", st)
			}
			r.learn(g.Steps[5].After)
			r.run(t, g.Steps[6:], sendOpts{}) // the next partition has a state from the GroupInfo
			if st := e.h.Stats(); st.Checked != 3 {
				t.Fatalf("stats after: %+v", st)
			}
		})
	}
}
