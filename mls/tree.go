package mls

import (
	"errors"
	"fmt"
)

// Sentinel errors of ratchet tree validation and evolution. Errors returned
// by Tree methods wrap one of them (or ErrBadSignature) with the node or leaf
// concerned; test with errors.Is.
var (
	// ErrTreeHashMismatch means a tree's root hash differs from the tree_hash
	// it must match (GroupContext, GroupInfo, or a vector).
	ErrTreeHashMismatch = errors.New("mls: tree hash mismatch")
	// ErrParentHashInvalid means a parent node is not parent-hash valid
	// (§7.9.2), or a commit's leaf parent_hash does not chain to its path.
	ErrParentHashInvalid = errors.New("mls: parent hash does not chain")
	// ErrDuplicateKey means a signature key appears in two leaves, or an
	// encryption key in two nodes (§7.3, §12.4.3.1).
	ErrDuplicateKey = errors.New("mls: duplicate public key in tree")
	// ErrUnmergedLeaves means an unmerged_leaves list that is unsorted, names
	// a blank leaf or one outside the node's subtree, or is not repeated on
	// the non-blank nodes between the leaf and the node (§12.4.3.1).
	ErrUnmergedLeaves = errors.New("mls: inconsistent unmerged leaves")
	// ErrBlankLeaf means an operation on a leaf that is blank.
	ErrBlankLeaf = errors.New("mls: leaf is blank")
	// ErrLeafIndex means a leaf index outside the tree.
	ErrLeafIndex = errors.New("mls: leaf index out of range")
	// ErrTreeShape means a tree whose nodes are not at positions of their
	// type, or too large to index with uint32.
	ErrTreeShape = errors.New("mls: malformed ratchet tree")
	// ErrInvalidLeafNode means a LeafNode that fails §7.3 validation for
	// a reason other than its signature (capabilities, source, keys).
	ErrInvalidLeafNode = errors.New("mls: invalid leaf node")
	// ErrUpdatePathLength means an UpdatePath whose nodes do not match the
	// sender's filtered direct path, or whose ciphertext count does not match
	// the resolution of a copath node (§7.6).
	ErrUpdatePathLength = errors.New("mls: update path does not fit the tree")
)

// maxTreeLeaves bounds the leaves a Tree accepts (2^30): node indices then fit
// uint32 with room, and no length prefix can claim more.
const maxTreeLeaves = 1 << 30

// Tree is the public view of a ratchet tree (RFC 9420 §7) in the array
// representation of Appendix C, always padded to 2^d leaves. It knows no
// private keys: it computes resolutions, tree hashes and parent hashes,
// validates a received tree, and applies proposals and UpdatePaths as a
// member's public view would.
//
// Nodes are shared, never modified in place: every change installs a new
// *Node, so Clone is a cheap copy of two slices of pointers. Values decoded
// into a Tree alias the buffers they were decoded from; those must not be
// modified afterwards. A Tree is not safe for concurrent use (tree hashes are
// cached lazily).
type Tree struct {
	suite  *Suite
	nodes  []*Node  // len 2^(d+1)-1; nil is a blank node
	hashes [][]byte // tree hash cache per node; nil means not computed
	buf    []byte   // scratch for hash inputs
}

// NewTree builds the public view of rt for cipher suite cs. It checks only
// the shape (node types at their positions); Validate checks the rest.
func NewTree(cs CipherSuite, rt RatchetTree) (*Tree, error) {
	s, err := cs.Suite()
	if err != nil {
		return nil, err
	}
	if len(rt) == 0 || len(rt) > 2*maxTreeLeaves-1 {
		return nil, fmt.Errorf("%w: %d nodes", ErrTreeShape, len(rt))
	}
	n := uint32(1)
	for tmNodeWidth(n) < uint32(len(rt)) {
		n *= 2
	}
	t := &Tree{suite: s, nodes: make([]*Node, tmNodeWidth(n)), hashes: make([][]byte, tmNodeWidth(n))}
	for i, nd := range rt {
		if nd == nil {
			continue
		}
		leafPos := i%2 == 0
		if (leafPos && (nd.NodeType != NodeTypeLeaf || nd.Leaf == nil)) ||
			(!leafPos && (nd.NodeType != NodeTypeParent || nd.Parent == nil)) {
			return nil, fmt.Errorf("%w: node %d is not a %s", ErrTreeShape, i, map[bool]string{true: "leaf", false: "parent"}[leafPos])
		}
		t.nodes[i] = nd
	}
	return t, nil
}

// Clone returns an independent copy of t that shares its (immutable) nodes.
func (t *Tree) Clone() *Tree {
	return &Tree{
		suite:  t.suite,
		nodes:  append([]*Node(nil), t.nodes...),
		hashes: append([][]byte(nil), t.hashes...),
	}
}

