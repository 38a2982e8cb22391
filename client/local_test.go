package client

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

// localPair is one provider (a.example, no peers configured) with two of its users:
// alice fetches, bob is fetched from and takes Welcomes.
type localPair struct {
	p        *providertest.Provider
	alice    *Client
	bob      *Client
	remote   *Remote
	relay    *byteRecorder // what a.example handled for alice's Remote
	welcomes chan *protocol.WelcomeDelivery
	bobKPs   [][]byte // uploaded: two ordinary, then the last resort
	bobRefs  [][]byte
}

func newLocalPair(t *testing.T) *localPair {
	t.Helper()
	lp := &localPair{welcomes: make(chan *protocol.WelcomeDelivery, 4)}
	lp.p = startProvider(t, "a.example", nil)
	if len(lp.p.Config.Peers) != 0 {
		t.Fatal("the provider has peers")
	}
	lp.alice, _ = dialAs(t, lp.p.Socket, lp.p.Dir, "alice", Config{})
	lp.bob, _ = dialAs(t, lp.p.Socket, lp.p.Dir, "bob", Config{Handler: func(_ context.Context, d *Delivery) error {
		if w, err := d.Welcome(); err == nil {
			lp.welcomes <- w
		}
		return nil
	}})
	for i := range 3 {
		kp, _, err := mlstest.NewKeyPackage(mlstest.KeyPackageOptions{Identity: "mimi://a.example/u/bob", LastResort: i == 2})
		if err != nil {
			t.Fatal(err)
		}
		lp.bobKPs = append(lp.bobKPs, kp)
	}
	var err error
	if lp.bobRefs, err = lp.bob.UploadKeyPackages(ctxT(t), lp.bobKPs); err != nil {
		t.Fatal(err)
	}
	// No PeerURL: the own domain's keys come from the own provider.
	var base string
	base, lp.relay = tap(t, lp.p.Base)
	if lp.remote, err = lp.alice.Remote(RemoteConfig{Base: base, HTTPClient: testHTTPClient(t)}); err != nil {
		t.Fatal(err)
	}
	if lp.remote.Domain() != "a.example" {
		t.Fatalf("Remote.Domain() = %q, want the domain of auth_ok's user_id", lp.remote.Domain())
	}
	return lp
}

func kpRequest(user, token string) protocol.KeyPackageRequest {
	return protocol.KeyPackageRequest{UserID: user, BearerToken: token, Version: mls.ProtocolVersionMLS10, CipherSuite: 1}
}

