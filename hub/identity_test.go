package hub_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

// localSender is the Sender the socket gives a client of this provider.
func localSender(id int64, user, client string) protocol.Sender {
	return protocol.Sender{ClientID: id, ClientURI: "mimi://localhost/d/" + user + "/" + client,
		UserURI: "mimi://localhost/u/" + user, Local: true}
}

// joinRequest is the ExternalJoinRequest of j publishing j's next GroupInfo.
func joinRequest(j *mlstest.ExternalJoin) *protocol.ExternalJoinRequest {
	return &protocol.ExternalJoinRequest{Message: j.Message,
		CommitData: protocol.CommitData{NextPartitionKey: j.Next.PartitionKey, GroupInfo: j.Next.GroupInfoMessage}}
}

// resign returns j's next GroupInfo changed by edit and signed again by the
// joiner: valid, but not what the group needs.
func resign(t *testing.T, j *mlstest.ExternalJoin, edit func(gi *mls.GroupInfo)) []byte {
	t.Helper()
	gi := *j.Next.GroupInfo
	gi.Extensions = append(mls.Extensions(nil), gi.Extensions...)
	edit(&gi)
	tbs, err := gi.TBS()
	if err != nil {
		t.Fatal(err)
	}
	if gi.Signature, err = j.Next.Suite.SignWithLabel(j.Joiner.SignaturePriv, mls.GroupInfoTBSLabel, tbs); err != nil {
		t.Fatal(err)
	}
	b, err := (&mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatGroupInfo, GroupInfo: &gi}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestExternalJoinAsSomeoneElse is the reported attack at the hub: a client
// of alice, knowing only the group ID, makes a valid external commit whose
// leaf claims bob (and the other ways one external joiner could take the
// group's GroupInfo away). Each is refused, the group is left as it was,
// and honest joins still work.
func TestExternalJoinAsSomeoneElse(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "localhost", nil)
	creator := localSender(1, "carol", "laptop")
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{creator.ClientURI}, ExternalPub: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.h.CreateGroup(ctx, creator, &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey}); err != nil {
		t.Fatal(err)
	}
	alice := localSender(2, "alice", "phone")
	own, err := g.ExternalJoin(alice.ClientURI)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		identity string                                                         // the joiner's claimed identity
		edit     func(r *protocol.ExternalJoinRequest, j *mlstest.ExternalJoin) // nil: as built
		want     error
	}{
		{"claims bob's client", "mimi://localhost/d/bob/phone", nil, hub.ErrIdentityMismatch},
		{"claims bob's user", "mimi://localhost/u/bob", nil, hub.ErrIdentityMismatch},
		{"claims another client of alice", "mimi://localhost/d/alice/laptop", nil, hub.ErrIdentityMismatch},
		{"claims nobody", "", nil, hub.ErrIdentityMismatch},
		{"no GroupInfo", alice.ClientURI, func(r *protocol.ExternalJoinRequest, _ *mlstest.ExternalJoin) { r.CommitData.GroupInfo = nil }, hub.ErrInvalidGroupInfo},
		{"GroupInfo without external_pub", alice.ClientURI, func(r *protocol.ExternalJoinRequest, j *mlstest.ExternalJoin) {
			r.CommitData.GroupInfo = resign(t, j, func(gi *mls.GroupInfo) {
				gi.Extensions = []mls.Extension{{ExtensionType: mls.ExtensionTypeRatchetTree, ExtensionData: j.Next.RatchetTree}}
			})
		}, hub.ErrInvalidGroupInfo},
		{"GroupInfo of another epoch", alice.ClientURI, func(r *protocol.ExternalJoinRequest, j *mlstest.ExternalJoin) {
			r.CommitData.GroupInfo = resign(t, j, func(gi *mls.GroupInfo) { gi.GroupContext.Epoch += 5 })
		}, hub.ErrInvalidGroupInfo},
		{"GroupInfo with a forged transcript hash", alice.ClientURI, func(r *protocol.ExternalJoinRequest, j *mlstest.ExternalJoin) {
			r.CommitData.GroupInfo = resign(t, j, func(gi *mls.GroupInfo) { gi.GroupContext.ConfirmedTranscriptHash = make([]byte, 32) })
		}, hub.ErrInvalidGroupInfo},
		{"the group's own GroupInfo", alice.ClientURI, func(r *protocol.ExternalJoinRequest, _ *mlstest.ExternalJoin) {
			r.CommitData.GroupInfo = g.GroupInfoMessage
		}, hub.ErrInvalidGroupInfo},
		{"bad signature", alice.ClientURI, func(r *protocol.ExternalJoinRequest, _ *mlstest.ExternalJoin) {
			r.Message = remarshal(t, r.Message, func(m *mls.MLSMessage) { m.PublicMessage.Auth.Signature[0] ^= 1 })
		}, hub.ErrInvalidMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := g.ExternalJoin(tc.identity)
			if err != nil {
				t.Fatal(err)
			}
			req := joinRequest(j)
			if tc.edit != nil {
				tc.edit(req, j)
			}
			_, err = e.h.ExternalJoin(ctx, alice, roundTrip(t, req, &protocol.ExternalJoinRequest{}))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			// The group is as it was: one partition, the same GroupInfo.
			ps, err := e.h.Partitions(ctx, g.GroupID)
			if err != nil || len(ps) != 1 || ps[0].Length != 0 {
				t.Fatalf("partitions after a refused join: %+v, %v", ps, err)
			}
			gi, err := e.h.GroupInfo(ctx, &protocol.GroupInfoRequest{GroupID: g.GroupID})
			if err != nil || !bytes.Equal(gi.GroupInfo, g.GroupInfoMessage) {
				t.Fatalf("group_info after a refused join: %v", err)
			}
		})
	}
	// alice joining as herself works, and the group stays joinable: bob joins
	// from the GroupInfo alice published.
	resp, err := e.h.ExternalJoin(ctx, alice, joinRequest(own))
	if err != nil || resp.Counter != 0 {
		t.Fatalf("alice's own join: %+v, %v", resp, err)
	}
	gi, err := e.h.GroupInfo(ctx, &protocol.GroupInfoRequest{GroupID: g.GroupID})
	if err != nil || !bytes.Equal(gi.GroupInfo, own.Next.GroupInfoMessage) {
		t.Fatalf("group_info after alice's join: %v", err)
	}
	bob := localSender(3, "bob", "phone")
	next, err := own.Next.ExternalJoin(bob.UserURI) // a KeyPackage-style user URI is his too
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := e.h.ExternalJoin(ctx, bob, joinRequest(next)); err != nil || !bytes.Equal(resp.MaskedPartitionKey, own.Next.MaskedPartitionKey()) {
		t.Fatalf("bob's join after alice's: %+v, %v", resp, err)
	}
	// A remote sender's identity is vouched for by its provider: not checked.
	remote := protocol.Sender{UserURI: "mimi://b.example/u/dave"}
	third, err := next.Next.ExternalJoin("mimi://localhost/d/bob/tablet")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.h.ExternalJoin(ctx, remote, joinRequest(third)); err != nil {
		t.Fatalf("remote join: %v", err)
	}
}

