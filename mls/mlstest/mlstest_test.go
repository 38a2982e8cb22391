package mlstest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
	"github.com/mimids/mimids/sqlite"
)

var allSuites = []mls.CipherSuite{1, 2, 3, 4, 5, 6, 7}

// TestNewGroupVerifies checks that every suite's groups are what a joiner
// accepts: NewPublicGroup verifies the tree, its hash and the GroupInfo
// signature; every leaf signature verifies on its own.
func TestNewGroupVerifies(t *testing.T) {
	for _, cs := range allSuites {
		for _, tc := range []struct {
			name string
			o    mlstest.Options
		}{
			{"one member", mlstest.Options{}},
			{"five members, tree apart, external_pub", mlstest.Options{Members: 5, TreeApart: true, ExternalPub: true, Epoch: 7, Signer: 3}},
			{"named members with a GroupContext extension", mlstest.Options{
				Identities: []string{"mimi://a.example/d/alice/c1", "mimi://b.example/d/bob/c1", "mimi://a.example/d/carol/c2"},
				Extensions: mls.Extensions{{ExtensionType: protocol.ModerationExtensionType, ExtensionData: []byte{0, 0}}},
			}},
		} {
			t.Run(fmt.Sprintf("%v/%s", cs, tc.name), func(t *testing.T) {
				tc.o.CipherSuite = cs
				g, err := mlstest.NewGroup(tc.o)
				if err != nil {
					t.Fatal(err)
				}
				checkGroup(t, g, tc.o)
			})
		}
	}
}

func checkGroup(t *testing.T, g *mlstest.Group, o mlstest.Options) {
	t.Helper()
	m, err := mls.DecodeMLSMessage(g.GroupInfoMessage)
	if err != nil || m.WireFormat != mls.WireFormatGroupInfo {
		t.Fatalf("GroupInfo message: %v (%v)", err, m)
	}
	var tree mls.RatchetTree
	if o.TreeApart {
		if m.GroupInfo.Extensions.Has(mls.ExtensionTypeRatchetTree) {
			t.Fatal("TreeApart GroupInfo carries ratchet_tree")
		}
		if tree, err = mls.DecodeRatchetTree(g.RatchetTree); err != nil {
			t.Fatal(err)
		}
	} else if rt, err := m.GroupInfo.Extensions.RatchetTree(); err != nil || len(rt) == 0 {
		t.Fatalf("ratchet_tree extension: %v", err)
	}
	pg, err := mls.NewPublicGroup(m.GroupInfo, tree, mls.Options{StrictExtensionSupport: true})
	if err != nil {
		t.Fatalf("NewPublicGroup: %v", err)
	}
	want := max(o.Members, len(o.Identities), 1)
	if len(pg.Members()) != want || len(g.Members) != want {
		t.Errorf("%d members in the public group, %d built; want %d", len(pg.Members()), len(g.Members), want)
	}
	if pg.Epoch() != o.Epoch || !bytes.Equal(pg.GroupID(), g.GroupID) || pg.Suite().ID() != g.Suite.ID() {
		t.Errorf("epoch %d, group %x, suite %v", pg.Epoch(), pg.GroupID(), pg.Suite().ID())
	}
	for i, mem := range g.Members {
		if mem.LeafIndex != uint32(i) || (len(o.Identities) > 0 && mem.Identity != o.Identities[i]) {
			t.Errorf("member %d: index %d identity %q", i, mem.LeafIndex, mem.Identity)
		}
		if err := mem.Leaf.VerifySignature(g.Suite, g.GroupID, mem.LeafIndex); err != nil {
			t.Errorf("leaf %d: %v", i, err)
		}
		pub, err := g.Suite.SignaturePublicKey(mem.SignaturePriv)
		if err != nil || !bytes.Equal(pub, mem.SignaturePub) {
			t.Errorf("leaf %d: signature key pair does not match: %v", i, err)
		}
	}
	ep, err := m.GroupInfo.Extensions.ExternalPub()
	switch {
	case o.ExternalPub && (err != nil || !bytes.Equal(ep.ExternalPub, g.ExternalPub)):
		t.Errorf("external_pub: %v", err)
	case !o.ExternalPub && !errors.Is(err, mls.ErrExtensionNotFound):
		t.Errorf("unexpected external_pub: %v", err)
	}
	if len(g.PartitionKey) != mlstest.PartitionKeySize || !bytes.Equal(g.MaskedPartitionKey(), g.Suite.Hash(g.PartitionKey)) {
		t.Errorf("partition key %x", g.PartitionKey)
	}
}

