package mls

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// validateRegularList applies §12.2's rules for a regular commit from leaf
// committer (each proposal was already validated on its own).
func (g *PublicGroup) validateRegularList(props []resolvedProposal, committer uint32) error {
	var touched, removed []uint32 // leaves with an Update or Remove; removed ones
	var adds []*LeafNode
	var psks [][]byte
	gce, reinit := 0, false
	for _, rp := range props {
		p := rp.p
		switch p.ProposalType {
		case ProposalTypeAdd:
			ln := &p.Add.KeyPackage.LeafNode
			for _, a := range adds {
				if g.opts.sameClient(a, ln) {
					return fmt.Errorf("%w: two Adds in one commit", ErrDuplicateAdd)
				}
			}
			adds = append(adds, ln)
		case ProposalTypeUpdate:
			l := rp.sender.LeafIndex
			if l == committer {
				return fmt.Errorf("%w: leaf %d", ErrUpdateByCommitter, l)
			}
			if slices.Contains(touched, l) {
				return fmt.Errorf("%w: several Update/Remove for leaf %d", ErrConflictingProposals, l)
			}
			touched = append(touched, l)
		case ProposalTypeRemove:
			l := p.Remove.Removed
			if l == committer {
				return fmt.Errorf("%w: leaf %d", ErrRemoveCommitter, l)
			}
			if slices.Contains(touched, l) {
				return fmt.Errorf("%w: several Update/Remove for leaf %d", ErrConflictingProposals, l)
			}
			touched, removed = append(touched, l), append(removed, l)
		case ProposalTypePSK:
			id, err := p.PreSharedKey.PSK.Marshal()
			if err != nil {
				return err
			}
			for _, o := range psks {
				if string(o) == string(id) {
					return fmt.Errorf("%w: one PreSharedKeyID twice", ErrConflictingProposals)
				}
			}
			psks = append(psks, id)
		case ProposalTypeGroupContextExtensions:
			if gce++; gce > 1 {
				return fmt.Errorf("%w: several GroupContextExtensions", ErrConflictingProposals)
			}
		case ProposalTypeReInit:
			reinit = true
		case ProposalTypeExternalInit:
			return fmt.Errorf("%w: ExternalInit in a member's commit", ErrExternalInitMisuse)
		default:
			if err := g.supportsProposalType(p.ProposalType, removed); err != nil {
				return err
			}
		}
	}
	if reinit && len(props) > 1 {
		return fmt.Errorf("%w: ReInit with other proposals", ErrConflictingProposals)
	}
	return g.checkAddsNotMembers(adds, removed)
}

// checkAddsNotMembers rejects an Add of a client already in the group,
// unless the same commit removes it (§12.2).
func (g *PublicGroup) checkAddsNotMembers(adds []*LeafNode, removed []uint32) error {
	if len(adds) == 0 {
		return nil
	}
	var err error
	if g.opts.SameClient == nil { // one pass with a set of signature keys
		keys := make(map[string]bool, len(adds))
		for _, a := range adds {
			keys[string(a.SignatureKey)] = true
		}
		g.tree.leaves(func(i uint32, ln *LeafNode) bool {
			if keys[string(ln.SignatureKey)] && !slices.Contains(removed, i) {
				err = fmt.Errorf("%w: client of leaf %d is already a member", ErrDuplicateAdd, i)
			}
			return err == nil
		})
		return err
	}
	g.tree.leaves(func(i uint32, ln *LeafNode) bool {
		for _, a := range adds {
			if g.opts.SameClient(ln, a) && !slices.Contains(removed, i) {
				err = fmt.Errorf("%w: client of leaf %d is already a member", ErrDuplicateAdd, i)
			}
		}
		return err == nil
	})
	return err
}

// validateExternalList applies §12.2's rules for an external commit:
// exactly one ExternalInit, at most one Remove, PreSharedKeys, nothing else.
func validateExternalList(props []resolvedProposal) error {
	inits, removes := 0, 0
	for _, rp := range props {
		switch rp.p.ProposalType {
		case ProposalTypeExternalInit:
			inits++
		case ProposalTypeRemove:
			removes++
		case ProposalTypePSK:
		default:
			return fmt.Errorf("%w: %s proposal in an external commit", ErrExternalInitMisuse, rp.p.ProposalType)
		}
	}
	if inits != 1 || removes > 1 {
		return fmt.Errorf("%w: %d ExternalInit and %d Remove", ErrExternalInitMisuse, inits, removes)
	}
	return nil
}

// noOwner marks a key that may appear in no node of the tree.
const noOwner = ^uint32(0)

// keyOwners holds the keys a commit introduces with the node allowed to
// hold each (or noOwner). The tree scan looks keys up by their last eight
// bytes, a fixed-size map key that needs no string hashing; full keys are
// compared only on a hit.
type keyOwners struct {
	enc, sig keySet
}

type keySet map[uint64][]ownedKey

type ownedKey struct {
	key   []byte
	owner uint32
}

func keyTail(k []byte) uint64 {
	if len(k) >= 8 {
		return binary.LittleEndian.Uint64(k[len(k)-8:])
	}
	var t uint64
	for _, b := range k {
		t = t<<8 | uint64(b)
	}
	return t
}

// owner returns the owner of key and whether key is in the set.
func (s keySet) owner(key []byte) (uint32, bool) {
	for _, e := range s[keyTail(key)] {
		if string(e.key) == string(key) {
			return e.owner, true
		}
	}
	return 0, false
}

