package mlstest

import (
	"fmt"
	"math/bits"
	"slices"

	"github.com/mimids/mimids/mls"
)

// ExternalJoin is an external commit (RFC 9420 §12.4.3.2) made for a Group by
// a new member, with the group as it is in the epoch the commit opens.
type ExternalJoin struct {
	// Message is the commit: an encoded MLSMessage carrying a PublicMessage
	// from a new_member_commit sender, with one ExternalInit proposal and an
	// UpdatePath.
	Message []byte
	// Joiner is the new member, at its leaf in the new epoch.
	Joiner *Member
	// Next is the group in the new epoch: its members (the joiner included),
	// tree and GroupContext as a DS computes them from the commit, a GroupInfo
	// signed by the joiner that matches them (with ratchet_tree and a fresh
	// external_pub) and a fresh partition key. Next.ExternalJoin chains.
	Next *Group
}

// ExternalJoin builds the external commit by which a new client with the
// BasicCredential identity joins g, valid as a DS checks it from the public
// side: the joiner's leaf at the leftmost blank leaf, signed for the group
// and that leaf; an UpdatePath with fresh keys on the filtered direct path,
// one ciphertext per member of each copath node's resolution and a valid
// parent-hash chain; the commit signed by the joiner under g's GroupContext.
// The ExternalInit kem_output, the path ciphertexts and the confirmation tag
// are random (no key schedule exists), so members could not process it.
func (g *Group) ExternalJoin(identity string) (*ExternalJoin, error) {
	s := g.Suite
	tree, err := mls.NewTree(s.ID(), g.Tree)
	if err != nil {
		return nil, fmt.Errorf("mlstest: tree: %w", err)
	}
	var extTypes []mls.ExtensionType
	for _, e := range g.GroupContext.Extensions {
		extTypes = append(extTypes, e.ExtensionType)
	}
	joiner, err := newMember(s, identity, 0, extTypes)
	if err != nil {
		return nil, err
	}
	after := tree.Clone()
	if joiner.LeafIndex, err = after.AddLeaf(joiner.Leaf); err != nil {
		return nil, fmt.Errorf("mlstest: add the joiner: %w", err)
	}
	path, err := g.updatePath(after, joiner)
	if err != nil {
		return nil, err
	}
	joiner.Leaf = &path.LeafNode
	pm, msg, err := g.externalCommit(joiner, path)
	if err != nil {
		return nil, err
	}
	next, err := g.afterCommit(pm, joiner)
	if err != nil {
		return nil, err
	}
	return &ExternalJoin{Message: msg, Joiner: joiner, Next: next}, nil
}

// externalCommit frames and signs the joiner's commit; it returns the commit
// as decoded from its encoding (what a DS receives) and the encoding.
func (g *Group) externalCommit(joiner *Member, path *mls.UpdatePath) (*mls.PublicMessage, []byte, error) {
	s := g.Suite
	_, kemOutput, err := hpkeKeyPair(s.ID())
	if err != nil {
		return nil, nil, err
	}
	init := &mls.Proposal{ProposalType: mls.ProposalTypeExternalInit, ExternalInit: &mls.ExternalInit{KEMOutput: kemOutput}}
	content := mls.FramedContent{GroupID: g.GroupID, Epoch: g.Epoch, Sender: mls.Sender{SenderType: mls.SenderTypeNewMemberCommit},
		AuthenticatedData: []byte{}, ContentType: mls.ContentTypeCommit,
		Commit: &mls.Commit{Proposals: []mls.ProposalOrRef{{Type: mls.ProposalOrRefTypeProposal, Proposal: init}}, Path: path}}
	sig, err := mls.SignFramedContent(s, joiner.SignaturePriv, mls.WireFormatPublicMessage, &content, &g.GroupContext)
	if err != nil {
		return nil, nil, fmt.Errorf("mlstest: sign the external commit: %w", err)
	}
	pm := &mls.PublicMessage{Content: content, Auth: mls.FramedContentAuthData{Signature: sig, ConfirmationTag: random(s.HashSize())}}
	msg, err := (&mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatPublicMessage, PublicMessage: pm}).Marshal()
	if err != nil {
		return nil, nil, fmt.Errorf("mlstest: encode the external commit: %w", err)
	}
	dec, err := mls.DecodeMLSMessage(msg)
	if err != nil {
		return nil, nil, fmt.Errorf("mlstest: decode the external commit: %w", err)
	}
	return dec.PublicMessage, msg, nil
}