// TestExternalJoinWithoutPublicState: where the hub has no public state of
// the newest partition (a PrivateMessage commit without GroupInfo opened
// it), it cannot verify an external join, so it refuses it: otherwise any
// client knowing the group ID could sequence a commit it made up with a
// GroupInfo of its own, which group_info would then serve.
func TestExternalJoinWithoutPublicState(t *testing.T) {
	ctx := context.Background()
	fx := loadFixture(t, "private-3.json")
	e := newEnv(t, "a.example", nil)
	e.create(fx)
	newReplayer(e, fx).step(t, 0, &fx.Steps[0], sendOpts{noGroupInfo: true})
	// A made-up group with the same ID and epoch, self-consistent.
	fake, err := mlstest.NewGroup(mlstest.Options{GroupID: fx.GroupID, Epoch: 1, CipherSuite: fx.CipherSuite,
		Identities: []string{"mimi://a.example/u/mallory"}, ExternalPub: true})
	if err != nil {
		t.Fatal(err)
	}
	j, err := fake.ExternalJoin("mimi://a.example/u/mallory")
	if err != nil {
		t.Fatal(err)
	}
	mallory := protocol.Sender{ClientID: 9, UserURI: "mimi://a.example/u/mallory", Local: true}
	if _, err := e.h.ExternalJoin(ctx, mallory, joinRequest(j)); !errors.Is(err, hub.ErrNoGroupInfo) {
		t.Fatalf("external join without a public state: %v, want ErrNoGroupInfo", err)
	}
	ps, _ := e.h.Partitions(ctx, fx.GroupID)
	if len(ps) != 2 || ps[1].Length != 0 {
		t.Fatalf("partitions %+v", ps)
	}
	// The same through send, naming the partition, is refused alike.
	_, err = e.h.Send(ctx, mallory, &protocol.SendRequest{Message: j.Message, PartitionKey: fx.Steps[0].After.PartitionKey,
		CommitData: &protocol.CommitData{NextPartitionKey: j.Next.PartitionKey, GroupInfo: j.Next.GroupInfoMessage}})
	if !errors.Is(err, hub.ErrNoGroupInfo) {
		t.Fatalf("external commit through send: %v, want ErrNoGroupInfo", err)
	}
}

