package mls

import (
	"bytes"
	"errors"
	"testing"
)

// TestGoBuiltGroup drives a group built in Go through proposals by
// reference, external proposals and commits, in every suite.
func TestGoBuiltGroup(t *testing.T) {
	for cs := CipherSuite(1); cs <= 7; cs++ {
		t.Run(cs.String(), func(t *testing.T) {
			extKey := newTestGroup(t, cs, 1, false, nil).newMember()
			es := ExternalSenders{{SignatureKey: extKey.pub,
				Credential: Credential{CredentialType: CredentialTypeBasic, Identity: []byte("mimi://hub.example")}}}
			esData, err := es.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			tg := newTestGroup(t, cs, 5, true, Extensions{{ExtensionType: ExtensionTypeExternalSenders, ExtensionData: esData}})
			g := tg.g
			// Member 3 proposes an Add; the hub (external sender) proposes
			// removing member 4; member 1 commits both by reference.
			newcomer := tg.newMember()
			pr1, err := g.ProcessProposal(tg.proposal(g, 3, addProposal(tg.keyPackage(newcomer))))
			if err != nil {
				t.Fatal(err)
			}
			ext := tg.publicMessage(g, Sender{SenderType: SenderTypeExternal, SenderIndex: 0}, extKey.priv,
				FramedContent{ContentType: ContentTypeProposal, Proposal: removeProposal(4)})
			pr2, err := g.ProcessProposal(ext)
			if err != nil {
				t.Fatal(err)
			}
			props := []ProposalOrRef{byRef(pr1.Ref), byRef(pr2.Ref)}
			c := &Commit{Proposals: props}
			// The path is computed on the tree after Remove(4) and Add.
			tmp := g.Tree().Clone()
			tmp.RemoveLeaf(4)
			ni, _ := tmp.AddLeaf(&pr1.Proposal.Add.KeyPackage.LeafNode)
			c.Path = tg.makePath(tmp, 1, []uint32{ni})
			pm := tg.publicMessage(g, Sender{SenderType: SenderTypeMember, LeafIndex: 1}, tg.members[1].priv,
				FramedContent{ContentType: ContentTypeCommit, Commit: c})
			next, _, res, err := g.ProcessMessage(roundTrip(t, pm))
			if err != nil {
				t.Fatal(err)
			}
			if next.Epoch() != g.Epoch()+1 || len(res.Added) != 1 || res.Added[0].LeafIndex != 4 ||
				len(res.Removed) != 1 || res.Removed[0].LeafIndex != 4 || len(res.ProposalRefs) != 2 {
				t.Fatalf("result: epoch %d, added %+v, removed %+v", next.Epoch(), res.Added, res.Removed)
			}
			if err := next.Tree().Validate(next.GroupID(), next.Extensions()); err != nil {
				t.Fatalf("tree after commit: %v", err)
			}
			if !bytes.Equal(next.TreeHash(), next.Tree().TreeHash()) || bytes.Equal(next.TreeHash(), g.TreeHash()) {
				t.Fatal("tree hash not advanced")
			}
			if _, _, err := next.ProcessCommit(pm); !errors.Is(err, ErrEpochMismatch) {
				t.Fatalf("replayed commit: %v, want ErrEpochMismatch", err)
			}
		})
	}
}

