package provider_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

// tsFixture is what these tests read of a ts-mls fixture (mls/testdata/tsmls,
// written by mls/testdata/gen): the group's start and its steps.
type tsFixture struct {
	Initial struct {
		GroupInfo    mlstest.Hex `json:"group_info"`
		RatchetTree  mlstest.Hex `json:"ratchet_tree"`
		PartitionKey mlstest.Hex `json:"partition_key"`
	} `json:"initial"`
	Steps []struct {
		Kind         string      `json:"kind"`
		Message      mlstest.Hex `json:"message"`
		PartitionKey mlstest.Hex `json:"partition_key"`
		After        *struct {
			PartitionKey      mlstest.Hex `json:"partition_key"`
			GroupInfoWithTree mlstest.Hex `json:"group_info_with_tree"`
		} `json:"after"`
		Welcome *struct {
			Message    mlstest.Hex `json:"message"`
			NewMembers []struct {
				Provider string `json:"provider"`
			} `json:"new_members"`
		} `json:"welcome"`
	} `json:"steps"`
}

func loadTSFixture(t *testing.T, name string) *tsFixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "mls", "testdata", "tsmls", name))
	if err != nil {
		t.Fatal(err)
	}
	var f tsFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	return &f
}

// sendRequest is step i as a client's SendRequest.
func (f *tsFixture) sendRequest(i int) *protocol.SendRequest {
	st := &f.Steps[i]
	req := &protocol.SendRequest{Message: st.Message, PartitionKey: st.PartitionKey}
	if st.After != nil {
		req.CommitData = &protocol.CommitData{NextPartitionKey: st.After.PartitionKey, GroupInfo: st.After.GroupInfoWithTree}
		if w := st.Welcome; w != nil {
			req.CommitData.WelcomeData = &protocol.WelcomeData{Welcome: w.Message}
			for _, m := range w.NewMembers {
				req.CommitData.WelcomeData.ServiceProviders = append(req.CommitData.WelcomeData.ServiceProviders, m.Provider)
			}
		}
	}
	return req
}