// TestOwnLeavesNameTheSender replays ts-mls handshakes of local members sent
// by another local client: the external join's leaf, the UpdatePath leaf
// and the Update proposal's leaf must name the sender; sent by their owner
// they pass.
func TestOwnLeavesNameTheSender(t *testing.T) {
	mallory := protocol.Sender{ClientID: 99, ClientURI: "mimi://a.example/d/mallory/phone", UserURI: "mimi://a.example/u/mallory", Local: true}
	t.Run("external join and UpdatePath", func(t *testing.T) {
		g := loadFixture(t, "external-join.json")
		e := newEnv(t, "a.example", nil)
		e.create(g)
		r := newReplayer(e, g)
		checked := 0
		for i := range g.Steps {
			st := &g.Steps[i]
			if providerOf(st.Sender.Identity) == "a.example" && introducesLeaf(t, st.Message) {
				checked++
				if _, err := e.sendStepAs(st, sendOpts{}, mallory); !errors.Is(err, hub.ErrIdentityMismatch) {
					t.Fatalf("step %d (%s) sent by mallory: %v, want ErrIdentityMismatch", i, st.Description, err)
				}
			}
			r.step(t, i, st, sendOpts{})
		}
		if checked < 2 {
			t.Fatalf("only %d local steps with a leaf of their own", checked)
		}
	})
	t.Run("Update proposal", func(t *testing.T) {
		g := loadFixture(t, "create-2.json")
		e := newEnv(t, "b.example", nil) // bob is local
		e.create(g)
		r := newReplayer(e, g)
		r.run(t, g.Steps[:4], sendOpts{})
		other := protocol.Sender{ClientID: 98, ClientURI: "mimi://b.example/d/eve/phone", UserURI: "mimi://b.example/u/eve", Local: true}
		if _, err := e.sendStepAs(&g.Steps[4], sendOpts{}, other); !errors.Is(err, hub.ErrIdentityMismatch) {
			t.Fatalf("bob's Update sent by eve: %v", err)
		}
		r.run(t, g.Steps[4:], sendOpts{})
	})
}

// TestCreatorLeafNamesTheSender: at create_group, the GroupInfo signer's
// leaf (the creator's own) must name the socket's client.
func TestCreatorLeafNamesTheSender(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "localhost", nil)
	alice := localSender(1, "alice", "phone")
	for _, tc := range []struct {
		name string
		ids  []string
		want error
	}{
		{"bob's client", []string{"mimi://localhost/d/bob/phone", alice.ClientURI}, hub.ErrIdentityMismatch},
		{"bob's user", []string{"mimi://localhost/u/bob"}, hub.ErrIdentityMismatch},
		{"her client URI", []string{alice.ClientURI, "mimi://localhost/d/bob/phone"}, nil},
		{"her user URI", []string{alice.UserURI}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := mlstest.NewGroup(mlstest.Options{Identities: tc.ids})
			if err != nil {
				t.Fatal(err)
			}
			_, err = e.h.CreateGroup(ctx, alice, &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey})
			if !errors.Is(err, tc.want) || tc.want == nil && err != nil {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if _, err := e.h.Partitions(ctx, g.GroupID); (err == nil) != (tc.want == nil) {
				t.Fatalf("group created: %v", err)
			}
		})
	}
}

// introducesLeaf reports whether a message is a PublicMessage commit with an
// UpdatePath (its sender's new leaf).
func introducesLeaf(t *testing.T, msg []byte) bool {
	m, err := mls.DecodeMLSMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	return m.PublicMessage != nil && m.PublicMessage.Content.Commit != nil && m.PublicMessage.Content.Commit.Path != nil
}

// TestForwardedSenderIdentity: a sender a peer forwarded (Sender.Peer) may put in
// the group leaves of the forwarded user only: a joiner's leaf naming a user of
// another provider is ErrForeignIdentity, one naming another user of the peer
// ErrIdentityMismatch; the user's own client or user URI is sequenced.
func TestForwardedSenderIdentity(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "localhost", nil)
	creator := localSender(1, "carol", "laptop")
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{creator.ClientURI}, ExternalPub: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.h.CreateGroup(ctx, creator, &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey}); err != nil {
		t.Fatal(err)
	}
	dave := protocol.Sender{UserURI: "mimi://b.example/u/dave", Peer: "b.example"}
	for _, tc := range []struct {
		identity string
		want     error
	}{
		{"mimi://c.example/u/dave", hub.ErrForeignIdentity},
		{"mimi://localhost/d/carol/laptop", hub.ErrForeignIdentity},
		{"not a uri", hub.ErrForeignIdentity},
		{"mimi://b.example/u/eve", hub.ErrIdentityMismatch},
		{"mimi://b.example/d/eve/phone", hub.ErrIdentityMismatch},
	} {
		j, err := g.ExternalJoin(tc.identity)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.h.ExternalJoin(ctx, dave, joinRequest(j)); !errors.Is(err, tc.want) {
			t.Errorf("join as %q forwarded by b.example for dave: %v, want %v", tc.identity, err, tc.want)
		}
	}
	j, err := g.ExternalJoin("mimi://b.example/d/dave/phone")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.h.ExternalJoin(ctx, dave, joinRequest(j)); err != nil {
		t.Fatalf("dave's own join: %v", err)
	}
}
