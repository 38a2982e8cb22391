package mls

import (
	"bytes"
	"testing"
)

// fuzzCheckNext checks the invariants of an accepted commit: the next
// state's tree is valid and its hash is the GroupContext's.
func fuzzCheckNext(t *testing.T, g, next *PublicGroup) {
	if next.Epoch() != g.Epoch()+1 {
		t.Fatalf("epoch %d after %d", next.Epoch(), g.Epoch())
	}
	if !bytes.Equal(next.TreeHash(), next.Tree().TreeHash()) {
		t.Fatal("GroupContext tree hash differs from the tree's")
	}
	if err := next.Tree().Validate(next.GroupID(), next.Extensions()); err != nil {
		t.Fatalf("accepted commit left an invalid tree: %v", err)
	}
}

// FuzzProcessMessage feeds arbitrary bytes as an MLSMessage to the public
// state of a real ts-mls group (create-2.json at epoch 1, with bob's Update
// proposal cached). The seeds are the fixture's messages, among them a
// commit that applies to that state. It must never panic, and a commit it
// accepts must leave a valid tree.
func FuzzProcessMessage(f *testing.F) {
	var fx tsmlsGroup
	readTSMLS(f, "create-2.json", &fx)
	g := newGroupFromState(f, fx.Steps[1].After, Options{})
	m, err := DecodeMLSMessage(fx.Steps[4].Message)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := g.ProcessProposal(m.PublicMessage); err != nil {
		f.Fatal(err)
	}
	for _, st := range fx.Steps {
		f.Add([]byte(st.Message))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeMLSMessage(data)
		if err != nil {
			return
		}
		c := g.Clone() // ProcessProposal adds to the cache
		next, _, _, err := c.ProcessMessage(m)
		if err == nil && next != nil {
			fuzzCheckNext(t, c, next)
		}
	})
}

// FuzzProcessCommitSigned decodes arbitrary bytes as a Commit, frames it and
// signs it as a member of a 6-member Go-built group, so the fuzzer reaches
// proposal-list validation, tree application and path merging past the
// signature check. It must never panic, and an accepted commit must leave a
// valid tree.
func FuzzProcessCommitSigned(f *testing.F) {
	tg := newTestGroup(f, MLS128DHKEMX25519AES128GCMSHA256Ed25519, 6, true, nil)
	g := tg.g
	seeds := []*PublicMessage{
		tg.commit(g, 0, nil, true),
		tg.commit(g, 1, []ProposalOrRef{byValue(removeProposal(3))}, true),
		tg.commit(g, 2, []ProposalOrRef{byValue(addProposal(tg.keyPackage(tg.newMember())))}, false),
		tg.commit(g, 4, []ProposalOrRef{byValue(removeProposal(0)), byValue(addProposal(tg.keyPackage(tg.newMember())))}, true),
	}
	for _, pm := range seeds {
		b, err := pm.Content.Commit.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(pm.Content.Sender.LeafIndex), b)
	}
	f.Fuzz(func(t *testing.T, sender uint8, data []byte) {
		var c Commit
		if err := c.Unmarshal(data); err != nil {
			return
		}
		s := uint32(sender % 8)
		m := tg.members[s]
		if m == nil {
			m = tg.members[0]
		}
		tt := *tg // helpers report to t, not f
		tt.tb = t
		pm := tt.publicMessage(g, Sender{SenderType: SenderTypeMember, LeafIndex: s}, m.priv,
			FramedContent{ContentType: ContentTypeCommit, Commit: &c})
		next, _, err := g.ProcessCommit(pm)
		if err == nil {
			fuzzCheckNext(t, g, next)
		}
	})
}
