package mlstest_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
	"github.com/mimids/mimids/sqlite"
)

// TestExternalJoinVerifies builds external commits for groups of several
// sizes and suites (blank leaves included) and checks that each verifies
// against the group's public state and that the next epoch's GroupInfo is
// what a DS computes; joins chain.
func TestExternalJoinVerifies(t *testing.T) {
	for _, cs := range []mls.CipherSuite{1, 2, 7} {
		for _, n := range []int{1, 2, 3, 5} {
			t.Run(fmt.Sprintf("%v/%d members", cs, n), func(t *testing.T) {
				g, err := mlstest.NewGroup(mlstest.Options{CipherSuite: cs, Members: n, ExternalPub: true})
				if err != nil {
					t.Fatal(err)
				}
				// A non-member joins from what group_info serves.
				if g, err = mlstest.GroupFromInfo(g.GroupInfoMessage, nil); err != nil || len(g.Members) != n {
					t.Fatalf("GroupFromInfo: %v", err)
				}
				for i := range 3 {
					id := fmt.Sprintf("mimi://a.example/d/joiner%d/c1", i)
					j, err := g.ExternalJoin(id)
					if err != nil {
						t.Fatalf("join %d: %v", i, err)
					}
					checkJoin(t, g, j, id)
					g = j.Next
				}
			})
		}
	}
}

func checkJoin(t *testing.T, g *mlstest.Group, j *mlstest.ExternalJoin, id string) {
	t.Helper()
	pg, err := mls.NewPublicGroup(g.GroupInfo, g.Tree, mls.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := mls.DecodeMLSMessage(j.Message)
	if err != nil || m.PublicMessage == nil {
		t.Fatalf("commit: %v", err)
	}
	next, res, err := pg.ProcessCommit(m.PublicMessage)
	if err != nil {
		t.Fatalf("ProcessCommit: %v", err)
	}
	if !res.External || string(res.Committer.Identity) != id || res.Committer.LeafIndex != j.Joiner.LeafIndex {
		t.Fatalf("result %+v", res)
	}
	gc, want := j.Next.GroupContext, next.GroupContext()
	a, _ := gc.Marshal()
	b, _ := want.Marshal()
	if !bytes.Equal(a, b) || j.Next.Epoch != g.Epoch+1 {
		t.Fatal("Next's GroupContext is not the computed one")
	}
	if _, err := mls.NewPublicGroup(j.Next.GroupInfo, nil, mls.Options{}); err != nil {
		t.Fatalf("next GroupInfo: %v", err)
	}
	if !j.Next.GroupInfo.Extensions.Has(mls.ExtensionTypeExternalPub) || j.Next.GroupInfo.Signer != j.Joiner.LeafIndex {
		t.Fatal("next GroupInfo lacks external_pub or is not signed by the joiner")
	}
}

// TestLeavesOption puts given leaf nodes (of KeyPackages) into a group.
func TestLeavesOption(t *testing.T) {
	_, kp, err := mlstest.NewKeyPackage(mlstest.KeyPackageOptions{Identity: "mimi://a.example/u/bob"})
	if err != nil {
		t.Fatal(err)
	}
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{"mimi://a.example/u/alice"}, Leaves: []*mls.LeafNode{&kp.LeafNode}})
	if err != nil {
		t.Fatal(err)
	}
	pg, err := mls.NewPublicGroup(g.GroupInfo, nil, mls.Options{})
	if err != nil || len(pg.Members()) != 2 {
		t.Fatalf("public group: %v", err)
	}
	if len(g.Members) != 2 || !bytes.Equal(g.Members[1].Leaf.SignatureKey, kp.LeafNode.SignatureKey) || g.Members[1].SignaturePriv != nil {
		t.Fatalf("members %+v", g.Members)
	}
	if _, err := mlstest.NewGroup(mlstest.Options{Leaves: []*mls.LeafNode{nil}}); err == nil {
		t.Fatal("a nil leaf was accepted")
	}
}

// TestHubAcceptsExternalJoins sequences chained external joins on a hub, each
// by a local sender its leaf names; group_info follows them.
func TestHubAcceptsExternalJoins(t *testing.T) {
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "hub.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h, err := hub.New(hub.Config{Domain: "a.example"}, db, noRouter{}, noMailbox{})
	if err != nil {
		t.Fatal(err)
	}
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{"mimi://a.example/d/alice/c1"}, ExternalPub: true})
	if err != nil {
		t.Fatal(err)
	}
	creator := protocol.Sender{ClientID: 1, ClientURI: "mimi://a.example/d/alice/c1", UserURI: "mimi://a.example/u/alice", Local: true}
	if _, err := h.CreateGroup(ctx, creator, &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		uri := fmt.Sprintf("mimi://a.example/d/user%d/c1", i)
		j, err := g.ExternalJoin(uri)
		if err != nil {
			t.Fatal(err)
		}
		s := protocol.Sender{ClientID: int64(2 + i), ClientURI: uri, UserURI: protocol.UserOf(uri), Local: true}
		resp, err := h.ExternalJoin(ctx, s, &protocol.ExternalJoinRequest{Message: j.Message,
			CommitData: protocol.CommitData{NextPartitionKey: j.Next.PartitionKey, GroupInfo: j.Next.GroupInfoMessage}})
		if err != nil || !bytes.Equal(resp.MaskedPartitionKey, g.MaskedPartitionKey()) {
			t.Fatalf("join %d: %+v, %v", i, resp, err)
		}
		gi, err := h.GroupInfo(ctx, &protocol.GroupInfoRequest{GroupID: g.GroupID})
		if err != nil || !bytes.Equal(gi.GroupInfo, j.Next.GroupInfoMessage) {
			t.Fatalf("group_info after join %d: %v", i, err)
		}
		g = j.Next
	}
}

// TestGroupFromInfoTreeApart needs the tree served beside a GroupInfo
// without ratchet_tree.
func TestGroupFromInfoTreeApart(t *testing.T) {
	g, err := mlstest.NewGroup(mlstest.Options{Members: 3, TreeApart: true, ExternalPub: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mlstest.GroupFromInfo(g.GroupInfoMessage, nil); err == nil {
		t.Fatal("a GroupInfo without its tree was accepted")
	}
	seen, err := mlstest.GroupFromInfo(g.GroupInfoMessage, g.RatchetTree)
	if err != nil {
		t.Fatal(err)
	}
	j, err := seen.ExternalJoin("mimi://a.example/d/dan/c1")
	if err != nil {
		t.Fatal(err)
	}
	checkJoin(t, g, j, "mimi://a.example/d/dan/c1")
	if _, err := mlstest.GroupFromInfo(j.Message, nil); err == nil {
		t.Fatal("a commit was taken for a GroupInfo")
	}
}