// TestHPKEKeysAreRealPairs encrypts to each generated key and decrypts
// with its private key, for the suites the standard library can generate.
func TestHPKEKeysAreRealPairs(t *testing.T) {
	for _, cs := range []mls.CipherSuite{1, 2, 3, 5, 7} {
		t.Run(cs.String(), func(t *testing.T) {
			g, err := mlstest.NewGroup(mlstest.Options{CipherSuite: cs, ExternalPub: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, kp := range [][2][]byte{{g.Members[0].EncryptionPriv, g.Members[0].Leaf.EncryptionKey}, {g.ExternalPriv, g.ExternalPub}} {
				kem, ct, err := g.Suite.EncryptWithLabel(kp[1], "test", nil, []byte("hello"))
				if err != nil {
					t.Fatal(err)
				}
				pt, err := g.Suite.DecryptWithLabel(kp[0], "test", nil, kem, ct)
				if err != nil || string(pt) != "hello" {
					t.Fatalf("decrypt: %q, %v", pt, err)
				}
			}
		})
	}
}

func TestNewGroupBadOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    mlstest.Options
		want error
	}{
		{"negative size", mlstest.Options{Members: -1}, mlstest.ErrOptions},
		{"too many members", mlstest.Options{Members: mlstest.MaxMembers + 1}, mlstest.ErrOptions},
		{"signer out of range", mlstest.Options{Members: 2, Signer: 2}, mlstest.ErrOptions},
		{"unknown suite", mlstest.Options{CipherSuite: 0x99}, mls.ErrUnsupportedCipherSuite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := mlstest.NewGroup(tc.o); !errors.Is(err, tc.want) {
				t.Errorf("NewGroup = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestApplication(t *testing.T) {
	g, err := mlstest.NewGroup(mlstest.Options{Epoch: 3})
	if err != nil {
		t.Fatal(err)
	}
	ct := []byte("same ciphertext")
	a, err := g.Application(ct)
	if err != nil {
		t.Fatal(err)
	}
	b, err := g.Application(ct)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, b) {
		t.Error("two messages with one ciphertext are equal")
	}
	if !bytes.HasSuffix(a, ct) {
		t.Error("the encoded message does not end with its ciphertext")
	}
	m, err := mls.DecodeMLSMessage(a)
	if err != nil {
		t.Fatal(err)
	}
	pm := m.PrivateMessage
	if m.WireFormat != mls.WireFormatPrivateMessage || pm.ContentType != mls.ContentTypeApplication ||
		pm.Epoch != 3 || !bytes.Equal(pm.GroupID, g.GroupID) || !bytes.Equal(pm.Ciphertext, ct) {
		t.Errorf("decoded %+v", pm)
	}
	r, err := g.RandomApplication(64)
	if err != nil {
		t.Fatal(err)
	}
	if m, err := mls.DecodeMLSMessage(r); err != nil || len(m.PrivateMessage.Ciphertext) != 64 {
		t.Errorf("random application: %v", err)
	}
	if _, err := g.RandomApplication(-1); !errors.Is(err, mlstest.ErrOptions) {
		t.Errorf("RandomApplication(-1) = %v", err)
	}
}

type noRouter struct{}

func (noRouter) ServedRef(context.Context, []byte) (hub.ServedRef, bool, error) {
	return hub.ServedRef{}, false, nil
}

type noMailbox struct{}

func (noMailbox) Deliver(context.Context, int64, uint16, []byte) error { return nil }

// TestHubAcceptsGroups creates groups on a hub over SQLite and sequences
// application messages to them: every message gets its own counter.
func TestHubAcceptsGroups(t *testing.T) {
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
	// The default identities are client URIs; the creator is member 0.
	creator := protocol.Sender{ClientID: 1, ClientURI: "mimi://example.org/d/member0/c1", UserURI: "mimi://example.org/u/member0", Local: true}
	for _, tc := range []struct {
		name string
		o    mlstest.Options
	}{
		{"suite 1", mlstest.Options{}},
		{"suite 2, tree apart", mlstest.Options{CipherSuite: 2, TreeApart: true, Members: 3}},
		{"suite 7, external_pub", mlstest.Options{CipherSuite: 7, ExternalPub: true, Epoch: 2}},
		{"suite 4 (X448)", mlstest.Options{CipherSuite: 4, Members: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := mlstest.NewGroup(tc.o)
			if err != nil {
				t.Fatal(err)
			}
			req := &protocol.CreateGroupRequest{GroupInfo: g.GroupInfoMessage, PartitionKey: g.PartitionKey}
			if tc.o.TreeApart {
				req.RatchetTree = g.RatchetTree
			}
			var dec protocol.CreateGroupRequest
			if err := roundTrip(req, &dec); err != nil {
				t.Fatal(err)
			}
			resp, err := h.CreateGroup(ctx, creator, &dec)
			if err != nil {
				t.Fatalf("CreateGroup: %v", err)
			}
			if !bytes.Equal(resp.MaskedPartitionKey, g.MaskedPartitionKey()) {
				t.Errorf("masked key %x, want %x", resp.MaskedPartitionKey, g.MaskedPartitionKey())
			}
			ct := []byte("one ciphertext for all")
			for i := range 5 {
				msg, err := g.Application(ct)
				if err != nil {
					t.Fatal(err)
				}
				var sr protocol.SendRequest
				if err := roundTrip(&protocol.SendRequest{Message: msg, PartitionKey: g.PartitionKey}, &sr); err != nil {
					t.Fatal(err)
				}
				out, err := h.Send(ctx, creator, &sr)
				if err != nil || out.Counter != uint32(i) {
					t.Fatalf("Send %d: counter %d, %v", i, out.Counter, err)
				}
			}
		})
	}
}

type binaryCodec interface {
	MarshalBinary() ([]byte, error)
	UnmarshalBinary([]byte) error
}

// roundTrip encodes v and decodes it into into, as the socket does.
func roundTrip(v, into binaryCodec) error {
	b, err := v.MarshalBinary()
	if err != nil {
		return err
	}
	return into.UnmarshalBinary(b)
}

func BenchmarkNewGroup(b *testing.B) {
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := mlstest.NewGroup(mlstest.Options{Members: n}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkApplication(b *testing.B) {
	g, err := mlstest.NewGroup(mlstest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ct := make([]byte, 128)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := g.Application(ct); err != nil {
			b.Fatal(err)
		}
	}
}

func TestNewKeyPackageValidates(t *testing.T) {
	for _, cs := range []mls.CipherSuite{1, 2, 3, 5, 7} {
		for _, lr := range []bool{false, true} {
			b, _, err := mlstest.NewKeyPackage(mlstest.KeyPackageOptions{CipherSuite: cs, Identity: "mimi://a.example/u/alice", LastResort: lr})
			if err != nil {
				t.Fatal(err)
			}
			kp, err := mls.DecodeKeyPackageMessage(b)
			if err != nil {
				t.Fatal(err)
			}
			info, err := mls.ValidateKeyPackage(kp, time.Now())
			if err != nil || string(info.Identity) != "mimi://a.example/u/alice" {
				t.Fatalf("suite %d: %v", cs, err)
			}
		}
	}
	_, _, err := mlstest.NewKeyPackage(mlstest.KeyPackageOptions{CipherSuite: 0x7777})
	if err == nil {
		t.Fatal("unknown suite accepted")
	}
}
