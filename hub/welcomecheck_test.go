package hub_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

// welcomeFor is a Welcome (random ciphertexts) with one secret per ref, and
// its WelcomeData naming provider for each.
func welcomeFor(t *testing.T, provider string, refs ...[]byte) *protocol.WelcomeData {
	t.Helper()
	rnd := func(n int) []byte { b := make([]byte, n); rand.Read(b); return b }
	w := &mls.Welcome{CipherSuite: 1, EncryptedGroupInfo: rnd(200)}
	wd := &protocol.WelcomeData{}
	for _, ref := range refs {
		w.Secrets = append(w.Secrets, mls.EncryptedGroupSecrets{NewMember: ref,
			EncryptedGroupSecrets: mls.HPKECiphertext{KEMOutput: rnd(32), Ciphertext: rnd(100)}})
		wd.ServiceProviders = append(wd.ServiceProviders, provider)
	}
	b, err := (&mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatWelcome, Welcome: w}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	wd.Welcome = b
	return wd
}

// keyPackageOf makes a KeyPackage of user and returns its leaf and ref.
func keyPackageOf(t *testing.T, user string) (*mls.LeafNode, []byte) {
	t.Helper()
	_, kp, err := mlstest.NewKeyPackage(mlstest.KeyPackageOptions{Identity: user})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := kp.Ref()
	if err != nil {
		t.Fatal(err)
	}
	return &kp.LeafNode, ref
}

// TestCreateGroupWelcomes: a Welcome at create_group may name only
// KeyPackages this provider served whose leaf is in the new group's tree;
// anything else is refused and creates nothing (before, such refs were
// dropped and the group created, or delivered to whoever was served them).
func TestCreateGroupWelcomes(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, "localhost", nil)
	alice := localSender(1, "alice", "phone")
	bobLeaf, bobRef := keyPackageOf(t, "mimi://localhost/u/bob")
	e.router.addServed(bobRef, 7, bobLeaf.SignatureKey)
	_, unservedRef := keyPackageOf(t, "mimi://localhost/u/bob")
	legacyLeaf, legacyRef := keyPackageOf(t, "mimi://localhost/u/carol")
	e.router.add(legacyRef, 8) // served before leaf keys were recorded
	// A leaf that claims bob with keys of its own.
	fake, err := mlstest.NewGroup(mlstest.Options{Identities: []string{"mimi://localhost/u/bob"}})
	if err != nil {
		t.Fatal(err)
	}
	fakeBob := fake.Members[0].Leaf
	for _, tc := range []struct {
		name    string
		leaves  []*mls.LeafNode
		welcome *protocol.WelcomeData
		want    error
		client  int64 // who gets the Welcome on success
	}{
		{"bob's served KeyPackage in the tree", []*mls.LeafNode{bobLeaf}, welcomeFor(t, "localhost", bobRef), nil, 7},
		{"served KeyPackage not in the tree", nil, welcomeFor(t, "localhost", bobRef), hub.ErrWelcomeMismatch, 0},
		{"a leaf claiming bob with other keys", []*mls.LeafNode{fakeBob}, welcomeFor(t, "localhost", bobRef), hub.ErrWelcomeMismatch, 0},
		{"never served", []*mls.LeafNode{bobLeaf}, welcomeFor(t, "localhost", unservedRef), hub.ErrWelcomeMismatch, 0},
		{"one of two never served", []*mls.LeafNode{bobLeaf}, welcomeFor(t, "localhost", bobRef, unservedRef), hub.ErrWelcomeMismatch, 0},
		{"served before leaf keys were recorded", []*mls.LeafNode{legacyLeaf}, welcomeFor(t, "localhost", legacyRef), nil, 8},
		{"another provider's KeyPackage (its provider checks it)", nil, welcomeFor(t, "b.example", unservedRef), nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{alice.ClientURI}, Leaves: tc.leaves})
			if err != nil {
				t.Fatal(err)
			}
			before := len(e.mbox.deliveries(tc.client))
			req := &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey, WelcomeData: tc.welcome}
			_, err = e.h.CreateGroup(ctx, alice, roundTrip(t, req, &protocol.CreateGroupRequest{}))
			if !errors.Is(err, tc.want) || tc.want == nil && err != nil {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if _, err := e.h.Partitions(ctx, g.GroupID); (err == nil) != (tc.want == nil) {
				t.Fatalf("group created: %v", err)
			}
			got := e.mbox.deliveries(tc.client)
			if tc.client != 0 {
				var d protocol.WelcomeDelivery
				if len(got) != before+1 || d.UnmarshalBinary(got[len(got)-1]) != nil || !bytes.Equal(d.GroupID, g.GroupID) {
					t.Fatalf("client %d got %d Welcomes, want %d for this group", tc.client, len(got), before+1)
				}
			}
		})
	}
	for _, c := range []int64{7, 8} {
		if n := len(e.mbox.deliveries(c)); n != 1 {
			t.Fatalf("client %d got %d Welcomes in all, want 1", c, n)
		}
	}
}
