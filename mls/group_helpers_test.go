package mls

import (
	"crypto/rand"
	"fmt"
	"testing"
)

// Helpers that build valid groups, KeyPackages, UpdatePaths and signed
// PublicMessages in Go, for the bad-input tests, the fuzz seeds and the
// benchmarks. HPKE keys and ciphertexts are random bytes: a DS never
// decrypts them, it only needs them unique and correctly counted.

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// tgMember is a client of a test group: its signature key pair.
type tgMember struct {
	priv, pub []byte
	identity  string
}

// testGroup is a PublicGroup together with the members' private keys.
type testGroup struct {
	tb      testing.TB
	suite   *Suite
	groupID []byte
	g       *PublicGroup
	members map[uint32]*tgMember // by leaf index
	next    int                  // for fresh identities
}

func (tg *testGroup) newMember() *tgMember {
	tg.tb.Helper()
	priv, pub, err := tg.suite.GenerateSignatureKey()
	if err != nil {
		tg.tb.Fatal(err)
	}
	tg.next++
	return &tgMember{priv: priv, pub: pub, identity: fmt.Sprintf("mimi://a.example/u/user%04d", tg.next)}
}

// leaf builds and signs a LeafNode for m. groupID and index are the
// signature context of update and commit leaves.
func (tg *testGroup) leaf(m *tgMember, src LeafNodeSource, index uint32, parentHash []byte) *LeafNode {
	tg.tb.Helper()
	ln := &LeafNode{
		EncryptionKey: randBytes(32),
		SignatureKey:  m.pub,
		Credential:    Credential{CredentialType: CredentialTypeBasic, Identity: []byte(m.identity)},
		Capabilities: Capabilities{
			Versions:     []ProtocolVersion{ProtocolVersionMLS10},
			CipherSuites: []CipherSuite{tg.suite.ID()},
			Credentials:  []CredentialType{CredentialTypeBasic},
		},
		LeafNodeSource: src,
	}
	switch src {
	case LeafNodeSourceKeyPackage:
		ln.Lifetime = Lifetime{NotBefore: 0, NotAfter: 1<<63 - 1}
	case LeafNodeSourceCommit:
		ln.ParentHash = parentHash
	}
	tbs, err := ln.TBS(tg.groupID, index)
	if err != nil {
		tg.tb.Fatal(err)
	}
	if ln.Signature, err = tg.suite.SignWithLabel(m.priv, LeafNodeTBSLabel, tbs); err != nil {
		tg.tb.Fatal(err)
	}
	return ln
}

// keyPackage builds and signs a KeyPackage for m.
func (tg *testGroup) keyPackage(m *tgMember) *KeyPackage {
	tg.tb.Helper()
	kp := &KeyPackage{Version: ProtocolVersionMLS10, CipherSuite: tg.suite.ID(), InitKey: randBytes(32),
		LeafNode: *tg.leaf(m, LeafNodeSourceKeyPackage, 0, nil)}
	tbs, err := kp.TBS()
	if err != nil {
		tg.tb.Fatal(err)
	}
	if kp.Signature, err = tg.suite.SignWithLabel(m.priv, KeyPackageTBSLabel, tbs); err != nil {
		tg.tb.Fatal(err)
	}
	return kp
}

// makePath builds a valid UpdatePath for leaf sender of tree t (the tree as
// it is after the commit's proposals): fresh keys on the filtered direct
// path, one random ciphertext per copath resolution member outside
// newLeaves, and a leaf whose parent_hash chains to the path.
func (tg *testGroup) makePath(t *Tree, sender uint32, newLeaves []uint32) *UpdatePath {
	fdp, cop := t.filteredDirectPath(nil, nil, sender)
	path := &UpdatePath{Nodes: make([]UpdatePathNode, len(fdp))}
	for k := range fdp {
		n := 0
		for _, r := range t.Resolution(nil, cop[k]) {
			if !(tmIsLeaf(r) && containsU32(newLeaves, r/2)) {
				n++
			}
		}
		cts := make([]HPKECiphertext, n)
		for i := range cts {
			cts[i] = HPKECiphertext{KEMOutput: randBytes(32), Ciphertext: randBytes(48)}
		}
		path.Nodes[k] = UpdatePathNode{EncryptionKey: randBytes(32), EncryptedPathSecret: cts}
	}
	var ph []byte
	for k := len(fdp) - 1; k >= 0; k-- {
		p := ParentNode{EncryptionKey: path.Nodes[k].EncryptionKey, ParentHash: ph}
		ph = t.parentHash(&p, t.nodeHash(cop[k]))
	}
	path.LeafNode = *tg.leaf(tg.members[sender], LeafNodeSourceCommit, sender, ph)
	return path
}

func containsU32(l []uint32, v uint32) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

