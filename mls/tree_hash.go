package mls

import "slices"

// TreeHash returns the tree hash of the root (§7.8).
func (t *Tree) TreeHash() []byte {
	return t.NodeHash(tmRoot(t.LeafCount()))
}

// NodeHash returns the tree hash of node x (§7.8), or nil if x is out of
// range. Hashes are cached until the subtree changes; the result must not be
// modified.
func (t *Tree) NodeHash(x uint32) []byte {
	if x >= uint32(len(t.nodes)) {
		return nil
	}
	return t.nodeHash(x)
}

func (t *Tree) nodeHash(x uint32) []byte {
	if h := t.hashes[x]; h != nil {
		return h
	}
	var h []byte
	if tmIsLeaf(x) {
		var ln *LeafNode
		if nd := t.nodes[x]; nd != nil {
			ln = nd.Leaf
		}
		h = t.leafHash(x/2, ln)
	} else {
		l, _ := tmLeft(x)
		r, _ := tmRight(x)
		lh, rh := t.nodeHash(l), t.nodeHash(r)
		var p *ParentNode
		if nd := t.nodes[x]; nd != nil {
			p = nd.Parent
		}
		h = t.parentNodeHash(p, lh, rh)
	}
	t.hashes[x] = h
	return h
}

// leafHash hashes TreeHashInput{leaf, LeafNodeHashInput{index, optional leaf}}.
func (t *Tree) leafHash(index uint32, ln *LeafNode) []byte {
	w := writer{buf: t.buf[:0]}
	w.u8(uint8(NodeTypeLeaf))
	w.u32(index)
	w.optional(ln != nil)
	if ln != nil {
		ln.encode(&w)
	}
	return t.sumScratch(&w)
}

// parentNodeHash hashes TreeHashInput{parent, ParentNodeHashInput{optional
// node, left_hash, right_hash}}.
func (t *Tree) parentNodeHash(p *ParentNode, lh, rh []byte) []byte {
	w := writer{buf: t.buf[:0]}
	w.u8(uint8(NodeTypeParent))
	w.optional(p != nil)
	if p != nil {
		p.encode(&w)
	}
	w.opaque("ParentNodeHashInput.left_hash", lh)
	w.opaque("ParentNodeHashInput.right_hash", rh)
	return t.sumScratch(&w)
}

// sumScratch hashes w's buffer and keeps it as scratch for the next input.
// Encoding errors cannot occur for values that were decoded or built by this
// package (every vector is far below 2^30 bytes); were one to occur, the
// hash of the partial encoding would simply not match anything.
func (t *Tree) sumScratch(w *writer) []byte {
	t.buf = w.buf
	return t.suite.Hash(w.buf)
}

// parentHash computes the parent hash of parent node p (§7.9) given the
// hash of its copath child, siblingHash: Hash(ParentHashInput).
func (t *Tree) parentHash(p *ParentNode, siblingHash []byte) []byte {
	w := writer{buf: t.buf[:0]}
	w.opaque("ParentHashInput.encryption_key", p.EncryptionKey)
	w.opaque("ParentHashInput.parent_hash", p.ParentHash)
	w.opaque("ParentHashInput.original_sibling_tree_hash", siblingHash)
	return t.sumScratch(&w)
}

// originalSiblingHash is the tree hash of node s with every leaf of excluded
// blanked and removed from all unmerged_leaves lists (§7.9). When no excluded
// leaf lies under s, that is s's ordinary (cached) tree hash.
func (t *Tree) originalSiblingHash(s uint32, excluded []uint32) []byte {
	if !anyLeafUnder(excluded, s) {
		return t.nodeHash(s)
	}
	if tmIsLeaf(s) {
		return t.leafHash(s/2, nil)
	}
	l, _ := tmLeft(s)
	r, _ := tmRight(s)
	lh := t.originalSiblingHash(l, excluded)
	rh := t.originalSiblingHash(r, excluded)
	var p *ParentNode
	if nd := t.nodes[s]; nd != nil {
		q := *nd.Parent
		q.UnmergedLeaves = slices.DeleteFunc(slices.Clone(q.UnmergedLeaves), func(u uint32) bool {
			return slices.Contains(excluded, u)
		})
		p = &q
	}
	return t.parentNodeHash(p, lh, rh)
}

// anyLeafUnder reports whether a leaf index of leaves lies under node x.
func anyLeafUnder(leaves []uint32, x uint32) bool {
	for _, l := range leaves {
		if inSubtree(2*l, x) {
			return true
		}
	}
	return false
}