func (k *keyOwners) add(s keySet, key []byte, owner uint32) error {
	if prev, ok := s.owner(key); ok {
		if prev != owner {
			return fmt.Errorf("%w: a key is introduced twice by one commit", ErrDuplicateKey)
		}
		return nil
	}
	t := keyTail(key)
	s[t] = append(s[t], ownedKey{key: key, owner: owner})
	return nil
}

// checkFreshKeys scans every node once: a key in k may only be held by its owner.
func (t *Tree) checkFreshKeys(k *keyOwners) error {
	for x, nd := range t.nodes {
		if nd == nil {
			continue
		}
		var ek []byte
		if nd.Leaf != nil {
			ek = nd.Leaf.EncryptionKey
			if o, ok := k.sig.owner(nd.Leaf.SignatureKey); ok && o != uint32(x) {
				return fmt.Errorf("%w: signature key already at leaf %d", ErrDuplicateKey, x/2)
			}
		} else {
			ek = nd.Parent.EncryptionKey
		}
		if o, ok := k.enc.owner(ek); ok && o != uint32(x) {
			return fmt.Errorf("%w: encryption key already at node %d", ErrDuplicateKey, x)
		}
	}
	return nil
}

// finishTree validates the leaves the proposals added or changed, and the
// UpdatePath from leaf sender (if any), against the new GroupContext: leaf
// validity (§7.3), fresh keys, then merges the path and checks the
// group-wide capability rules on the resulting tree.
func (next *PublicGroup) finishTree(path *UpdatePath, sender uint32, res *CommitResult) error {
	req, err := requiredCapabilities(next.ctx.Extensions)
	if err != nil {
		return err
	}
	keys := &keyOwners{enc: keySet{}, sig: keySet{}}
	added := make([]uint32, 0, len(res.Added))
	for _, ms := range [2][]Member{res.Added, res.Updated} {
		for _, m := range ms {
			ln := next.tree.Leaf(m.LeafIndex)
			if err := next.checkNewLeaf(ln, m.LeafIndex, req); err != nil {
				return err
			}
			if err := keys.add(keys.enc, ln.EncryptionKey, 2*m.LeafIndex); err != nil {
				return err
			}
			if err := keys.add(keys.sig, ln.SignatureKey, 2*m.LeafIndex); err != nil {
				return err
			}
		}
	}
	for _, m := range res.Added {
		added = append(added, m.LeafIndex)
	}
	if path != nil {
		if err := next.checkPathKeys(path, sender, req, keys); err != nil {
			return err
		}
	}
	if err := next.tree.checkFreshKeys(keys); err != nil {
		return err
	}
	if path != nil {
		if err := next.tree.MergeUpdatePath(sender, path, added); err != nil {
			return err
		}
	}
	res.Committer.LeafIndex = sender
	return next.checkGroupCapabilities(req, res.ExtensionsChanged)
}

// checkPathKeys validates the UpdatePath's leaf for leaf sender (§12.4.2)
// and registers the path's keys as fresh: none may be in the tree, except
// the sender's own signature key.
func (next *PublicGroup) checkPathKeys(path *UpdatePath, sender uint32, req *RequiredCapabilities, keys *keyOwners) error {
	ln := &path.LeafNode
	if ln.LeafNodeSource != LeafNodeSourceCommit {
		return fmt.Errorf("%w: %w: %s in an UpdatePath", ErrInvalidLeafNode, ErrLeafNodeSource, ln.LeafNodeSource)
	}
	if err := verifyLeafSignature(next.suite, ln, next.ctx.GroupID, sender); err != nil {
		return fmt.Errorf("update path: %w", err)
	}
	if err := next.checkNewLeaf(ln, sender, req); err != nil {
		return err
	}
	if err := keys.add(keys.enc, ln.EncryptionKey, noOwner); err != nil {
		return err
	}
	if err := keys.add(keys.sig, ln.SignatureKey, 2*sender); err != nil {
		return err
	}
	for i := range path.Nodes {
		if err := keys.add(keys.enc, path.Nodes[i].EncryptionKey, noOwner); err != nil {
			return err
		}
	}
	return nil
}

// checkNewLeaf checks a leaf entering the tree against the group: its own
// capabilities, required_capabilities, and with StrictExtensionSupport
// every GroupContext extension.
func (next *PublicGroup) checkNewLeaf(ln *LeafNode, i uint32, req *RequiredCapabilities) error {
	if err := checkLeafCapabilities(ln, i, req); err != nil {
		return err
	}
	if next.opts.StrictExtensionSupport {
		for _, e := range next.ctx.Extensions {
			if !ln.Capabilities.SupportsExtension(e.ExtensionType) {
				return fmt.Errorf("%w: leaf %d does not support group extension %s", ErrUnsupportedProposal, i, e.ExtensionType)
			}
		}
	}
	return nil
}

// checkGroupCapabilities checks the rules that span every member: each
// supports every credential type in use (§7.3) and, when the extensions
// changed, the new required_capabilities (§12.1.7) and, with
// StrictExtensionSupport, every extension (§13.4).
func (next *PublicGroup) checkGroupCapabilities(req *RequiredCapabilities, extChanged bool) error {
	if extChanged {
		var err error
		next.tree.leaves(func(i uint32, ln *LeafNode) bool {
			err = next.checkNewLeaf(ln, i, req)
			return err == nil
		})
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUnsupportedProposal, err)
		}
	}
	return next.tree.checkCredentialSupport()
}
