package provider_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

// TestForwardedGroupRequests: alice on A hosts a group and welcomes bob on B. Bob
// receives, sends and asks the GroupInfo through B: B forwards each to A over the
// link, A sequences bob's message and the counter comes back to bob. A hub refusal
// keeps its code. Carol on C, which never saw the group, joins it externally by
// naming A. A follower forwarding for a user of another domain, or forwarding
// create_group, is refused by the hub and logged; nothing is sequenced.
func TestForwardedGroupRequests(t *testing.T) {
	w := newFedWorld(t, "a.example", "b.example", "c.example")
	a, b := w.ps["a.example"], w.ps["b.example"]
	alice, bob, carol := newBox(), newBox(), newBox()
	dialUser(t, a, "alice", alice)
	dialUser(t, b, "bob", bob)
	dialUser(t, w.ps["c.example"], "carol", carol)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g := groupWithBob(ctx, t, w, alice, bob, mlstest.Options{ExternalPub: true})
	// Before the Welcome, B knows nothing of the group.
	if _, err := bob.c.GroupInfo(ctx, g.GroupID); client.ErrorCode(err) != protocol.CodeNotFound {
		t.Fatalf("group_info before the Welcome: %v, want not_found", err)
	}
	poll(t, "bob gets the Welcome", func() bool { n, _ := bob.count(g.GroupID); return n == 1 && drained(t, bob) })

	// Receive first: B learns the partition from the hubs of bob's groups.
	if r, err := bob.c.Receive(ctx, g.PartitionKey, 0); err != nil || len(r.Epoch.Messages) != 0 {
		t.Fatalf("receive through B: %+v, %v; want the empty partition", r, err)
	}
	app, err := g.RandomApplication(100)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := bob.c.Send(ctx, &protocol.SendRequest{Message: app, PartitionKey: g.PartitionKey}); err != nil || c != 0 {
		t.Fatalf("send through B: counter %d, %v; want 0", c, err)
	}
	app2, _ := g.RandomApplication(50)
	if c, err := alice.c.Send(ctx, &protocol.SendRequest{Message: app2, PartitionKey: g.PartitionKey}); err != nil || c != 1 {
		t.Fatalf("alice's send at the hub: counter %d, %v; want 1 (after bob's)", c, err)
	}
	r, err := bob.c.Receive(ctx, g.PartitionKey, 0)
	if err != nil || len(r.Epoch.Messages) != 2 {
		t.Fatalf("receive through B: %v, %+v", err, r)
	}
	for i, m := range [][]byte{app, app2} {
		if !bytes.Equal(r.Epoch.Messages[i].Message, m) {
			t.Errorf("message %d through B is not what was sent", i)
		}
	}
	gi, err := bob.c.GroupInfo(ctx, g.GroupID)
	if err != nil || !bytes.Equal(gi.GroupInfo, g.GroupInfoMessage) {
		t.Fatalf("group_info through B: %v", err)
	}
	// The hub's refusal comes back with its code: bob's message to the partition of
	// another group A hosts.
	other, err := mlstest.NewGroup(mlstest.Options{Identities: []string{"mimi://a.example/u/alice"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.c.CreateGroup(ctx, &protocol.CreateGroupRequest{GroupInfo: other.GroupInfoMessage, PartitionKey: other.PartitionKey}); err != nil {
		t.Fatal(err)
	}
	misrouted, _ := g.RandomApplication(40)
	if _, err := bob.c.Send(ctx, &protocol.SendRequest{Message: misrouted, PartitionKey: other.PartitionKey}); client.ErrorCode(err) != protocol.CodeWrongPartition {
		t.Fatalf("send to another group's partition through B: %v, want wrong_partition", err)
	}

	// Carol's provider never saw the group: she names the hub.
	if _, err := carol.c.GroupInfo(ctx, g.GroupID); client.ErrorCode(err) != protocol.CodeNotFound {
		t.Fatalf("group_info at C without the hub named: %v, want not_found", err)
	}
	gi, err = carol.c.GroupInfoAt(ctx, "a.example", g.GroupID)
	if err != nil {
		t.Fatalf("group_info_at: %v", err)
	}
	seen, err := mlstest.GroupFromInfo(gi.GroupInfo, gi.RatchetTree)
	if err != nil {
		t.Fatal(err)
	}
	j, err := seen.ExternalJoin("mimi://c.example/u/carol")
	if err != nil {
		t.Fatal(err)
	}
	join := &protocol.ExternalJoinRequest{Message: j.Message,
		CommitData: protocol.CommitData{NextPartitionKey: j.Next.PartitionKey, GroupInfo: j.Next.GroupInfoMessage}}
	jr, err := carol.c.ExternalJoin(ctx, join) // C learned the hub from group_info_at
	if err != nil || jr.Counter != 2 || !bytes.Equal(jr.MaskedPartitionKey, g.MaskedPartitionKey()) {
		t.Fatalf("external join through C: %+v, %v; want counter 2 of the first partition", jr, err)
	}
	// A second join, in the epoch carol's opened, names the hub in the request.
	j2, err := j.Next.ExternalJoin("mimi://c.example/u/carol")
	if err != nil {
		t.Fatal(err)
	}
	jr, err = carol.c.ExternalJoinAt(ctx, "a.example", &protocol.ExternalJoinRequest{Message: j2.Message,
		CommitData: protocol.CommitData{NextPartitionKey: j2.Next.PartitionKey, GroupInfo: j2.Next.GroupInfoMessage}})
	if err != nil || jr.Counter != 0 || !bytes.Equal(jr.MaskedPartitionKey, j.Next.MaskedPartitionKey()) {
		t.Fatalf("external_join_at: %+v, %v", jr, err)
	}
	// C learned carol's next partition from the join's CommitData.
	if r, err := carol.c.Receive(ctx, j2.Next.PartitionKey, 0); err != nil || len(r.Epoch.Messages) != 0 {
		t.Fatalf("receive of carol's new partition through C: %+v, %v", r, err)
	}

	// A hostile follower: B forwards for carol (a user of C), then create_group.
	app3, _ := g.RandomApplication(30)
	send, _ := (&protocol.SendRequest{Message: app3, PartitionKey: g.PartitionKey}).MarshalBinary()
	create, _ := (&protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey}).MarshalBinary()
	for _, c := range []struct {
		name string
		req  protocol.GroupRequest
		code protocol.Code
		log  string
	}{
		{"for another domain's user", protocol.GroupRequest{Method: protocol.MethodSend, UserURI: "mimi://c.example/u/carol", Body: send},
			protocol.CodeUnauthorized, "for a user of another domain; refused"},
		{"for a client URI", protocol.GroupRequest{Method: protocol.MethodSend, UserURI: "mimi://b.example/d/bob/phone", Body: send},
			protocol.CodeUnauthorized, "for a user of another domain; refused"},
		{"create_group", protocol.GroupRequest{Method: protocol.MethodCreateGroup, UserURI: "mimi://b.example/u/bob", Body: create},
			protocol.CodeUnknownMethod, "peer forwarded a method it may not"},
	} {
		before := w.logs["a.example"].count(c.log)
		env, _ := c.req.MarshalBinary()
		if _, err := b.Federation.Call(ctx, "a.example", protocol.EnvelopeGroupRequest, env); !isCode(err, c.code) {
			t.Errorf("%s: %v, want %s", c.name, err, c.code)
		}
		if n := w.logs["a.example"].count(c.log); n != before+1 {
			t.Errorf("%s: A logged %d refusals, want %d", c.name, n, before+1)
		}
	}
	r, err = alice.c.Receive(ctx, g.PartitionKey, 0)
	if err != nil || len(r.Epoch.Messages) != 3 {
		t.Fatalf("the hub's partition: %v, %d messages; want bob's, alice's and carol's join only", err, len(r.Epoch.Messages))
	}
	if _, err := a.Hub.GroupInfo(ctx, &protocol.GroupInfoRequest{GroupID: g.GroupID}); err != nil {
		t.Fatal(err)
	}
}
