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
	Tree        hexBytes    `json:"tree"`
	GroupID     hexBytes    `json:"group_id"`
	TreeHashes  []hexBytes  `json:"tree_hashes"`
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
	loadCodecVectors(t, "tree-validation.json", &vs)
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
	loadCodecVectors(t, "tree-validation.json", &vs)
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

type treeOperationsVector struct {
	CipherSuite    CipherSuite `json:"cipher_suite"`
	TreeBefore     hexBytes    `json:"tree_before"`
	Proposal       hexBytes    `json:"proposal"`
	ProposalSender uint32      `json:"proposal_sender"`
	TreeHashBefore hexBytes    `json:"tree_hash_before"`
	TreeAfter      hexBytes    `json:"tree_after"`
	TreeHashAfter  hexBytes    `json:"tree_hash_after"`
}

func TestTreeOperationsVectors(t *testing.T) {
	var vs []treeOperationsVector
	loadCodecVectors(t, "tree-operations.json", &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	for i, v := range vs {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			tr := decodeTestTree(t, v.CipherSuite, v.TreeBefore)
			if got := tr.TreeHash(); !bytes.Equal(got, v.TreeHashBefore) {
				t.Fatalf("tree_hash_before = %x, want %x", got, v.TreeHashBefore)
			}
			p, err := DecodeProposal(v.Proposal)
			if err != nil {
				t.Fatal(err)
			}
			switch p.ProposalType {
			case ProposalTypeAdd:
				_, err = tr.AddLeaf(&p.Add.KeyPackage.LeafNode)
			case ProposalTypeRemove:
				err = tr.RemoveLeaf(p.Remove.Removed)
			case ProposalTypeUpdate:
				err = tr.UpdateLeaf(v.ProposalSender, &p.Update.LeafNode)
			default:
				t.Fatalf("unexpected proposal type %s", p.ProposalType)
			}
			if err != nil {
				t.Fatal(err)
			}
			enc, err := tr.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, v.TreeAfter) {
				t.Errorf("tree_after differs:\n got %x\nwant %x", enc, v.TreeAfter)
			}
			if got := tr.TreeHash(); !bytes.Equal(got, v.TreeHashAfter) {
				t.Errorf("tree_hash_after = %x, want %x", got, v.TreeHashAfter)
			}
			// The cached hashes must agree with a fresh computation.
			fresh := decodeTestTree(t, v.CipherSuite, v.TreeAfter)
			if !bytes.Equal(fresh.TreeHash(), tr.TreeHash()) {
				t.Error("cached tree hash differs from a fresh one")
			}
		})
	}
}

type treeKEMVector struct {
	CipherSuite             CipherSuite `json:"cipher_suite"`
	GroupID                 hexBytes    `json:"group_id"`
	Epoch                   uint64      `json:"epoch"`
	ConfirmedTranscriptHash hexBytes    `json:"confirmed_transcript_hash"`
	RatchetTree             hexBytes    `json:"ratchet_tree"`
	UpdatePaths             []struct {
		Sender        uint32   `json:"sender"`
		UpdatePath    hexBytes `json:"update_path"`
		TreeHashAfter hexBytes `json:"tree_hash_after"`
	} `json:"update_paths"`
}