// Suite returns the tree's cipher suite primitives.
func (t *Tree) Suite() *Suite { return t.suite }

// LeafCount returns the number of leaves, blank or not (a power of two).
func (t *Tree) LeafCount() uint32 { return uint32(len(t.nodes)+1) / 2 }

// Leaf returns the LeafNode at leaf index i, or nil if it is blank or out of range.
func (t *Tree) Leaf(i uint32) *LeafNode {
	if i >= t.LeafCount() || t.nodes[2*i] == nil {
		return nil
	}
	return t.nodes[2*i].Leaf
}

// Parent returns the ParentNode at node index x, or nil if x is blank, a leaf
// or out of range.
func (t *Tree) Parent(x uint32) *ParentNode {
	if x >= uint32(len(t.nodes)) || t.nodes[x] == nil {
		return nil
	}
	return t.nodes[x].Parent
}

// NodeCount returns the number of nodes, blank or not.
func (t *Tree) NodeCount() uint32 { return uint32(len(t.nodes)) }

// RatchetTree returns the tree as the ratchet_tree extension carries it:
// trailing blank nodes removed. The nodes are shared with t.
func (t *Tree) RatchetTree() RatchetTree {
	end := len(t.nodes)
	for end > 0 && t.nodes[end-1] == nil {
		end--
	}
	return append(RatchetTree(nil), t.nodes[:end]...)
}

// Marshal encodes the tree as optional<Node> ratchet_tree<V>.
func (t *Tree) Marshal() ([]byte, error) {
	rt := t.RatchetTree()
	return rt.Marshal()
}

// setNode installs n at node x and invalidates the cached hashes of x and
// its ancestors.
func (t *Tree) setNode(x uint32, n *Node) {
	t.nodes[x] = n
	n2 := t.LeafCount()
	for {
		t.hashes[x] = nil
		p, ok := tmParent(x, n2)
		if !ok {
			return
		}
		x = p
	}
}

// blankDirectPath blanks every node on the direct path of node x.
func (t *Tree) blankDirectPath(x uint32) {
	n := t.LeafCount()
	for {
		p, ok := tmParent(x, n)
		if !ok {
			return
		}
		if t.nodes[p] != nil {
			t.setNode(p, nil)
		}
		x = p
	}
}

// Resolution appends to dst the resolution of node x (§4.1.1): node indices,
// a non-blank node followed by its unmerged leaves.
func (t *Tree) Resolution(dst []uint32, x uint32) []uint32 {
	if x >= uint32(len(t.nodes)) {
		return dst
	}
	if nd := t.nodes[x]; nd != nil {
		dst = append(dst, x)
		if nd.Parent != nil {
			for _, l := range nd.Parent.UnmergedLeaves {
				dst = append(dst, 2*l)
			}
		}
		return dst
	}
	l, ok := tmLeft(x)
	if !ok {
		return dst
	}
	r, _ := tmRight(x)
	return t.Resolution(t.Resolution(dst, l), r)
}

// resolutionEmpty reports whether node x's resolution is empty, i.e. its
// whole subtree is blank.
func (t *Tree) resolutionEmpty(x uint32) bool {
	k := tmLevel(x)
	lo, hi := x-(1<<k-1), x+(1<<k-1)
	for i := lo; i <= hi; i++ {
		if t.nodes[i] != nil {
			return false
		}
	}
	return true
}

// filteredDirectPath appends to dst the filtered direct path of leaf i
// (§4.1.2), with, in copath, the copath child of each kept node.
func (t *Tree) filteredDirectPath(dst, copath []uint32, leaf uint32) ([]uint32, []uint32) {
	n := t.LeafCount()
	x := 2 * leaf
	for {
		p, ok := tmParent(x, n)
		if !ok {
			return dst, copath
		}
		s, _ := tmSibling(x, n)
		if !t.resolutionEmpty(s) {
			dst = append(dst, p)
			copath = append(copath, s)
		}
		x = p
	}
}

// inSubtree reports whether node y lies in the subtree rooted at node x.
func inSubtree(y, x uint32) bool {
	k := tmLevel(x)
	return y >= x-(1<<k-1) && y <= x+(1<<k-1)
}

// leaves calls f for each non-blank leaf in index order; f returning false stops.
func (t *Tree) leaves(f func(i uint32, ln *LeafNode) bool) {
	for x := 0; x < len(t.nodes); x += 2 {
		if nd := t.nodes[x]; nd != nil {
			if !f(uint32(x/2), nd.Leaf) {
				return
			}
		}
	}
}

// MemberCount returns the number of non-blank leaves.
func (t *Tree) MemberCount() int {
	c := 0
	t.leaves(func(uint32, *LeafNode) bool { c++; return true })
	return c
}
