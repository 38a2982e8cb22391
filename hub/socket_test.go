package hub_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

// TestExternalJoinAsSomeoneElseOverSocket is the attack as reported, from
// outside: on a real provider, a client of alice that knows only a group ID
// fetches its GroupInfo and sends a valid external commit whose leaf claims
// mimi://localhost/d/bob/phone, then one that publishes no GroupInfo (what
// made group_info answer not_found and honest joins wrong_partition). Both
// are refused, group_info still answers with the group's GroupInfo, and bob's
// honest join, made from it, is sequenced.
func TestExternalJoinAsSomeoneElseOverSocket(t *testing.T) {
	p := providertest.Start(t, "localhost", nil, func(c *provider.Config) { c.Hub.RatePerSecond = -1 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(user string) *client.Client {
		_, tok, err := p.Dir.AddClient(ctx, user, "phone", true)
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Dial(ctx, client.Config{URL: p.Socket, Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	carol, alice, bob := dial("carol"), dial("alice"), dial("bob")
	if alice.Session().ClientID != "mimi://localhost/d/alice/phone" {
		t.Fatalf("alice is %s", alice.Session().ClientID)
	}
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{carol.Session().ClientID}, ExternalPub: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.CreateGroup(ctx, &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey}); err != nil {
		t.Fatal(err)
	}
	// alice knows the group ID only.
	joinFrom := func(c *client.Client, identity string) *mlstest.ExternalJoin {
		t.Helper()
		gi, err := c.GroupInfo(ctx, g.GroupID)
		if err != nil {
			t.Fatalf("group_info: %v", err)
		}
		seen, err := mlstest.GroupFromInfo(gi.GroupInfo, gi.RatchetTree)
		if err != nil {
			t.Fatal(err)
		}
		j, err := seen.ExternalJoin(identity)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	spoof := joinFrom(alice, "mimi://localhost/d/bob/phone")
	_, err = alice.ExternalJoin(ctx, joinRequest(spoof))
	if code := client.ErrorCode(err); code != protocol.CodePolicy {
		t.Fatalf("external join claiming bob: %v, want %s", err, protocol.CodePolicy)
	}
	silent := joinRequest(joinFrom(alice, alice.Session().ClientID))
	silent.CommitData.GroupInfo = nil
	_, err = alice.ExternalJoin(ctx, silent)
	if code := client.ErrorCode(err); code != protocol.CodeInvalidMLS {
		t.Fatalf("external join without GroupInfo: %v, want %s", err, protocol.CodeInvalidMLS)
	}
	gi, err := bob.GroupInfo(ctx, g.GroupID)
	if err != nil || !bytes.Equal(gi.GroupInfo, g.GroupInfoMessage) {
		t.Fatalf("group_info after the refused joins: %v", err)
	}
	honest := joinFrom(bob, bob.Session().ClientID)
	resp, err := bob.ExternalJoin(ctx, joinRequest(honest))
	if err != nil || !bytes.Equal(resp.MaskedPartitionKey, g.MaskedPartitionKey()) || resp.Counter != 0 {
		t.Fatalf("bob's honest join: %+v, %v", resp, err)
	}
	if gi, err := carol.GroupInfo(ctx, g.GroupID); err != nil || !bytes.Equal(gi.GroupInfo, honest.Next.GroupInfoMessage) {
		t.Fatalf("group_info after bob's join: %v", err)
	}
}
