// Package mlstest builds real, signed MLS groups in Go for tests and load
// generators of a Delivery Service: members with freshly generated
// signature and HPKE keys, LeafNodes signed over LeafNodeTBS, a ratchet
// tree, a GroupContext, and a GroupInfo signed by a member's leaf over
// GroupInfoTBS (with the ratchet_tree extension, or with the tree given
// apart, and optionally external_pub), encoded as MLSMessages, together with
// a random 16-byte partition key. It also makes application PrivateMessages
// for such a group whose ciphertext is chosen by the caller or random: a DS
// cannot decrypt them, so it only needs them framed correctly and distinct.
//
// The groups are what a joiner would accept from the public side (tree
// hash, tree validity, signatures; mls.NewPublicGroup checks exactly that);
// no secret of the key schedule exists, so confirmation tags and transcript
// hashes are random and nothing can be decrypted. Encryption keys are real
// key pairs (crypto/ecdh) for the X25519 and NIST suites; the standard
// library has no X448, so suites 4 and 6 get random 56-byte public keys
// (every 56-byte string is an X448 public key) and no private key.
//
// The package imports only mls and the standard library, so that commands
// (such as `mimids bench-group`) may use it as well as tests.
package mlstest

import (
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/mimids/mimids/mls"
)

// ErrOptions is wrapped by NewGroup's errors for options it cannot honor.
var ErrOptions = errors.New("mlstest: invalid options")

// PartitionKeySize is the length of a partition key (the draft's
// `opaque PartitionKey<16>`).
const PartitionKeySize = 16

// PartitionKeyLabel is the MLS exporter label of the partition key rule
// (docs/protocol.md §4): partition_key = MLS-Exporter(PartitionKeyLabel, "", 16).
const PartitionKeyLabel = "mimi partition key"

// MaxMembers bounds Options.Members and Options.Identities.
const MaxMembers = 1 << 12

// Options choose the group NewGroup builds. The zero value is a one-member
// group of suite 1 at epoch 0 whose GroupInfo carries the ratchet tree.
type Options struct {
	// CipherSuite is the group's suite (default 1,
	// MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519).
	CipherSuite mls.CipherSuite
	// GroupID is the group ID (default 16 random bytes).
	GroupID []byte
	// Epoch is the GroupContext epoch. At epoch 0 the confirmed transcript
	// hash is empty, as RFC 9420 §8.2 has it for a new group; later epochs
	// get a random one.
	Epoch uint64
	// Identities are the members' BasicCredential identities, one member
	// each, in leaf order. When empty, Members members are made with
	// identities mimi://example.org/d/member<i>/c1.
	Identities []string
	// Members is the group size when Identities is empty (default 1).
	Members int
	// Leaves are further members, after those of Identities or Members, whose
	// leaf nodes are used as given: typically the leaf_node of KeyPackages the
	// creator adds (a key_package leaf fits any index). They have no private
	// keys here (Member.SignaturePriv is nil), so none signs the GroupInfo.
	Leaves []*mls.LeafNode
	// Signer is the leaf index of the member that signs the GroupInfo
	// (default 0, the creator).
	Signer uint32
	// Extensions are the GroupContext extensions. Every member's
	// capabilities list their types.
	Extensions mls.Extensions
	// TreeApart leaves the ratchet_tree extension out of the GroupInfo; the
	// tree is then only in Group.RatchetTree (to be sent beside it).
	TreeApart bool
	// ExternalPub adds an external_pub extension to the GroupInfo with a
	// fresh HPKE key pair (Group.ExternalPriv holds the private key).
	ExternalPub bool
}

// Member is one member of a Group with its keys.
type Member struct {
	Identity  string
	LeafIndex uint32
	Leaf      *mls.LeafNode
	// SignaturePriv and SignaturePub are the member's signature key pair in
	// the suite's serialization.
	SignaturePriv, SignaturePub []byte
	// EncryptionPriv is the HPKE private key of Leaf.EncryptionKey; nil for
	// X448 suites.
	EncryptionPriv []byte
}

// Group is a group built by NewGroup. Its byte slices are its own.
type Group struct {
	Suite        *mls.Suite
	GroupID      []byte
	Epoch        uint64
	Members      []*Member
	Tree         mls.RatchetTree
	GroupContext mls.GroupContext
	GroupInfo    *mls.GroupInfo
	// GroupInfoMessage is the GroupInfo as an encoded MLSMessage.
	GroupInfoMessage []byte
	// RatchetTree is the encoded tree (`optional<Node> ratchet_tree<V>`, the
	// body of the ratchet_tree extension).
	RatchetTree []byte
	// PartitionKey is a random 16-byte partition key for the group's epoch.
	PartitionKey []byte
	// ExternalPub and ExternalPriv are the external_pub key pair when
	// Options.ExternalPub was set (ExternalPriv nil for X448 suites).
	ExternalPub, ExternalPriv []byte
}