// TestTreeKEMVectorsPublic runs the public half of treekem.json, what a DS
// does with a commit's path: merge each UpdatePath into the tree, check its
// parent-hash chain and leaf signature, and compare the tree hash. The
// private half (decrypting path secrets) needs member keys a DS never has.
func TestTreeKEMVectorsPublic(t *testing.T) {
	var vs []treeKEMVector
	loadCodecVectors(t, "treekem.json", &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	paths, suites := 0, map[CipherSuite]bool{}
	for i, v := range vs {
		t.Run(fmt.Sprintf("%d/suite%d", i, v.CipherSuite), func(t *testing.T) {
			base := decodeTestTree(t, v.CipherSuite, v.RatchetTree)
			if err := base.Validate(v.GroupID, nil); err != nil {
				t.Fatalf("ratchet_tree: %v", err)
			}
			for j, up := range v.UpdatePaths {
				var path UpdatePath
				if err := path.Unmarshal(up.UpdatePath); err != nil {
					t.Fatalf("path %d: %v", j, err)
				}
				tr := base.Clone()
				if err := tr.MergeUpdatePath(up.Sender, &path, nil); err != nil {
					t.Fatalf("path %d: merge: %v", j, err)
				}
				if got := tr.TreeHash(); !bytes.Equal(got, up.TreeHashAfter) {
					t.Errorf("path %d: tree_hash_after = %x, want %x", j, got, up.TreeHashAfter)
				}
				if err := tr.VerifyParentHashes(); err != nil {
					t.Errorf("path %d: %v", j, err)
				}
				if err := verifyLeafSignature(tr.Suite(), &path.LeafNode, v.GroupID, up.Sender); err != nil {
					t.Errorf("path %d: %v", j, err)
				}
				if !bytes.Equal(base.TreeHash(), decodeTestTree(t, v.CipherSuite, v.RatchetTree).TreeHash()) {
					t.Fatalf("path %d: merging into a clone changed the original", j)
				}
				paths++
			}
			suites[v.CipherSuite] = true
		})
	}
	if len(suites) != 7 {
		t.Errorf("treekem suites passed: %d, want 7", len(suites))
	}
	t.Logf("%d update paths merged", paths)
}

// TestVerifyParentHashesHostileUnmerged runs VerifyParentHashes alone (it
// does not rely on Validate's unmerged_leaves checks) on a tree whose
// unmerged_leaves point outside it: an error, never a panic.
func TestVerifyParentHashesHostileUnmerged(t *testing.T) {
	var vs []treeValidationVector
	loadCodecVectors(t, "tree-validation.json", &vs)
	tr := decodeTestTree(t, vs[2].CipherSuite, vs[2].Tree)
	x := firstParent(tr)
	p := *tr.Parent(x)
	p.UnmergedLeaves = []uint32{1 << 31, 0xffffffff}
	tr.setNode(x, &Node{NodeType: NodeTypeParent, Parent: &p})
	if err := tr.VerifyParentHashes(); !errors.Is(err, ErrParentHashInvalid) {
		t.Fatalf("VerifyParentHashes = %v", err)
	}
	if err := tr.Validate(vs[2].GroupID, nil); !errors.Is(err, ErrUnmergedLeaves) {
		t.Fatalf("Validate = %v", err)
	}
}

// FuzzTreeValidate decodes arbitrary bytes as a ratchet tree and runs the
// joiner's checks and tree hashing on it: never a panic, and a tree that
// validates re-encodes to a tree with the same hash.
func FuzzTreeValidate(f *testing.F) {
	var vs []treeValidationVector
	loadCodecVectors(f, "tree-validation.json", &vs)
	for _, v := range vs[:14] { // suite 1 (and 2): every tree shape
		f.Add(uint8(v.CipherSuite), []byte(v.Tree), []byte(v.GroupID))
	}
	f.Fuzz(func(t *testing.T, cs uint8, data, groupID []byte) {
		rt, err := DecodeRatchetTree(data)
		if err != nil {
			return
		}
		tr, err := NewTree(CipherSuite(cs%8), rt)
		if err != nil {
			return
		}
		h := tr.TreeHash()
		for x := uint32(0); x < tr.NodeCount(); x++ {
			tr.Resolution(nil, x)
		}
		if tr.Validate(groupID, nil) != nil {
			return
		}
		enc, err := tr.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		again := decodeTestTree(t, CipherSuite(cs%8), enc)
		if !bytes.Equal(again.TreeHash(), h) {
			t.Fatal("re-encoded valid tree has another hash")
		}
	})
}