// afterCommit computes the group in the epoch the joiner's commit opens, as
// a DS does (mls.PublicGroup), and signs its GroupInfo as the joiner.
func (g *Group) afterCommit(pm *mls.PublicMessage, joiner *Member) (*Group, error) {
	pg, err := mls.NewPublicGroup(g.GroupInfo, g.Tree, mls.Options{})
	if err != nil {
		return nil, fmt.Errorf("mlstest: public state: %w", err)
	}
	state, _, err := pg.ProcessCommit(pm)
	if err != nil {
		return nil, fmt.Errorf("mlstest: the external commit does not verify: %w", err)
	}
	next := &Group{Suite: g.Suite, GroupID: g.GroupID, Epoch: g.Epoch + 1, Tree: state.RatchetTree(),
		GroupContext: state.GroupContext(), PartitionKey: NewPartitionKey()}
	next.Members = append(slices.Clone(g.Members), joiner)
	slices.SortFunc(next.Members, func(a, b *Member) int { return int(a.LeafIndex) - int(b.LeafIndex) })
	if next.RatchetTree, err = next.Tree.Marshal(); err != nil {
		return nil, fmt.Errorf("mlstest: tree: %w", err)
	}
	if err := next.signGroupInfo(joiner.LeafIndex, joiner.SignaturePriv, false, true, pm.Auth.ConfirmationTag); err != nil {
		return nil, err
	}
	return next, nil
}

// updatePath builds the joiner's UpdatePath in t (the tree with the joiner's
// leaf added) and its commit leaf, whose parent_hash chains to the path.
func (g *Group) updatePath(t *mls.Tree, joiner *Member) (*mls.UpdatePath, error) {
	s := g.Suite
	fdp, cop := filteredDirectPath(t, joiner.LeafIndex)
	path := &mls.UpdatePath{Nodes: make([]mls.UpdatePathNode, len(fdp))}
	for k := range fdp {
		_, pub, err := hpkeKeyPair(s.ID())
		if err != nil {
			return nil, err
		}
		cts := make([]mls.HPKECiphertext, len(t.Resolution(nil, cop[k])))
		for i := range cts {
			cts[i] = mls.HPKECiphertext{KEMOutput: random(len(pub)), Ciphertext: random(48)}
		}
		path.Nodes[k] = mls.UpdatePathNode{EncryptionKey: pub, EncryptedPathSecret: cts}
	}
	// Parent hashes run from the root down (§7.9); the copath subtrees are
	// untouched by the merge, so their current tree hashes are the original
	// sibling tree hashes.
	var ph []byte
	for k := len(fdp) - 1; k >= 0; k-- {
		ph = parentHash(s, path.Nodes[k].EncryptionKey, ph, t.NodeHash(cop[k]))
	}
	leaf := *joiner.Leaf
	_, encKey, err := hpkeKeyPair(s.ID())
	if err != nil {
		return nil, err
	}
	leaf.EncryptionKey, leaf.LeafNodeSource, leaf.Lifetime, leaf.ParentHash = encKey, mls.LeafNodeSourceCommit, mls.Lifetime{}, ph
	tbs, err := leaf.TBS(g.GroupID, joiner.LeafIndex)
	if err != nil {
		return nil, fmt.Errorf("mlstest: LeafNodeTBS: %w", err)
	}
	if leaf.Signature, err = s.SignWithLabel(joiner.SignaturePriv, mls.LeafNodeTBSLabel, tbs); err != nil {
		return nil, fmt.Errorf("mlstest: sign LeafNode: %w", err)
	}
	path.LeafNode = leaf
	return path, nil
}

