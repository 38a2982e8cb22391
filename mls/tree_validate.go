package mls

import (
	"bytes"
	"fmt"
	"slices"
)

// Validate checks the integrity of a received tree as RFC 9420 §12.4.3.1
// asks of a joiner, except the comparison with the GroupContext tree_hash
// (the caller holds that): unmerged_leaves are consistent; every non-blank
// leaf is valid (§7.3: signature, with groupID and its leaf index as context
// for update and commit leaves; extensions and capabilities; credential
// types supported by every member); no signature or encryption key appears
// twice; and every non-blank parent node is parent-hash valid. extensions
// are the GroupContext extensions, for required_capabilities.
func (t *Tree) Validate(groupID []byte, extensions Extensions) error {
	if t.MemberCount() == 0 {
		return fmt.Errorf("%w: no members", ErrTreeShape)
	}
	if err := t.checkUnmergedLeaves(); err != nil {
		return err
	}
	req, err := requiredCapabilities(extensions)
	if err != nil {
		return err
	}
	var verr error
	t.leaves(func(i uint32, ln *LeafNode) bool {
		verr = t.validateLeaf(ln, groupID, i, req)
		return verr == nil
	})
	if verr != nil {
		return verr
	}
	if err := t.checkCredentialSupport(); err != nil {
		return err
	}
	if err := t.checkUniqueKeys(); err != nil {
		return err
	}
	return t.VerifyParentHashes()
}

// requiredCapabilities decodes the required_capabilities extension, if any.
func requiredCapabilities(ext Extensions) (*RequiredCapabilities, error) {
	if !ext.Has(ExtensionTypeRequiredCapabilities) {
		return nil, nil
	}
	rc, err := ext.RequiredCapabilities()
	if err != nil {
		return nil, fmt.Errorf("required_capabilities: %w", err)
	}
	return rc, nil
}

// validateLeaf checks the parts of §7.3 that concern one LeafNode alone:
// its signature (groupID and index are the context of update and commit
// leaves), that its extensions are in its capabilities, and that it has the
// capabilities req requires.
func (t *Tree) validateLeaf(ln *LeafNode, groupID []byte, index uint32, req *RequiredCapabilities) error {
	if err := verifyLeafSignature(t.suite, ln, groupID, index); err != nil {
		return err
	}
	return checkLeafCapabilities(ln, index, req)
}

func verifyLeafSignature(s *Suite, ln *LeafNode, groupID []byte, index uint32) error {
	tbs, err := ln.TBS(groupID, index)
	if err != nil {
		return fmt.Errorf("leaf %d: %w", index, err)
	}
	if err := s.VerifyWithLabel(ln.SignatureKey, "LeafNodeTBS", tbs, ln.Signature); err != nil {
		return fmt.Errorf("leaf %d: %w", index, err)
	}
	return nil
}

func checkLeafCapabilities(ln *LeafNode, index uint32, req *RequiredCapabilities) error {
	c := &ln.Capabilities
	for _, e := range ln.Extensions {
		if !c.SupportsExtension(e.ExtensionType) {
			return fmt.Errorf("%w: leaf %d: extension %s not in its capabilities", ErrInvalidLeafNode, index, e.ExtensionType)
		}
	}
	if !c.SupportsCredential(ln.Credential.CredentialType) {
		return fmt.Errorf("%w: leaf %d: credential type %s not in its capabilities", ErrInvalidLeafNode, index, ln.Credential.CredentialType)
	}
	if req == nil {
		return nil
	}
	for _, e := range req.ExtensionTypes {
		if !c.SupportsExtension(e) {
			return fmt.Errorf("%w: leaf %d lacks required extension %s", ErrInvalidLeafNode, index, e)
		}
	}
	for _, p := range req.ProposalTypes {
		if !c.SupportsProposal(p) {
			return fmt.Errorf("%w: leaf %d lacks required proposal %s", ErrInvalidLeafNode, index, p)
		}
	}
	for _, ct := range req.CredentialTypes {
		if !c.SupportsCredential(ct) {
			return fmt.Errorf("%w: leaf %d lacks required credential %s", ErrInvalidLeafNode, index, ct)
		}
	}
	return nil
}

// checkCredentialSupport verifies that every member supports every
// credential type in use (§7.3).
func (t *Tree) checkCredentialSupport() error {
	var inUse []CredentialType
	t.leaves(func(_ uint32, ln *LeafNode) bool {
		if !slices.Contains(inUse, ln.Credential.CredentialType) {
			inUse = append(inUse, ln.Credential.CredentialType)
		}
		return true
	})
	var err error
	t.leaves(func(i uint32, ln *LeafNode) bool {
		for _, ct := range inUse {
			if !ln.Capabilities.SupportsCredential(ct) {
				err = fmt.Errorf("%w: leaf %d does not support credential type %s in use", ErrInvalidLeafNode, i, ct)
				return false
			}
		}
		return true
	})
	return err
}

