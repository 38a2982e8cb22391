package mls

import "math/bits"

// Tree math for the array representation of RFC 9420 Appendix C. Node x is
// leaf x/2 when x is even; intermediate (parent) nodes are odd. A tree with n
// leaves (n a power of two, as RFC 9420 trees always are) has 2n-1 nodes.
//
// The functions take node indices and leaf counts as uint32 and never panic:
// callers (the ratchet tree) only pass in-range values, and the functions
// that have no answer (parent of the root, children of a leaf) report ok=false.

// tmLog2 is the exponent of the largest power of 2 not above x (0 for 0).
func tmLog2(x uint32) uint {
	if x == 0 {
		return 0
	}
	return uint(bits.Len32(x) - 1)
}

// tmLevel is the level of node x: 0 for leaves, the number of trailing 1 bits otherwise.
func tmLevel(x uint32) uint { return uint(bits.TrailingZeros32(^x)) }

// tmNodeWidth is the number of nodes of a tree with n leaves.
func tmNodeWidth(n uint32) uint32 {
	if n == 0 {
		return 0
	}
	return 2*(n-1) + 1
}

// tmRoot is the root node of a tree with n leaves.
func tmRoot(n uint32) uint32 {
	return (1 << tmLog2(tmNodeWidth(n))) - 1
}

// tmLeft is the left child of intermediate node x.
func tmLeft(x uint32) (uint32, bool) {
	k := tmLevel(x)
	if k == 0 {
		return 0, false
	}
	return x ^ (1 << (k - 1)), true
}

// tmRight is the right child of intermediate node x.
func tmRight(x uint32) (uint32, bool) {
	k := tmLevel(x)
	if k == 0 {
		return 0, false
	}
	return x ^ (3 << (k - 1)), true
}

// tmParent is the parent of node x in a tree with n leaves.
func tmParent(x, n uint32) (uint32, bool) {
	if x == tmRoot(n) || x >= tmNodeWidth(n) {
		return 0, false
	}
	k := tmLevel(x)
	b := (x >> (k + 1)) & 1
	return (x | (1 << k)) ^ (b << (k + 1)), true
}

// tmSibling is the other child of x's parent.
func tmSibling(x, n uint32) (uint32, bool) {
	p, ok := tmParent(x, n)
	if !ok {
		return 0, false
	}
	if x < p {
		return tmRight(p)
	}
	return tmLeft(p)
}

// tmDirectPath appends to dst the direct path of x, from x's parent to the root.
func tmDirectPath(dst []uint32, x, n uint32) []uint32 {
	for {
		p, ok := tmParent(x, n)
		if !ok {
			return dst
		}
		dst = append(dst, p)
		x = p
	}
}

// tmCopath appends to dst the copath of x: the sibling of x and of every
// node of its direct path but the root, ordered from leaf to root.
func tmCopath(dst []uint32, x, n uint32) []uint32 {
	for {
		s, ok := tmSibling(x, n)
		if !ok {
			return dst
		}
		dst = append(dst, s)
		x, _ = tmParent(x, n)
	}
}

// tmCommonAncestor is the lowest node on the direct paths of both x and y
// (x itself if y is below x, and so on).
func tmCommonAncestor(x, y uint32) uint32 {
	lx, ly := tmLevel(x)+1, tmLevel(y)+1
	if lx <= ly && x>>ly == y>>ly {
		return y
	}
	if ly <= lx && x>>lx == y>>lx {
		return x
	}
	k := uint(0)
	for x != y {
		x, y = x>>1, y>>1
		k++
	}
	return (x << k) + (1 << (k - 1)) - 1
}

// tmIsLeaf reports whether node x is a leaf.
func tmIsLeaf(x uint32) bool { return x&1 == 0 }
