package mls

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
)

type treeValidationVector struct {
	CipherSuite CipherSuite `json:"cipher_suite"`
	Tree        vbytes      `json:"tree"`
	GroupID     vbytes      `json:"group_id"`
	TreeHashes  []vbytes    `json:"tree_hashes"`
	Resolutions [][]uint32  `json:"resolutions"`
}

func decodeTestTree(t testing.TB, cs CipherSuite, b []byte) *Tree {
	t.Helper()
	rt, err := DecodeRatchetTree(b)
	if err != nil {
		t.Fatalf("decode tree: %v", err)
	}
	tr, err := NewTree(cs, rt)
	if err != nil {
		t.Fatalf("NewTree: %v", err)
	}
	return tr
}

func TestTreeValidationVectors(t *testing.T) {
	var vs []treeValidationVector
	readMLSVector(t, "tree-validation.json", &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	suites := map[CipherSuite]int{}
	for i, v := range vs {
		t.Run(fmt.Sprintf("%d/suite%d", i, v.CipherSuite), func(t *testing.T) {
			tr := decodeTestTree(t, v.CipherSuite, v.Tree)
			if got := tr.NodeCount(); int(got) != len(v.TreeHashes) {
				t.Fatalf("tree has %d nodes, vector %d", got, len(v.TreeHashes))
			}
			for x := range v.TreeHashes {
				if got := tr.NodeHash(uint32(x)); !bytes.Equal(got, v.TreeHashes[x]) {
					t.Errorf("tree hash of node %d = %x, want %x", x, got, v.TreeHashes[x])
				}
				got := tr.Resolution(nil, uint32(x))
				if !slices.Equal(got, v.Resolutions[x]) && !(len(got) == 0 && len(v.Resolutions[x]) == 0) {
					t.Errorf("resolution of node %d = %v, want %v", x, got, v.Resolutions[x])
				}
			}
			if err := tr.VerifyParentHashes(); err != nil {
				t.Errorf("parent hashes: %v", err)
			}
			if err := tr.Validate(v.GroupID, nil); err != nil {
				t.Errorf("Validate: %v", err)
			}
			// Re-encoding gives the vector's bytes back.
			enc, err := tr.Marshal()
			if err != nil || !bytes.Equal(enc, v.Tree) {
				t.Errorf("re-encoded tree differs (%v)", err)
			}
			suites[v.CipherSuite]++
		})
	}
	for cs := CipherSuite(1); cs <= 7; cs++ {
		if suites[cs] == 0 {
			t.Errorf("no tree-validation case passed for suite %d", cs)
		}
	}
}

// TestTreeValidationBadInputs damages valid vector trees one way at a time;
// each must fail with its own typed error.
func TestTreeValidationBadInputs(t *testing.T) {
	var vs []treeValidationVector
	readMLSVector(t, "tree-validation.json", &vs)
	v := vs[2] // suite 1, full 8-leaf tree with parent nodes
	tests := []struct {
		name   string
		damage func(tr *Tree)
		want   error
	}{
		{"parent hash does not chain", func(tr *Tree) {
			x := firstParent(tr)
			p := *tr.nodes[x].Parent
			p.ParentHash = append(bytes.Clone(p.ParentHash), 1)
			tr.setNode(x, &Node{NodeType: NodeTypeParent, Parent: &p})
		}, ErrParentHashInvalid},
		{"parent key changed", func(tr *Tree) {
			x := firstParent(tr)
			p := *tr.nodes[x].Parent
			p.EncryptionKey = bytes.Repeat([]byte{9}, len(p.EncryptionKey))
			tr.setNode(x, &Node{NodeType: NodeTypeParent, Parent: &p})
		}, ErrParentHashInvalid},
		{"bad leaf signature", func(tr *Tree) {
			ln := *tr.Leaf(1)
			ln.Signature = bytes.Clone(ln.Signature)
			ln.Signature[3] ^= 0x40
			tr.setNode(2, &Node{NodeType: NodeTypeLeaf, Leaf: &ln})
		}, ErrBadSignature},
		{"unmerged leaf not below node", func(tr *Tree) {
			x := firstParent(tr)
			p := *tr.nodes[x].Parent
			p.UnmergedLeaves = []uint32{tr.LeafCount() - 1}
			tr.setNode(x, &Node{NodeType: NodeTypeParent, Parent: &p})
		}, ErrUnmergedLeaves},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := decodeTestTree(t, v.CipherSuite, v.Tree)
			tc.damage(tr)
			if err := tr.Validate(v.GroupID, nil); !errors.Is(err, tc.want) {
				t.Fatalf("Validate = %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("duplicate keys", func(t *testing.T) {
		tr := decodeTestTree(t, v.CipherSuite, v.Tree)
		ln := *tr.Leaf(1)
		ln.SignatureKey = tr.Leaf(0).SignatureKey
		tr.setNode(2, &Node{NodeType: NodeTypeLeaf, Leaf: &ln})
		if err := tr.checkUniqueKeys(); !errors.Is(err, ErrDuplicateKey) {
			t.Fatalf("signature key: %v", err)
		}
		ln.SignatureKey = tr.Leaf(2).SignatureKey
		ln.EncryptionKey = tr.Leaf(0).EncryptionKey
		if err := tr.checkUniqueKeys(); !errors.Is(err, ErrDuplicateKey) {
			t.Fatalf("encryption key: %v", err)
		}
	})
}

func firstParent(tr *Tree) uint32 {
	for x := uint32(1); x < tr.NodeCount(); x += 2 {
		if tr.Parent(x) != nil {
			return x
		}
	}
	return 0
}