// checkUniqueKeys verifies that no two leaves share a signature key and no
// two nodes share an encryption key.
func (t *Tree) checkUniqueKeys() error {
	sig := make(map[string]uint32)
	enc := make(map[string]uint32)
	for x, nd := range t.nodes {
		if nd == nil {
			continue
		}
		var ek []byte
		if nd.Leaf != nil {
			ek = nd.Leaf.EncryptionKey
			if j, dup := sig[string(nd.Leaf.SignatureKey)]; dup {
				return fmt.Errorf("%w: signature key of leaf %d also in leaf %d", ErrDuplicateKey, x/2, j)
			}
			sig[string(nd.Leaf.SignatureKey)] = uint32(x / 2)
		} else {
			ek = nd.Parent.EncryptionKey
		}
		if y, dup := enc[string(ek)]; dup {
			return fmt.Errorf("%w: encryption key of node %d also in node %d", ErrDuplicateKey, x, y)
		}
		enc[string(ek)] = uint32(x)
	}
	return nil
}

// checkUnmergedLeaves verifies §12.4.3.1's unmerged_leaves rules for every
// non-blank parent node.
func (t *Tree) checkUnmergedLeaves() error {
	n := t.LeafCount()
	for x := uint32(1); x < uint32(len(t.nodes)); x += 2 {
		p := t.Parent(x)
		if p == nil {
			continue
		}
		for k, u := range p.UnmergedLeaves {
			if k > 0 && u <= p.UnmergedLeaves[k-1] {
				return fmt.Errorf("%w: node %d: not sorted", ErrUnmergedLeaves, x)
			}
			if u >= n || !inSubtree(2*u, x) {
				return fmt.Errorf("%w: node %d: leaf %d not below it", ErrUnmergedLeaves, x, u)
			}
			if t.Leaf(u) == nil {
				return fmt.Errorf("%w: node %d: leaf %d is blank", ErrUnmergedLeaves, x, u)
			}
			for y, _ := tmParent(2*u, n); y != x; y, _ = tmParent(y, n) {
				if q := t.Parent(y); q != nil && !slices.Contains(q.UnmergedLeaves, u) {
					return fmt.Errorf("%w: node %d: leaf %d missing from node %d", ErrUnmergedLeaves, x, u, y)
				}
			}
		}
	}
	return nil
}

// VerifyParentHashes checks that every non-blank parent node is parent-hash
// valid (§7.9.2), top down: exactly one node below each non-blank parent P
// must be parent-hash valid with respect to P.
func (t *Tree) VerifyParentHashes() error {
	var res []uint32
	for x := uint32(1); x < uint32(len(t.nodes)); x += 2 {
		p := t.Parent(x)
		if p == nil {
			continue
		}
		l, _ := tmLeft(x)
		r, _ := tmRight(x)
		found := 0
		for _, cs := range [2][2]uint32{{l, r}, {r, l}} {
			c, s := cs[0], cs[1]
			ph := t.parentHash(p, t.originalSiblingHash(s, p.UnmergedLeaves))
			res = t.Resolution(res[:0], c)
			for _, d := range res {
				if bytes.Equal(t.nodeParentHash(d), ph) && unmergedMatch(p.UnmergedLeaves, c, res, d) {
					found++
				}
			}
		}
		if found != 1 {
			return fmt.Errorf("%w: node %d is parent-hash valid for %d descendants, want 1", ErrParentHashInvalid, x, found)
		}
	}
	return nil
}

// nodeParentHash returns the parent_hash field of node d: that of a parent
// node, or of a leaf whose source is commit; nil otherwise.
func (t *Tree) nodeParentHash(d uint32) []byte {
	if d >= uint32(len(t.nodes)) {
		return nil
	}
	nd := t.nodes[d]
	switch {
	case nd == nil:
		return nil
	case nd.Parent != nil:
		return nd.Parent.ParentHash
	case nd.Leaf.LeafNodeSource == LeafNodeSourceCommit:
		return nd.Leaf.ParentHash
	}
	return nil
}

// unmergedMatch reports whether P's unmerged leaves under c are exactly the
// resolution of c without d (§7.9.2, third criterion).
func unmergedMatch(unmerged []uint32, c uint32, res []uint32, d uint32) bool {
	count := 0
	for _, u := range unmerged {
		if !inSubtree(2*u, c) {
			continue
		}
		if 2*u == d || !slices.Contains(res, 2*u) {
			return false
		}
		count++
	}
	return count == len(res)-1
}
