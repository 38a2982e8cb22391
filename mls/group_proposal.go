package mls

import (
	"fmt"
	"slices"
)

// ProposalResult describes a proposal that ProcessProposal accepted and
// cached for the current epoch.
type ProposalResult struct {
	Ref      []byte // ProposalRef, by which a commit may cover it
	Sender   Sender
	Proposal *Proposal
}

// ProcessMessage applies a PublicMessage carried in an MLSMessage: a
// proposal is cached in g (and nil, nil returned for the next state), a
// commit yields the next epoch's state without modifying g. Anything else
// is ErrNotHandshake.
func (g *PublicGroup) ProcessMessage(m *MLSMessage) (*PublicGroup, *ProposalResult, *CommitResult, error) {
	if m.WireFormat != WireFormatPublicMessage || m.PublicMessage == nil {
		return nil, nil, nil, fmt.Errorf("%w: wire format %s", ErrNotHandshake, m.WireFormat)
	}
	pm := m.PublicMessage
	switch pm.Content.ContentType {
	case ContentTypeProposal:
		pr, err := g.ProcessProposal(pm)
		return nil, pr, nil, err
	case ContentTypeCommit:
		next, cr, err := g.ProcessCommit(pm)
		return next, nil, cr, err
	}
	return nil, nil, nil, fmt.Errorf("%w: %s content", ErrNotHandshake, pm.Content.ContentType)
}

// ProcessProposal checks a proposal sent as a PublicMessage in the current
// epoch and caches it by ProposalRef for a later commit: the sender is a
// member with a non-blank leaf, an external_senders entry, or a
// new_member_proposal Add; the signature verifies under the sender's key
// with the current GroupContext; and the proposal is valid on its own
// (§12.1). g is modified only on success.
func (g *PublicGroup) ProcessProposal(pm *PublicMessage) (*ProposalResult, error) {
	pr, err := g.processProposal(pm)
	if err != nil {
		return nil, &OpError{Op: "proposal", Err: err}
	}
	return pr, nil
}

func (g *PublicGroup) processProposal(pm *PublicMessage) (*ProposalResult, error) {
	c := &pm.Content
	if c.ContentType != ContentTypeProposal || c.Proposal == nil {
		return nil, fmt.Errorf("%w: %s content", ErrNotHandshake, c.ContentType)
	}
	if err := c.CheckSender(); err != nil {
		return nil, err
	}
	key, err := g.senderKey(c, nil)
	if err != nil {
		return nil, err
	}
	if err := VerifyPublicMessage(g.suite, pm, key, &g.ctx); err != nil {
		return nil, err
	}
	if err := g.validateProposal(c.Proposal, c.Sender); err != nil {
		return nil, err
	}
	ref, err := pm.AuthenticatedContent().ProposalRef(g.suite)
	if err != nil {
		return nil, err
	}
	if g.proposals == nil {
		g.proposals = map[string]*cachedProposal{}
	}
	g.proposals[string(ref)] = &cachedProposal{ref: ref, proposal: c.Proposal, sender: c.Sender}
	return &ProposalResult{Ref: ref, Sender: c.Sender, Proposal: c.Proposal}, nil
}

// senderKey returns the signature key that must verify c (§6.1): the
// member's leaf, the external sender's key, the Add's KeyPackage leaf for
// new_member_proposal, or the UpdatePath leaf for new_member_commit.
func (g *PublicGroup) senderKey(c *FramedContent, path *UpdatePath) ([]byte, error) {
	s := c.Sender
	switch s.SenderType {
	case SenderTypeMember:
		ln := g.tree.Leaf(s.LeafIndex)
		if ln == nil {
			return nil, fmt.Errorf("%w: leaf %d", ErrBlankSender, s.LeafIndex)
		}
		return ln.SignatureKey, nil
	case SenderTypeExternal:
		if !g.ctx.Extensions.Has(ExtensionTypeExternalSenders) {
			return nil, fmt.Errorf("%w: group has no external_senders", ErrUnknownExternalSender)
		}
		es, err := g.ctx.Extensions.ExternalSenders()
		if err != nil {
			return nil, fmt.Errorf("external_senders: %w", err)
		}
		if int64(s.SenderIndex) >= int64(len(es)) {
			return nil, fmt.Errorf("%w: index %d of %d", ErrUnknownExternalSender, s.SenderIndex, len(es))
		}
		return es[s.SenderIndex].SignatureKey, nil
	case SenderTypeNewMemberProposal:
		if c.Proposal == nil || c.Proposal.Add == nil {
			return nil, fmt.Errorf("%w: new_member_proposal without Add", ErrSenderContent)
		}
		return c.Proposal.Add.KeyPackage.LeafNode.SignatureKey, nil
	case SenderTypeNewMemberCommit:
		if path == nil {
			return nil, fmt.Errorf("%w: external commit", ErrPathRequired)
		}
		return path.LeafNode.SignatureKey, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrUnknownSenderType, s.SenderType)
}

