package mls

import (
	"bytes"
	"fmt"
	"slices"
)

// AddLeaf applies an Add to the tree (§12.1.1): ln goes to the leftmost
// blank leaf, the tree doubling when there is none, and the new leaf index
// joins the unmerged_leaves of every non-blank node on its direct path. It
// returns the new leaf's index. ln is installed as is (not validated).
func (t *Tree) AddLeaf(ln *LeafNode) (uint32, error) {
	i := t.leftmostBlankLeaf()
	if i == t.LeafCount() {
		if err := t.extend(); err != nil {
			return 0, err
		}
	}
	n := t.LeafCount()
	for x, ok := tmParent(2*i, n); ok; x, ok = tmParent(x, n) {
		p := t.Parent(x)
		if p == nil {
			continue
		}
		q := *p
		pos, _ := slices.BinarySearch(q.UnmergedLeaves, i)
		q.UnmergedLeaves = slices.Insert(slices.Clip(q.UnmergedLeaves), pos, i)
		t.setNode(x, &Node{NodeType: NodeTypeParent, Parent: &q})
	}
	t.setNode(2*i, &Node{NodeType: NodeTypeLeaf, Leaf: ln})
	return i, nil
}

// leftmostBlankLeaf returns the first blank leaf, or LeafCount if none.
func (t *Tree) leftmostBlankLeaf() uint32 {
	for x := 0; x < len(t.nodes); x += 2 {
		if t.nodes[x] == nil {
			return uint32(x / 2)
		}
	}
	return t.LeafCount()
}

// extend doubles the tree: the old tree becomes the left subtree of a new
// blank root. In the array representation that is appending blanks; every
// cached hash stays valid.
func (t *Tree) extend() error {
	n := t.LeafCount()
	if 2*n > maxTreeLeaves {
		return fmt.Errorf("%w: more than %d leaves", ErrTreeShape, maxTreeLeaves)
	}
	w := int(tmNodeWidth(2 * n))
	t.nodes = append(t.nodes, make([]*Node, w-len(t.nodes))...)
	t.hashes = append(t.hashes, make([][]byte, w-len(t.hashes))...)
	return nil
}

// RemoveLeaf applies a Remove (§12.1.3): leaf i and its direct path are
// blanked, then the tree is truncated while its right half has no member.
func (t *Tree) RemoveLeaf(i uint32) error {
	if i >= t.LeafCount() {
		return fmt.Errorf("%w: %d of %d", ErrLeafIndex, i, t.LeafCount())
	}
	if t.Leaf(i) == nil {
		return fmt.Errorf("%w: remove leaf %d", ErrBlankLeaf, i)
	}
	t.setNode(2*i, nil)
	t.blankDirectPath(2 * i)
	t.truncate()
	return nil
}

// truncate halves the tree while every leaf of the right half is blank.
func (t *Tree) truncate() {
	for n := t.LeafCount(); n > 1; n /= 2 {
		for x := n; x < 2*n; x += 2 { // node indices of leaves n/2 .. n-1
			if t.nodes[x] != nil {
				return
			}
		}
		w := tmNodeWidth(n / 2)
		clear(t.nodes[w:])
		clear(t.hashes[w:])
		t.nodes = t.nodes[:w]
		t.hashes = t.hashes[:w]
	}
}

// UpdateLeaf applies an Update (§12.1.2): leaf i becomes ln and its direct
// path is blanked.
func (t *Tree) UpdateLeaf(i uint32, ln *LeafNode) error {
	if i >= t.LeafCount() {
		return fmt.Errorf("%w: %d of %d", ErrLeafIndex, i, t.LeafCount())
	}
	if t.Leaf(i) == nil {
		return fmt.Errorf("%w: update leaf %d", ErrBlankLeaf, i)
	}
	t.setNode(2*i, &Node{NodeType: NodeTypeLeaf, Leaf: ln})
	t.blankDirectPath(2 * i)
	return nil
}

// MergeUpdatePath merges a commit's UpdatePath from leaf sender into the
// tree as a receiver does (§7.5) and checks its parent-hash chain (§7.9.2):
// the direct path is blanked, each node of the filtered direct path takes
// the path's key with empty unmerged_leaves and its computed parent_hash,
// and the new leaf's parent_hash must equal the parent hash of the first
// node. Each path node must carry one ciphertext per member of the copath
// child's resolution, leaves in newLeaves (this commit's Adds) excluded.
//
// The leaf is not otherwise validated here (signature, source, keys): see
// PublicGroup. On error the tree is left unchanged.
func (t *Tree) MergeUpdatePath(sender uint32, path *UpdatePath, newLeaves []uint32) error {
	if sender >= t.LeafCount() {
		return fmt.Errorf("%w: sender %d of %d", ErrLeafIndex, sender, t.LeafCount())
	}
	var fdpBuf, copBuf [32]uint32
	fdp, cop := t.filteredDirectPath(fdpBuf[:0], copBuf[:0], sender)
	if len(fdp) != len(path.Nodes) {
		return fmt.Errorf("%w: %d path nodes for a filtered direct path of %d", ErrUpdatePathLength, len(path.Nodes), len(fdp))
	}
	var res []uint32
	for k, s := range cop {
		res = t.Resolution(res[:0], s)
		want := len(res)
		for _, r := range res {
			if tmIsLeaf(r) && slices.Contains(newLeaves, r/2) {
				want--
			}
		}
		if got := len(path.Nodes[k].EncryptedPathSecret); got != want {
			return fmt.Errorf("%w: node %d has %d ciphertexts, resolution of its copath child has %d", ErrUpdatePathLength, fdp[k], got, want)
		}
	}
	// Parent hashes run from the root down. Each copath subtree is untouched
	// by the merge and the new path nodes have no unmerged leaves, so the
	// original sibling tree hash is the copath child's current tree hash.
	parents := make([]ParentNode, len(fdp))
	var ph []byte
	for k := len(fdp) - 1; k >= 0; k-- {
		parents[k] = ParentNode{EncryptionKey: path.Nodes[k].EncryptionKey, ParentHash: ph}
		ph = t.parentHash(&parents[k], t.nodeHash(cop[k]))
	}
	if !bytes.Equal(path.LeafNode.ParentHash, ph) || path.LeafNode.LeafNodeSource != LeafNodeSourceCommit {
		return fmt.Errorf("%w: leaf %d's parent_hash does not match its update path", ErrParentHashInvalid, sender)
	}
	t.blankDirectPath(2 * sender)
	for k, x := range fdp {
		t.setNode(x, &Node{NodeType: NodeTypeParent, Parent: &parents[k]})
	}
	t.setNode(2*sender, &Node{NodeType: NodeTypeLeaf, Leaf: &path.LeafNode})
	return nil
}