// TestHubChecksForwardedIdentities: the hub holds a forwarded handshake to the
// forwarding peer's own users. Alice on A hosts the ts-mls group create-2 (alice of
// a.example, bob of b.example). Over their real links, B and C forward its steps for
// users of their own: a commit from alice's leaf forwarded by B, bob's Update and
// bob's full commit forwarded by C, are refused unauthorized; bob's forwarded by B
// for another B user, policy; each refusal is logged at A and nothing is
// sequenced. Forwarded by B for bob, they are sequenced. Then carol's client on C
// joins a group externally with a leaf claiming bob of b.example: refused; as
// herself: sequenced.
func TestHubChecksForwardedIdentities(t *testing.T) {
	w := newFedWorld(t, "a.example", "b.example", "c.example")
	a, b, c := w.ps["a.example"], w.ps["b.example"], w.ps["c.example"]
	alice, carol := newBox(), newBox()
	dialUser(t, a, "alice", alice)
	dialUser(t, c, "carol", carol)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fx := loadTSFixture(t, "create-2.json")
	if _, err := alice.c.CreateGroup(ctx, &protocol.CreateGroupRequest{GroupInfo: fx.Initial.GroupInfo,
		RatchetTree: fx.Initial.RatchetTree, PartitionKey: fx.Initial.PartitionKey}); err != nil {
		t.Fatal(err)
	}
	const refusedLog = "peer forwarded a credential that does not name its sender; refused"
	forward := func(from *providertest.Provider, user string, i int) error {
		body, err := fx.sendRequest(i).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		env, _ := (&protocol.GroupRequest{Method: protocol.MethodSend, UserURI: user, Body: body}).MarshalBinary()
		_, err = from.Federation.Call(ctx, "a.example", protocol.EnvelopeGroupRequest, env)
		return err
	}
	length := func(pk []byte) int {
		r, err := a.Hub.Receive(ctx, &protocol.ReceiveRequest{PartitionKey: pk})
		if err != nil {
			t.Fatal(err)
		}
		return len(r.Epoch.Messages)
	}
	refuse := func(name string, from *providertest.Provider, user string, i int, want protocol.Code) {
		t.Helper()
		before, n := w.logs["a.example"].count(refusedLog), length(fx.Steps[i].PartitionKey)
		if err := forward(from, user, i); !isCode(err, want) {
			t.Fatalf("%s: %v, want %s", name, err, want)
		}
		if got := w.logs["a.example"].count(refusedLog); got != before+1 {
			t.Errorf("%s: A logged %d refusals, want %d", name, got-before, 1)
		}
		if got := length(fx.Steps[i].PartitionKey); got != n {
			t.Errorf("%s: the partition went from %d to %d messages", name, n, got)
		}
	}
	accept := func(name string, from *providertest.Provider, user string, i int) {
		t.Helper()
		if err := forward(from, user, i); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}

	// Step 1 is alice's commit (Add only, from her leaf): B may not send it.
	refuse("alice's commit forwarded by B for bob", b, "mimi://b.example/u/bob", 1, protocol.CodeUnauthorized)
	if _, err := alice.c.Send(ctx, fx.sendRequest(1)); err != nil {
		t.Fatalf("alice's own commit: %v", err)
	}
	// Step 4 is bob's Update proposal, 7 bob's full commit (UpdatePath).
	refuse("bob's Update forwarded by C", c, "mimi://c.example/u/carol", 4, protocol.CodeUnauthorized)
	refuse("bob's Update forwarded by B for mallory", b, "mimi://b.example/u/mallory", 4, protocol.CodePolicy)
	accept("bob's Update forwarded by B", b, "mimi://b.example/u/bob", 4)
	if _, err := alice.c.Send(ctx, fx.sendRequest(5)); err != nil {
		t.Fatalf("alice's commit of bob's Update: %v", err)
	}
	refuse("bob's commit forwarded by C", c, "mimi://c.example/u/carol", 7, protocol.CodeUnauthorized)
	accept("bob's commit forwarded by B", b, "mimi://b.example/u/bob", 7)
	if n := length(fx.Steps[8].PartitionKey); n != 0 {
		t.Fatalf("bob's commit did not open epoch 3's partition: %d", n)
	}

	// An external join through a real client of C, naming the hub.
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{"mimi://a.example/u/alice"}, ExternalPub: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.CreateGroup(ctx, &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey}); err != nil {
		t.Fatal(err)
	}
	gi, err := carol.c.GroupInfoAt(ctx, "a.example", g.GroupID)
	if err != nil {
		t.Fatal(err)
	}
	seen, err := mlstest.GroupFromInfo(gi.GroupInfo, gi.RatchetTree)
	if err != nil {
		t.Fatal(err)
	}
	joinAs := func(identity string) error {
		j, err := seen.ExternalJoin(identity)
		if err != nil {
			t.Fatal(err)
		}
		_, err = carol.c.ExternalJoinAt(ctx, "a.example", &protocol.ExternalJoinRequest{Message: j.Message,
			CommitData: protocol.CommitData{NextPartitionKey: j.Next.PartitionKey, GroupInfo: j.Next.GroupInfoMessage}})
		return err
	}
	before := w.logs["a.example"].count(refusedLog)
	if err := joinAs("mimi://b.example/u/bob"); client.ErrorCode(err) != protocol.CodeUnauthorized {
		t.Fatalf("carol's join as bob of B: %v, want unauthorized", err)
	}
	if err := joinAs("mimi://c.example/d/carol/phone"); err != nil {
		t.Fatalf("carol's own join: %v", err)
	}
	if got := w.logs["a.example"].count(refusedLog); got != before+1 {
		t.Errorf("A logged %d refused joins, want 1", got-before)
	}
	if n := length(g.PartitionKey); n != 1 {
		t.Fatalf("the joined group's partition holds %d messages, want carol's join only", n)
	}
}