// validateProposal checks what makes one proposal invalid on its own in
// the current state (§12.1), signatures included. Checks that depend on the
// rest of the commit (capabilities after a GroupContextExtensions, the §12.2
// list rules) are made by ProcessCommit.
func (g *PublicGroup) validateProposal(p *Proposal, sender Sender) error {
	switch p.ProposalType {
	case ProposalTypeAdd:
		if p.Add == nil {
			return fmt.Errorf("%w: add without body", ErrInvalidProposal)
		}
		return g.validateAddKeyPackage(&p.Add.KeyPackage)
	case ProposalTypeUpdate:
		if p.Update == nil {
			return fmt.Errorf("%w: update without body", ErrInvalidProposal)
		}
		return g.validateUpdate(&p.Update.LeafNode, sender)
	case ProposalTypeRemove:
		if p.Remove == nil || g.tree.Leaf(p.Remove.Removed) == nil {
			return fmt.Errorf("%w: remove of leaf %d", ErrBlankLeaf, removedIndex(p))
		}
	case ProposalTypePSK:
		if p.PreSharedKey == nil {
			return fmt.Errorf("%w: psk without body", ErrInvalidProposal)
		}
		id := &p.PreSharedKey.PSK
		if len(id.PSKNonce) != g.suite.HashSize() {
			return fmt.Errorf("%w: psk_nonce of %d bytes, want %d", ErrInvalidProposal, len(id.PSKNonce), g.suite.HashSize())
		}
		if id.PSKType == PSKTypeResumption && id.Usage != ResumptionPSKUsageApplication {
			return fmt.Errorf("%w: resumption PSK with usage %s outside reinit/branch", ErrInvalidProposal, id.Usage)
		}
	case ProposalTypeReInit:
		if p.ReInit == nil || p.ReInit.Version < g.ctx.Version {
			return fmt.Errorf("%w: reinit to an older version", ErrInvalidProposal)
		}
	case ProposalTypeGroupContextExtensions:
		if p.GroupContextExtensions == nil {
			return fmt.Errorf("%w: group_context_extensions without body", ErrInvalidProposal)
		}
		if err := checkExtensionList(p.GroupContextExtensions.Extensions); err != nil {
			return err
		}
	}
	return nil
}

func removedIndex(p *Proposal) uint32 {
	if p.Remove == nil {
		return 0
	}
	return p.Remove.Removed
}

// checkExtensionList rejects a list with two extensions of one type (§13.4).
func checkExtensionList(ext Extensions) error {
	for i := range ext {
		for j := range i {
			if ext[j].ExtensionType == ext[i].ExtensionType {
				return fmt.Errorf("%w: extension %s listed twice", ErrInvalidProposal, ext[i].ExtensionType)
			}
		}
	}
	return nil
}

// validateAddKeyPackage checks an Add's KeyPackage (§10.1, §12.1.1): version
// and suite of the group, init_key different from the encryption key, a
// key_package leaf, capabilities listing its credential and extensions,
// lifetime when Options.Now is set, and both signatures.
func (g *PublicGroup) validateAddKeyPackage(kp *KeyPackage) error {
	if kp.Version != g.ctx.Version {
		return fmt.Errorf("%w: KeyPackage version %s in a %s group", ErrInvalidProposal, kp.Version, g.ctx.Version)
	}
	if kp.CipherSuite != g.ctx.CipherSuite {
		return fmt.Errorf("%w: KeyPackage suite %s in a %s group", ErrInvalidProposal, kp.CipherSuite, g.ctx.CipherSuite)
	}
	ln := &kp.LeafNode
	if string(kp.InitKey) == string(ln.EncryptionKey) {
		return fmt.Errorf("%w: %w", ErrInvalidProposal, ErrInitKeyIsEncryptionKey)
	}
	if ln.LeafNodeSource != LeafNodeSourceKeyPackage {
		return fmt.Errorf("%w: %w: %s in an Add", ErrInvalidLeafNode, ErrLeafNodeSource, ln.LeafNodeSource)
	}
	if g.opts.Now != nil {
		if err := checkLifetime(ln.Lifetime, g.opts.Now()); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidProposal, err)
		}
	}
	if err := ln.checkCapabilities(kp.Extensions); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidLeafNode, err)
	}
	if err := verifyLeafSignature(g.suite, ln, nil, 0); err != nil {
		return fmt.Errorf("add: %w", err)
	}
	tbs, err := kp.TBS()
	if err != nil {
		return err
	}
	if err := g.suite.VerifyWithLabel(ln.SignatureKey, KeyPackageTBSLabel, tbs, kp.Signature); err != nil {
		return fmt.Errorf("add: KeyPackage: %w", err)
	}
	return nil
}

// validateUpdate checks an Update (§12.1.2): sent by a member, an update
// leaf signed for this group and the sender's index, with a new
// encryption key.
func (g *PublicGroup) validateUpdate(ln *LeafNode, sender Sender) error {
	if sender.SenderType != SenderTypeMember {
		return fmt.Errorf("%w: update from a %s sender", ErrInvalidProposal, sender.SenderType)
	}
	old := g.tree.Leaf(sender.LeafIndex)
	if old == nil {
		return fmt.Errorf("%w: update of leaf %d", ErrBlankSender, sender.LeafIndex)
	}
	if ln.LeafNodeSource != LeafNodeSourceUpdate {
		return fmt.Errorf("%w: %w: %s in an Update", ErrInvalidLeafNode, ErrLeafNodeSource, ln.LeafNodeSource)
	}
	if string(ln.EncryptionKey) == string(old.EncryptionKey) {
		return fmt.Errorf("%w: update keeps the encryption key of leaf %d", ErrInvalidProposal, sender.LeafIndex)
	}
	return verifyLeafSignature(g.suite, ln, g.ctx.GroupID, sender.LeafIndex)
}

// supportsProposalType reports whether every member outside skip lists t.
func (g *PublicGroup) supportsProposalType(t ProposalType, skip []uint32) error {
	var err error
	g.tree.leaves(func(i uint32, ln *LeafNode) bool {
		if !slices.Contains(skip, i) && !ln.Capabilities.SupportsProposal(t) {
			err = fmt.Errorf("%w: leaf %d does not support proposal type %s", ErrUnsupportedProposal, i, t)
		}
		return err == nil
	})
	return err
}