// NewGroup builds a group as o describes.
func NewGroup(o Options) (*Group, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	s, err := o.CipherSuite.Suite()
	if err != nil {
		return nil, fmt.Errorf("mlstest: %w", err)
	}
	g := &Group{Suite: s, GroupID: o.GroupID, Epoch: o.Epoch, PartitionKey: NewPartitionKey()}
	var extTypes []mls.ExtensionType
	for _, e := range o.Extensions {
		extTypes = append(extTypes, e.ExtensionType)
	}
	rt := make(mls.RatchetTree, 2*(len(o.Identities)+len(o.Leaves))-1)
	for i, id := range o.Identities {
		m, err := newMember(s, id, uint32(i), extTypes)
		if err != nil {
			return nil, err
		}
		g.Members = append(g.Members, m)
		rt[2*i] = &mls.Node{NodeType: mls.NodeTypeLeaf, Leaf: m.Leaf}
	}
	for j, ln := range o.Leaves {
		i := len(o.Identities) + j
		m := &Member{Identity: string(ln.Credential.Identity), LeafIndex: uint32(i), Leaf: ln, SignaturePub: ln.SignatureKey}
		g.Members = append(g.Members, m)
		rt[2*i] = &mls.Node{NodeType: mls.NodeTypeLeaf, Leaf: ln}
	}
	tree, err := mls.NewTree(o.CipherSuite, rt)
	if err != nil {
		return nil, fmt.Errorf("mlstest: tree: %w", err)
	}
	g.Tree = tree.RatchetTree()
	if g.RatchetTree, err = g.Tree.Marshal(); err != nil {
		return nil, fmt.Errorf("mlstest: tree: %w", err)
	}
	g.GroupContext = mls.GroupContext{Version: mls.ProtocolVersionMLS10, CipherSuite: o.CipherSuite,
		GroupID: g.GroupID, Epoch: o.Epoch, TreeHash: tree.TreeHash(), ConfirmedTranscriptHash: []byte{},
		Extensions: o.Extensions}
	if o.Epoch > 0 {
		g.GroupContext.ConfirmedTranscriptHash = random(s.HashSize())
	}
	tag := random(s.HashSize())
	if err := g.signGroupInfo(o.Signer, g.Members[o.Signer].SignaturePriv, o.TreeApart, o.ExternalPub, tag); err != nil {
		return nil, err
	}
	return g, nil
}

func (o Options) withDefaults() (Options, error) {
	if o.CipherSuite == 0 {
		o.CipherSuite = mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519
	}
	if o.GroupID == nil {
		o.GroupID = random(16)
	} else {
		o.GroupID = append([]byte(nil), o.GroupID...)
	}
	if len(o.Identities) == 0 {
		if o.Members == 0 {
			o.Members = 1
		}
		if o.Members < 1 || o.Members > MaxMembers {
			return o, fmt.Errorf("%w: %d members, want 1..%d", ErrOptions, o.Members, MaxMembers)
		}
		for i := range o.Members {
			o.Identities = append(o.Identities, fmt.Sprintf("mimi://example.org/d/member%d/c1", i))
		}
	}
	if len(o.Identities)+len(o.Leaves) > MaxMembers {
		return o, fmt.Errorf("%w: %d members, want at most %d", ErrOptions, len(o.Identities)+len(o.Leaves), MaxMembers)
	}
	for i, ln := range o.Leaves {
		if ln == nil {
			return o, fmt.Errorf("%w: leaf %d is nil", ErrOptions, i)
		}
	}
	if int(o.Signer) >= len(o.Identities) {
		return o, fmt.Errorf("%w: signer %d of %d members", ErrOptions, o.Signer, len(o.Identities))
	}
	return o, nil
}