// filteredDirectPath returns the filtered direct path of a leaf (§4.1.2:
// the parents whose copath child has a non-empty resolution) and, for each,
// that copath child.
func filteredDirectPath(t *mls.Tree, leaf uint32) (fdp, cop []uint32) {
	// The tree is complete (a power of two leaves): RFC 9420 §4.1 tree math.
	root := uint32(1)<<(bits.Len32(t.NodeCount())-1) - 1
	for x := 2 * leaf; x != root; {
		k := uint(bits.TrailingZeros32(^x)) // x's level
		p := (x | 1<<k) ^ ((x>>(k+1))&1)<<(k+1)
		sib := p + 1<<k // p's children are p ± 2^k
		if x > p {
			sib = p - 1<<k
		}
		if len(t.Resolution(nil, sib)) > 0 {
			fdp, cop = append(fdp, p), append(cop, sib)
		}
		x = p
	}
	return fdp, cop
}

// parentHash is Hash(ParentHashInput) (§7.9).
func parentHash(s *mls.Suite, encryptionKey, parent, siblingHash []byte) []byte {
	var b []byte
	for _, v := range [][]byte{encryptionKey, parent, siblingHash} {
		b = appendOpaque(b, v)
	}
	return s.Hash(b)
}

// appendOpaque appends v as an opaque<V>: a minimal variable-length
// integer length (RFC 9420 §2.1.2), then v.
func appendOpaque(b, v []byte) []byte {
	switch n := len(v); {
	case n < 1<<6:
		b = append(b, byte(n))
	case n < 1<<14:
		b = append(b, 0x40|byte(n>>8), byte(n))
	default:
		b = append(b, 0x80|byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, v...)
}

// GroupFromInfo is a group as a non-member sees it from a GroupInfo (an
// encoded MLSMessage) and, when the GroupInfo has no ratchet_tree, the tree
// served beside it: enough to make an ExternalJoin. It holds no member's
// keys. The GroupInfo must verify (mls.NewPublicGroup).
func GroupFromInfo(groupInfo, ratchetTree []byte) (*Group, error) {
	m, err := mls.DecodeMLSMessage(groupInfo)
	if err != nil {
		return nil, fmt.Errorf("mlstest: GroupInfo: %w", err)
	}
	if m.GroupInfo == nil {
		return nil, fmt.Errorf("%w: a %s, not a GroupInfo", ErrOptions, m.WireFormat)
	}
	var rt mls.RatchetTree
	if ratchetTree != nil {
		if rt, err = mls.DecodeRatchetTree(ratchetTree); err != nil {
			return nil, fmt.Errorf("mlstest: ratchet tree: %w", err)
		}
	}
	pg, err := mls.NewPublicGroup(m.GroupInfo, rt, mls.Options{})
	if err != nil {
		return nil, fmt.Errorf("mlstest: GroupInfo does not verify: %w", err)
	}
	g := &Group{Suite: pg.Suite(), GroupID: pg.GroupID(), Epoch: pg.Epoch(), Tree: pg.RatchetTree(),
		GroupContext: pg.GroupContext(), GroupInfo: m.GroupInfo, GroupInfoMessage: groupInfo}
	if g.RatchetTree, err = g.Tree.Marshal(); err != nil {
		return nil, fmt.Errorf("mlstest: tree: %w", err)
	}
	for _, mb := range pg.Members() {
		g.Members = append(g.Members, &Member{Identity: string(mb.Identity), LeafIndex: mb.LeafIndex,
			Leaf: pg.Tree().Leaf(mb.LeafIndex), SignaturePub: mb.SignatureKey})
	}
	return g, nil
}