// newTestGroup builds a group of n members with suite cs at epoch 5.
// With full set, every member in turn commits an UpdatePath while the tree
// is built, so parent nodes are populated as in a long-lived group;
// otherwise all parents are blank. ext are the GroupContext extensions.
func newTestGroup(tb testing.TB, cs CipherSuite, n int, full bool, ext Extensions) *testGroup {
	tb.Helper()
	s, err := cs.Suite()
	if err != nil {
		tb.Fatal(err)
	}
	tg := &testGroup{tb: tb, suite: s, groupID: randBytes(16), members: map[uint32]*tgMember{}}
	t := &Tree{suite: s, nodes: make([]*Node, 1), hashes: make([][]byte, 1)}
	for i := 0; i < n; i++ {
		m := tg.newMember()
		idx, err := t.AddLeaf(tg.leaf(m, LeafNodeSourceKeyPackage, 0, nil))
		if err != nil {
			tb.Fatal(err)
		}
		tg.members[idx] = m
	}
	if full {
		for i := uint32(0); i < uint32(n); i++ {
			if err := t.MergeUpdatePath(i, tg.makePath(t, i, nil), nil); err != nil {
				tb.Fatal(err)
			}
		}
	}
	gc := GroupContext{Version: ProtocolVersionMLS10, CipherSuite: cs, GroupID: tg.groupID, Epoch: 5,
		TreeHash: t.TreeHash(), ConfirmedTranscriptHash: randBytes(s.HashSize()), Extensions: ext}
	gi := &GroupInfo{GroupContext: gc, ConfirmationTag: randBytes(s.HashSize()), Signer: 0}
	tg.signGroupInfo(gi, 0)
	if tg.g, err = NewPublicGroup(gi, t.RatchetTree(), Options{}); err != nil {
		tb.Fatal(err)
	}
	return tg
}

// signGroupInfo signs gi as leaf signer.
func (tg *testGroup) signGroupInfo(gi *GroupInfo, signer uint32) {
	tg.tb.Helper()
	gi.Signer = signer
	tbs, err := gi.TBS()
	if err != nil {
		tg.tb.Fatal(err)
	}
	if gi.Signature, err = tg.suite.SignWithLabel(tg.members[signer].priv, GroupInfoTBSLabel, tbs); err != nil {
		tg.tb.Fatal(err)
	}
}

// publicMessage frames and signs content for g's current epoch with priv.
// Commits get a random confirmation tag, member senders a random
// membership tag (a DS can check neither).
func (tg *testGroup) publicMessage(g *PublicGroup, sender Sender, priv []byte, content FramedContent) *PublicMessage {
	tg.tb.Helper()
	content.GroupID, content.Epoch, content.Sender = g.GroupID(), g.Epoch(), sender
	ctx := g.GroupContext()
	sig, err := SignFramedContent(tg.suite, priv, WireFormatPublicMessage, &content, &ctx)
	if err != nil {
		tg.tb.Fatal(err)
	}
	pm := &PublicMessage{Content: content, Auth: FramedContentAuthData{Signature: sig}}
	if content.ContentType == ContentTypeCommit {
		pm.Auth.ConfirmationTag = randBytes(tg.suite.HashSize())
	}
	if sender.SenderType == SenderTypeMember {
		pm.MembershipTag = randBytes(tg.suite.HashSize())
	}
	return pm
}

// commit builds a commit from leaf sender covering proposals; with path, a
// valid UpdatePath is computed on the tree the proposals produce.
func (tg *testGroup) commit(g *PublicGroup, sender uint32, props []ProposalOrRef, path bool) *PublicMessage {
	tg.tb.Helper()
	c := &Commit{Proposals: props}
	if path {
		c.Path = tg.pathAfter(g, sender, props)
	}
	return tg.publicMessage(g, Sender{SenderType: SenderTypeMember, LeafIndex: sender},
		tg.members[sender].priv, FramedContent{ContentType: ContentTypeCommit, Commit: c})
}

// pathAfter applies the by-value Adds and Removes of props to a copy of g's
// tree (enough for the tests' commits) and builds sender's path on it.
func (tg *testGroup) pathAfter(g *PublicGroup, sender uint32, props []ProposalOrRef) *UpdatePath {
	t := g.Tree().Clone()
	var added []uint32
	for _, p := range props {
		if p.Proposal != nil && p.Proposal.Remove != nil {
			t.RemoveLeaf(p.Proposal.Remove.Removed)
		}
	}
	for _, p := range props {
		if p.Proposal != nil && p.Proposal.Add != nil {
			i, _ := t.AddLeaf(&p.Proposal.Add.KeyPackage.LeafNode)
			added = append(added, i)
		}
	}
	return tg.makePath(t, sender, added)
}

// proposal wraps a proposal as a member's PublicMessage.
func (tg *testGroup) proposal(g *PublicGroup, sender uint32, p *Proposal) *PublicMessage {
	tg.tb.Helper()
	return tg.publicMessage(g, Sender{SenderType: SenderTypeMember, LeafIndex: sender},
		tg.members[sender].priv, FramedContent{ContentType: ContentTypeProposal, Proposal: p})
}

func byValue(p *Proposal) ProposalOrRef {
	return ProposalOrRef{Type: ProposalOrRefTypeProposal, Proposal: p}
}

func byRef(ref []byte) ProposalOrRef {
	return ProposalOrRef{Type: ProposalOrRefTypeReference, Reference: ref}
}

func addProposal(kp *KeyPackage) *Proposal {
	return &Proposal{ProposalType: ProposalTypeAdd, Add: &Add{KeyPackage: *kp}}
}

func removeProposal(i uint32) *Proposal {
	return &Proposal{ProposalType: ProposalTypeRemove, Remove: &Remove{Removed: i}}
}

// roundTrip encodes and decodes pm, so tests exercise exactly what a DS
// receives on the wire.
func roundTrip(tb testing.TB, pm *PublicMessage) *MLSMessage {
	tb.Helper()
	b, err := (&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatPublicMessage, PublicMessage: pm}).Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	m, err := DecodeMLSMessage(b)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}