// TestPublicGroupBadInput gives each kind of invalid input its own case and
// typed error.
func TestPublicGroupBadInput(t *testing.T) {
	tg := newTestGroup(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 6, true, nil)
	g := tg.g
	for _, tc := range badCommitCases(tg, g) {
		t.Run(tc.name, func(t *testing.T) {
			before := g.TreeHash()
			_, _, _, err := g.ProcessMessage(roundTrip(t, tc.msg()))
			if !errors.Is(err, tc.want) {
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
			if !bytes.Equal(before, g.TreeHash()) || !bytes.Equal(before, g.Tree().TreeHash()) {
				t.Fatal("a rejected commit changed the group")
			}
		})
	}
	// The same group accepts a valid commit: the cases fail for their reason.
	if _, _, err := g.ProcessCommit(tg.commit(g, 0, nil, true)); err != nil {
		t.Fatalf("valid commit: %v", err)
	}
}

type badCommitCase struct {
	name string
	msg  func() *PublicMessage
	want error
}

// badCommitCases are commits to tg's 6-member group (leaves 0-5 of 8),
// each invalid in one way.
func badCommitCases(tg *testGroup, g *PublicGroup) []badCommitCase {
	return []badCommitCase{
		{"sender leaf blank", func() *PublicMessage {
			pm := tg.commit(g, 0, nil, true)
			pm.Content.Sender.LeafIndex = 7 // a blank leaf of the 8-leaf tree
			return resign(tg, g, pm, tg.members[0].priv)
		}, ErrBlankSender},
		{"sender leaf outside the tree", func() *PublicMessage {
			pm := tg.commit(g, 0, nil, true)
			pm.Content.Sender.LeafIndex = 1000
			return resign(tg, g, pm, tg.members[0].priv)
		}, ErrBlankSender},
		{"proposal by reference never seen", func() *PublicMessage {
			return tg.commit(g, 0, []ProposalOrRef{byRef(randBytes(32))}, true)
		}, ErrUnknownProposalRef},
		{"duplicate Adds in one commit", func() *PublicMessage {
			kp := tg.keyPackage(tg.newMember())
			return tg.commit(g, 0, []ProposalOrRef{byValue(addProposal(kp)), byValue(addProposal(kp))}, false)
		}, ErrDuplicateAdd},
		{"Add of a client already a member", func() *PublicMessage {
			return tg.commit(g, 0, []ProposalOrRef{byValue(addProposal(tg.keyPackage(tg.members[2])))}, false)
		}, ErrDuplicateAdd},
		{"committer removes itself", func() *PublicMessage {
			return tg.commit(g, 2, []ProposalOrRef{byValue(removeProposal(2))}, false)
		}, ErrRemoveCommitter},
		{"Remove of a blank leaf", func() *PublicMessage {
			return tg.commit(g, 0, []ProposalOrRef{byValue(removeProposal(6))}, false)
		}, ErrBlankLeaf},
		{"Update by the committer", func() *PublicMessage {
			u := &Proposal{ProposalType: ProposalTypeUpdate, Update: &Update{LeafNode: *tg.leaf(tg.members[0], LeafNodeSourceUpdate, 0, nil)}}
			return tg.commit(g, 0, []ProposalOrRef{byValue(u)}, true)
		}, ErrUpdateByCommitter},
		{"two Removes of one leaf", func() *PublicMessage {
			return tg.commit(g, 0, []ProposalOrRef{byValue(removeProposal(3)), byValue(removeProposal(3))}, false)
		}, ErrConflictingProposals},
		{"Remove without path", func() *PublicMessage {
			return tg.commit(g, 0, []ProposalOrRef{byValue(removeProposal(3))}, false)
		}, ErrPathRequired},
		{"empty commit without path", func() *PublicMessage { return tg.commit(g, 0, nil, false) }, ErrPathRequired},
		{"ExternalInit in a member commit", func() *PublicMessage {
			ei := &Proposal{ProposalType: ProposalTypeExternalInit, ExternalInit: &ExternalInit{KEMOutput: randBytes(32)}}
			return tg.commit(g, 0, []ProposalOrRef{byValue(ei)}, true)
		}, ErrExternalInitMisuse},
		{"bad signature", func() *PublicMessage {
			pm := tg.commit(g, 0, nil, true)
			pm.Auth.Signature[5] ^= 1
			return pm
		}, ErrBadSignature},
		{"signed by another member", func() *PublicMessage {
			return resign(tg, g, tg.commit(g, 0, nil, true), tg.members[1].priv)
		}, ErrBadSignature},
		{"no confirmation tag", func() *PublicMessage {
			pm := tg.commit(g, 0, nil, true)
			pm.Auth.ConfirmationTag = nil
			return pm
		}, ErrMissingConfirmationTag},
		{"wrong epoch", func() *PublicMessage {
			pm := tg.commit(g, 0, nil, true)
			pm.Content.Epoch++
			return resign(tg, g, pm, tg.members[0].priv)
		}, ErrEpochMismatch},
		{"path parent hash does not chain", func() *PublicMessage {
			pm := tg.commit(g, 0, nil, true)
			path := pm.Content.Commit.Path
			*path = *tg.makePathWithLeafParentHash(g, 0, randBytes(32))
			return resign(tg, g, pm, tg.members[0].priv)
		}, ErrParentHashInvalid},
		{"path node key already in the tree", func() *PublicMessage {
			pm := tg.commit(g, 0, nil, true)
			pm.Content.Commit.Path.Nodes[0].EncryptionKey = g.Tree().Leaf(3).EncryptionKey
			return resign(tg, g, pm, tg.members[0].priv)
		}, ErrDuplicateKey},
		{"path leaf keeps its encryption key", func() *PublicMessage {
			pm := tg.commit(g, 0, nil, true)
			ln := &pm.Content.Commit.Path.LeafNode
			ln.EncryptionKey = g.Tree().Leaf(0).EncryptionKey
			tg.resignLeaf(ln, 0)
			return resign(tg, g, pm, tg.members[0].priv)
		}, ErrDuplicateKey},
		{"path leaf signature bad", func() *PublicMessage {
			pm := tg.commit(g, 0, nil, true)
			pm.Content.Commit.Path.LeafNode.Signature[0] ^= 1
			return resign(tg, g, pm, tg.members[0].priv)
		}, ErrBadSignature},
		{"path with a missing ciphertext", func() *PublicMessage {
			pm := tg.commit(g, 0, nil, true)
			n := &pm.Content.Commit.Path.Nodes[len(pm.Content.Commit.Path.Nodes)-1]
			n.EncryptedPathSecret = n.EncryptedPathSecret[1:]
			return resign(tg, g, pm, tg.members[0].priv)
		}, ErrUpdatePathLength},
	}
}

// resign re-signs a PublicMessage after a test changed its content.
func resign(tg *testGroup, g *PublicGroup, pm *PublicMessage, priv []byte) *PublicMessage {
	ctx := g.GroupContext()
	sig, err := SignFramedContent(tg.suite, priv, WireFormatPublicMessage, &pm.Content, &ctx)
	if err != nil {
		tg.tb.Fatal(err)
	}
	pm.Auth.Signature = sig
	return pm
}

func (tg *testGroup) resignLeaf(ln *LeafNode, index uint32) {
	tbs, err := ln.TBS(tg.groupID, index)
	if err != nil {
		tg.tb.Fatal(err)
	}
	if ln.Signature, err = tg.suite.SignWithLabel(tg.members[index].priv, LeafNodeTBSLabel, tbs); err != nil {
		tg.tb.Fatal(err)
	}
}

// makePathWithLeafParentHash builds a valid path whose leaf then carries
// (and signs) the given parent_hash instead of the right one.
func (tg *testGroup) makePathWithLeafParentHash(g *PublicGroup, sender uint32, ph []byte) *UpdatePath {
	p := tg.makePath(g.Tree(), sender, nil)
	p.LeafNode.ParentHash = ph
	tg.resignLeaf(&p.LeafNode, sender)
	return p
}

// TestNewPublicGroupBadInput checks what a GroupInfo and tree must satisfy.
func TestNewPublicGroupBadInput(t *testing.T) {
	tg := newTestGroup(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 5, true, nil)
	good := tg.g
	mkGI := func() *GroupInfo {
		gi := &GroupInfo{GroupContext: good.GroupContext(), ConfirmationTag: randBytes(32)}
		tg.signGroupInfo(gi, 0)
		return gi
	}
	if _, err := NewPublicGroup(mkGI(), good.RatchetTree(), Options{}); err != nil {
		t.Fatalf("valid GroupInfo: %v", err)
	}
	tests := []struct {
		name string
		make func() (*GroupInfo, RatchetTree)
		want error
	}{
		{"tree does not match tree_hash", func() (*GroupInfo, RatchetTree) {
			gi := mkGI()
			gi.GroupContext.TreeHash = randBytes(32)
			tg.signGroupInfo(gi, 0)
			return gi, good.RatchetTree()
		}, ErrTreeHashMismatch},
		{"parent hash does not chain", func() (*GroupInfo, RatchetTree) {
			tr := good.Tree().Clone()
			x := firstParent(tr)
			p := *tr.Parent(x)
			p.EncryptionKey = randBytes(32) // valid-looking key nobody chained to
			tr.setNode(x, &Node{NodeType: NodeTypeParent, Parent: &p})
			gi := mkGI()
			gi.GroupContext.TreeHash = tr.TreeHash() // the hash matches: only the chain is broken
			tg.signGroupInfo(gi, 0)
			return gi, tr.RatchetTree()
		}, ErrParentHashInvalid},
		{"bad GroupInfo signature", func() (*GroupInfo, RatchetTree) {
			gi := mkGI()
			gi.Signature[1] ^= 1
			return gi, good.RatchetTree()
		}, ErrBadSignature},
		{"signer is blank", func() (*GroupInfo, RatchetTree) {
			gi := mkGI()
			gi.Signer = 6
			return gi, good.RatchetTree()
		}, ErrGroupInfoSigner},
		{"no tree", func() (*GroupInfo, RatchetTree) { return mkGI(), nil }, ErrNoRatchetTree},
		{"unknown suite", func() (*GroupInfo, RatchetTree) {
			gi := mkGI()
			gi.GroupContext.CipherSuite = 0x0a0a
			return gi, good.RatchetTree()
		}, ErrUnsupportedCipherSuite},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gi, rt := tc.make()
			if _, err := NewPublicGroup(gi, rt, Options{}); !errors.Is(err, tc.want) {
				t.Fatalf("error = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestNewMemberProposal: a client outside the group proposes its own Add
// (sender new_member_proposal, signed with its KeyPackage's key); a member
// commits it by reference.
func TestNewMemberProposal(t *testing.T) {
	tg := newTestGroup(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 3, true, nil)
	g := tg.g
	joiner := tg.newMember()
	kp := tg.keyPackage(joiner)
	content := FramedContent{ContentType: ContentTypeProposal, Proposal: addProposal(kp)}
	pm := tg.publicMessage(g, Sender{SenderType: SenderTypeNewMemberProposal}, joiner.priv, content)
	pr, err := g.ProcessProposal(pm)
	if err != nil {
		t.Fatal(err)
	}
	// Signed by someone else: rejected.
	bad := tg.publicMessage(g, Sender{SenderType: SenderTypeNewMemberProposal}, tg.members[0].priv, content)
	if _, err := g.ProcessProposal(bad); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("new_member_proposal signed by another key: %v", err)
	}
	// A new_member_proposal may only be an Add.
	rm := tg.publicMessage(g, Sender{SenderType: SenderTypeNewMemberProposal}, joiner.priv,
		FramedContent{ContentType: ContentTypeProposal, Proposal: removeProposal(1)})
	if _, err := g.ProcessProposal(rm); !errors.Is(err, ErrSenderContent) {
		t.Fatalf("new_member_proposal Remove: %v", err)
	}
	next, res, err := g.ProcessCommit(tg.commit(g, 2, []ProposalOrRef{byRef(pr.Ref)}, false))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Added) != 1 || string(res.Added[0].Identity) != joiner.identity || next.Tree().MemberCount() != 4 {
		t.Fatalf("added %+v", res.Added)
	}
	if len(next.PendingProposals()) != 0 || len(g.PendingProposals()) != 1 {
		t.Fatal("proposal cache not reset in the new epoch, or changed in the old")
	}
}