// signGroupInfo makes g's GroupInfo and its MLSMessage encoding, signed by
// leaf signer with priv.
func (g *Group) signGroupInfo(signer uint32, priv []byte, treeApart, externalPub bool, tag []byte) error {
	gi := &mls.GroupInfo{GroupContext: g.GroupContext, ConfirmationTag: tag, Signer: signer}
	if !treeApart {
		gi.Extensions = append(gi.Extensions, mls.Extension{ExtensionType: mls.ExtensionTypeRatchetTree, ExtensionData: g.RatchetTree})
	}
	if externalPub {
		xpriv, xpub, err := hpkeKeyPair(g.Suite.ID())
		if err != nil {
			return err
		}
		g.ExternalPub, g.ExternalPriv = xpub, xpriv
		body, err := (&mls.ExternalPub{ExternalPub: xpub}).Marshal()
		if err != nil {
			return fmt.Errorf("mlstest: external_pub: %w", err)
		}
		gi.Extensions = append(gi.Extensions, mls.Extension{ExtensionType: mls.ExtensionTypeExternalPub, ExtensionData: body})
	}
	tbs, err := gi.TBS()
	if err != nil {
		return fmt.Errorf("mlstest: GroupInfoTBS: %w", err)
	}
	if gi.Signature, err = g.Suite.SignWithLabel(priv, mls.GroupInfoTBSLabel, tbs); err != nil {
		return fmt.Errorf("mlstest: sign GroupInfo: %w", err)
	}
	g.GroupInfo = gi
	msg := &mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatGroupInfo, GroupInfo: gi}
	if g.GroupInfoMessage, err = msg.Marshal(); err != nil {
		return fmt.Errorf("mlstest: encode GroupInfo: %w", err)
	}
	return nil
}

// newMember generates a member's keys and its signed key_package LeafNode
// (whose LeafNodeTBS has no group context, so it fits any leaf index).
func newMember(s *mls.Suite, identity string, index uint32, extTypes []mls.ExtensionType) (*Member, error) {
	sigPriv, sigPub, err := s.GenerateSignatureKey()
	if err != nil {
		return nil, fmt.Errorf("mlstest: signature key: %w", err)
	}
	encPriv, encPub, err := hpkeKeyPair(s.ID())
	if err != nil {
		return nil, err
	}
	ln := &mls.LeafNode{
		EncryptionKey: encPub, SignatureKey: sigPub,
		Credential: mls.Credential{CredentialType: mls.CredentialTypeBasic, Identity: []byte(identity)},
		Capabilities: mls.Capabilities{
			Versions:     []mls.ProtocolVersion{mls.ProtocolVersionMLS10},
			CipherSuites: []mls.CipherSuite{s.ID()},
			Extensions:   append([]mls.ExtensionType(nil), extTypes...),
			Credentials:  []mls.CredentialType{mls.CredentialTypeBasic},
		},
		LeafNodeSource: mls.LeafNodeSourceKeyPackage,
		Lifetime:       mls.Lifetime{NotBefore: 0, NotAfter: 1<<63 - 1},
	}
	tbs, err := ln.TBS(nil, index)
	if err != nil {
		return nil, fmt.Errorf("mlstest: LeafNodeTBS: %w", err)
	}
	if ln.Signature, err = s.SignWithLabel(sigPriv, mls.LeafNodeTBSLabel, tbs); err != nil {
		return nil, fmt.Errorf("mlstest: sign LeafNode: %w", err)
	}
	return &Member{Identity: identity, LeafIndex: index, Leaf: ln,
		SignaturePriv: sigPriv, SignaturePub: sigPub, EncryptionPriv: encPriv}, nil
}

// hpkeKeyPair generates a key pair of the suite's KEM. For X448 it returns a
// random public key and no private key (see the package doc).
func hpkeKeyPair(cs mls.CipherSuite) (priv, pub []byte, err error) {
	var curve ecdh.Curve
	switch cs {
	case mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519, mls.MLS128DHKEMX25519ChaCha20Poly1305SHA256Ed25519:
		curve = ecdh.X25519()
	case mls.MLS128DHKEMP256AES128GCMSHA256P256:
		curve = ecdh.P256()
	case mls.MLS256DHKEMP384AES256GCMSHA384P384:
		curve = ecdh.P384()
	case mls.MLS256DHKEMP521AES256GCMSHA512P521:
		curve = ecdh.P521()
	case mls.MLS256DHKEMX448AES256GCMSHA512Ed448, mls.MLS256DHKEMX448ChaCha20Poly1305SHA512Ed448:
		return nil, random(56), nil
	default:
		return nil, nil, fmt.Errorf("%w: cipher suite %v", ErrOptions, cs)
	}
	k, err := curve.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("mlstest: HPKE key: %w", err)
	}
	return k.Bytes(), k.PublicKey().Bytes(), nil
}

// NewPartitionKey returns a random partition key. Real clients derive it as
// MLS-Exporter("mimi partition key", "", 16) of the epoch (docs/protocol.md §4,
// PartitionKeyLabel); these groups have no key schedule, and the hub cannot tell
// a random key from a derived one.
func NewPartitionKey() []byte { return random(PartitionKeySize) }

// MaskedPartitionKey returns Hash(partition_key) with the group's suite hash,
// the hub's name for the partition.
func (g *Group) MaskedPartitionKey() []byte { return g.Suite.Hash(g.PartitionKey) }

func random(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}