// TestRemoteLocalAddToGroup: two users of one provider with no peers configured;
// alice fetches a KeyPackage of bob through Remote, as from any provider, and adds
// him to a group she creates: bob's client gets the Welcome.
func TestRemoteLocalAddToGroup(t *testing.T) {
	lp := newLocalPair(t)
	ctx := ctxT(t)
	d, err := lp.remote.Discover(ctx, "a.example", nil, "mimi://a.example/u/bob")
	if err != nil {
		t.Fatal(err)
	}
	if d.UserID != "mimi://a.example/u/bob" || d.Provider != "a.example" || d.BearerToken == "" {
		t.Fatalf("discovery = %+v", d)
	}
	res, err := lp.remote.FetchKeyPackages(ctx, "a.example", nil, []protocol.KeyPackageRequest{kpRequest(d.UserID, d.BearerToken)})
	if err != nil || res[0].Err() != nil {
		t.Fatalf("fetch: %v, %+v", err, res)
	}
	kp := res[0].Response.KeyPackage
	suite, _ := mls.CipherSuite(1).Suite()
	ref := mls.MakeKeyPackageRef(suite, kp)
	if !bytes.Equal(ref, lp.bobRefs[0]) && !bytes.Equal(ref, lp.bobRefs[1]) {
		t.Fatalf("served KeyPackage %x is not one of bob's ordinary ones", ref[:4])
	}
	// One GET of the keys and two relay requests, all at the own provider.
	if n := lp.relay.count(); n != 3 {
		t.Errorf("own provider handled %d requests, want 3", n)
	}

	// The group has bob's leaf from that KeyPackage (the hub checks the Welcome's ref
	// against the tree).
	served, err := mls.DecodeKeyPackage(kp)
	if err != nil {
		t.Fatal(err)
	}
	g, err := mlstest.NewGroup(mlstest.Options{Identities: []string{"mimi://a.example/u/alice"}, Leaves: []*mls.LeafNode{&served.LeafNode}})
	if err != nil {
		t.Fatal(err)
	}
	welcome := &mls.Welcome{CipherSuite: 1, EncryptedGroupInfo: randomBytes(200), Secrets: []mls.EncryptedGroupSecrets{
		{NewMember: ref, EncryptedGroupSecrets: mls.HPKECiphertext{KEMOutput: randomBytes(32), Ciphertext: randomBytes(100)}}}}
	wb, err := (&mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatWelcome, Welcome: welcome}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// The same Welcome for a group without bob's leaf is refused: its ref was served,
	// but not for a member of that tree.
	without, err := mlstest.NewGroup(mlstest.Options{Identities: []string{"mimi://a.example/u/alice", "mimi://a.example/u/bob"}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = lp.alice.CreateGroup(ctx, &protocol.CreateGroupRequest{GroupInfo: without.GroupInfoMessage, PartitionKey: without.PartitionKey,
		WelcomeData: &protocol.WelcomeData{Welcome: wb, ServiceProviders: []string{"a.example"}}})
	if ErrorCode(err) != protocol.CodeInvalidMLS {
		t.Fatalf("Welcome for a group without the served leaf: %v, want invalid_mls", err)
	}
	if _, err := lp.alice.CreateGroup(ctx, &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey,
		WelcomeData: &protocol.WelcomeData{Welcome: wb, ServiceProviders: []string{"a.example"}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case w := <-lp.welcomes:
		if !bytes.Equal(w.GroupID, g.GroupID) || !bytes.Equal(w.Welcome, wb) || len(w.KeyPackageRefs) != 1 || !bytes.Equal(w.KeyPackageRefs[0], ref) {
			t.Fatalf("welcome delivery %+v", w)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("bob got no Welcome")
	}
}

// TestRemoteLocalRules: a local fetch follows the rules of a remote one: each
// KeyPackage is claimed once, the last resort is served when nothing else is left and
// stays, and bearer tokens are checked (bound to the user, revocable).
func TestRemoteLocalRules(t *testing.T) {
	lp := newLocalPair(t)
	ctx := ctxT(t)
	addClient(t, lp.p.Dir, "carol", "phone")
	bob, err := lp.remote.Discover(ctx, "a.example", nil, "mimi://a.example/u/bob")
	if err != nil {
		t.Fatal(err)
	}
	carol, err := lp.remote.Discover(ctx, "a.example", nil, "mimi://a.example/u/carol")
	if err != nil {
		t.Fatal(err)
	}
	reqs := []protocol.KeyPackageRequest{
		kpRequest(bob.UserID, bob.BearerToken),
		kpRequest(bob.UserID, carol.BearerToken), // issued for another user
		kpRequest(bob.UserID, "not-a-token"),
		kpRequest("mimi://a.example/u/nobody", bob.BearerToken), // bob's token says nothing of others
		{UserID: bob.UserID, BearerToken: bob.BearerToken, Version: mls.ProtocolVersionMLS10, CipherSuite: 2},
	}
	res, err := lp.remote.FetchKeyPackages(ctx, "a.example", nil, reqs)
	if err != nil {
		t.Fatal(err)
	}
	want := []protocol.FetchStatus{protocol.StatusOK, protocol.StatusBadToken, protocol.StatusBadToken,
		protocol.StatusBadToken, protocol.StatusNoKeyPackage}
	for i, r := range res {
		if r.Status != want[i] {
			t.Errorf("result %d: %s (%s), want %s", i, r.Status, r.Message, want[i])
		}
	}
	// bob has one client: a bundle names him once for a suite (more is refused whole).
	if _, err := lp.remote.FetchKeyPackages(ctx, "a.example", nil, []protocol.KeyPackageRequest{reqs[0], reqs[0]}); err == nil {
		t.Fatal("a bundle naming bob twice was served")
	}
	for range 3 {
		more, err := lp.remote.FetchKeyPackages(ctx, "a.example", nil, reqs[:1])
		if err != nil || more[0].Status != protocol.StatusOK {
			t.Fatalf("fetch: %v %+v", err, more)
		}
		res = append(res, more[0])
	}
	served := map[string]int{}
	for _, i := range []int{0, 5, 6, 7} {
		served[string(res[i].Response.KeyPackage)]++
	}
	bare := func(i int) string {
		m, err := mls.DecodeMLSMessage(lp.bobKPs[i])
		if err != nil {
			t.Fatal(err)
		}
		b, err := m.KeyPackage.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if served[bare(0)] != 1 || served[bare(1)] != 1 || served[bare(2)] != 2 {
		t.Errorf("served counts: ordinary %d, %d; last resort %d (want 1, 1, 2)", served[bare(0)], served[bare(1)], served[bare(2)])
	}
	if !bytes.Equal(res[0].Response.KeyPackage, []byte(bare(0))) && !bytes.Equal(res[0].Response.KeyPackage, []byte(bare(1))) {
		t.Error("the first fetch got the last resort while ordinary KeyPackages were left")
	}
	if st, err := lp.bob.KeyPackageCount(ctx, 1); err != nil || st.Available != 0 || !st.LastResort {
		t.Errorf("bob's stock after the fetch: %+v, %v", st, err)
	}

	// A revoked token: discover again.
	if _, err := lp.p.Disc.RevokeTokenString(ctx, bob.BearerToken); err != nil {
		t.Fatal(err)
	}
	res, err = lp.remote.FetchKeyPackages(ctx, "a.example", nil, reqs[:1])
	if err != nil || res[0].Status != protocol.StatusRevokedToken || !res[0].Status.DiscoverAgain() {
		t.Fatalf("revoked token: %v, %+v", err, res)
	}

	// The device token is checked by the relay as for a remote fetch.
	bad, err := NewRemote(RemoteConfig{Base: lp.p.Base, Token: "mdt_nope", Domain: "a.example", HTTPClient: testHTTPClient(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bad.Discover(ctx, "a.example", nil, bob.UserID); !errors.Is(err, ErrRelayUnauthorized) {
		t.Errorf("bad device token: %v", err)
	}
	if _, err := lp.remote.Discover(ctx, "a.example", nil, "mimi://a.example/u/nobody"); !errors.Is(err, ErrPeerUnknownUser) {
		t.Errorf("unknown user: %v", err)
	}
}
