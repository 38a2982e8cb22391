package mls

import (
	"fmt"
	"math"
)

// CommitResult describes what a commit changed, for policy checks and to
// match a Welcome against the commit's Adds.
type CommitResult struct {
	// Committer is the commit's sender after the commit: its (possibly new)
	// leaf for a member commit, the joiner's new leaf for an external commit.
	Committer Member
	// External is true for an external commit (sender new_member_commit).
	External bool
	// Added lists the members added by Add proposals, in order, with their
	// new leaf index and KeyPackageRef; for an external commit, the joiner
	// last (without KeyPackageRef).
	Added []Member
	// Removed lists the members removed, as they were before the commit.
	Removed []Member
	// Updated lists the members whose leaf an Update proposal replaced.
	Updated []Member
	// ExtensionsChanged is true when a GroupContextExtensions proposal was
	// applied; GroupContext.Extensions holds the new list.
	ExtensionsChanged bool
	// PreSharedKeys lists the PSKs the commit injects, in order.
	PreSharedKeys []PreSharedKeyID
	// ReInit is the ReInit proposal the commit covers, if any: the group
	// must not be used after it.
	ReInit *ReInit
	// HasPath is true when the commit carries an UpdatePath.
	HasPath bool
	// ProposalRefs lists the references the commit covered.
	ProposalRefs [][]byte
	// GroupContext is the GroupContext of the new epoch.
	GroupContext GroupContext
}

// resolvedProposal is a proposal covered by a commit, by value or reference.
type resolvedProposal struct {
	p      *Proposal
	sender Sender
	ref    []byte // nil when by value
}

// ProcessCommit checks a commit sent as a PublicMessage and returns the
// state of the next epoch; g itself is left unchanged. It checks the sender
// (a member with a non-blank leaf, or a new_member_commit signed by its
// UpdatePath leaf), the signature under the current GroupContext, the
// presence of a confirmation tag (its value needs secrets a DS lacks),
// resolves proposals by value and by reference (sequenced in this epoch),
// validates the list (§12.2) and the path requirement (§12.4, see
// Options.StrictGroupContextExtensionsPath), applies the proposals in the
// §12.3 order, validates every new or changed leaf and the uniqueness of
// their keys, merges the UpdatePath checking its parent-hash chain, then
// computes the new tree hash and transcript hashes.
func (g *PublicGroup) ProcessCommit(pm *PublicMessage) (*PublicGroup, *CommitResult, error) {
	next, res, err := g.processCommit(pm)
	if err != nil {
		return nil, nil, &OpError{Op: "commit", Err: err}
	}
	return next, res, nil
}

func (g *PublicGroup) processCommit(pm *PublicMessage) (*PublicGroup, *CommitResult, error) {
	c := &pm.Content
	if c.ContentType != ContentTypeCommit || c.Commit == nil {
		return nil, nil, fmt.Errorf("%w: %s content", ErrNotHandshake, c.ContentType)
	}
	if err := c.CheckSender(); err != nil {
		return nil, nil, err
	}
	commit := c.Commit
	key, err := g.senderKey(c, commit.Path)
	if err != nil {
		return nil, nil, err
	}
	if err := VerifyPublicMessage(g.suite, pm, key, &g.ctx); err != nil {
		return nil, nil, err
	}
	if len(pm.Auth.ConfirmationTag) != g.suite.HashSize() {
		return nil, nil, fmt.Errorf("%w: %d bytes", ErrMissingConfirmationTag, len(pm.Auth.ConfirmationTag))
	}
	if g.ctx.Epoch == math.MaxUint64 {
		return nil, nil, fmt.Errorf("%w: epoch counter exhausted", ErrEpochMismatch)
	}
	external := c.Sender.SenderType == SenderTypeNewMemberCommit
	props, err := g.resolveProposals(commit, c.Sender, external)
	if err != nil {
		return nil, nil, err
	}
	if external {
		err = validateExternalList(props)
	} else {
		err = g.validateRegularList(props, c.Sender.LeafIndex)
	}
	if err != nil {
		return nil, nil, err
	}
	if commit.Path == nil && (external || g.pathRequired(props)) {
		return nil, nil, fmt.Errorf("%w: %d proposals, none exempt", ErrPathRequired, len(props))
	}
	next := g.Clone()
	next.proposals = map[string]*cachedProposal{}
	res := &CommitResult{External: external, HasPath: commit.Path != nil}
	if err := next.applyProposals(g, props, res); err != nil {
		return nil, nil, err
	}
	sender := c.Sender.LeafIndex
	if external {
		if sender, err = next.joinerLeaf(); err != nil {
			return nil, nil, err
		}
	}
	if err := next.finishTree(commit.Path, sender, res); err != nil {
		return nil, nil, err
	}
	if external { // the joiner is a new member too (with no KeyPackageRef)
		res.Added = append(res.Added, memberOf(sender, &commit.Path.LeafNode))
	}
	if err := next.advance(g, pm, res); err != nil {
		return nil, nil, err
	}
	return next, res, nil
}

// resolveProposals turns the commit's ProposalOrRefs into proposals: by
// value ones are validated here (they were not seen before), references are
// looked up in the epoch's cache.
func (g *PublicGroup) resolveProposals(commit *Commit, sender Sender, external bool) ([]resolvedProposal, error) {
	props := make([]resolvedProposal, 0, len(commit.Proposals))
	for i := range commit.Proposals {
		por := &commit.Proposals[i]
		switch por.Type {
		case ProposalOrRefTypeProposal:
			if por.Proposal == nil {
				return nil, fmt.Errorf("%w: empty ProposalOrRef", ErrInvalidProposal)
			}
			if err := g.validateProposal(por.Proposal, sender); err != nil {
				return nil, fmt.Errorf("proposal %d (%s): %w", i, por.Proposal.ProposalType, err)
			}
			props = append(props, resolvedProposal{p: por.Proposal, sender: sender})
		case ProposalOrRefTypeReference:
			if external {
				return nil, fmt.Errorf("%w: external commit covers a proposal by reference", ErrExternalInitMisuse)
			}
			cp := g.proposals[string(por.Reference)]
			if cp == nil {
				return nil, fmt.Errorf("%w: %x", ErrUnknownProposalRef, por.Reference)
			}
			props = append(props, resolvedProposal{p: cp.proposal, sender: cp.sender, ref: cp.ref})
		default:
			return nil, fmt.Errorf("%w: %s", ErrUnknownProposalOrRefType, por.Type)
		}
	}
	return props, nil
}

// pathRequired applies §12.4's rule: a path is needed for an empty commit
// and for update, remove, external_init and (unless lenient, see Options)
// group_context_extensions proposals.
func (g *PublicGroup) pathRequired(props []resolvedProposal) bool {
	if len(props) == 0 {
		return true
	}
	for _, rp := range props {
		switch rp.p.ProposalType {
		case ProposalTypeUpdate, ProposalTypeRemove, ProposalTypeExternalInit:
			return true
		case ProposalTypeGroupContextExtensions:
			if g.opts.StrictGroupContextExtensionsPath {
				return true
			}
		}
	}
	return false
}

// applyProposals applies the list to next (a clone of old) in the order of
// §12.3 and records the changes in res.
func (next *PublicGroup) applyProposals(old *PublicGroup, props []resolvedProposal, res *CommitResult) error {
	for _, rp := range props {
		switch rp.p.ProposalType {
		case ProposalTypeGroupContextExtensions:
			next.ctx.Extensions = rp.p.GroupContextExtensions.Extensions
			res.ExtensionsChanged = true
		case ProposalTypePSK:
			res.PreSharedKeys = append(res.PreSharedKeys, rp.p.PreSharedKey.PSK)
		case ProposalTypeReInit:
			res.ReInit = rp.p.ReInit
		}
		if rp.ref != nil {
			res.ProposalRefs = append(res.ProposalRefs, rp.ref)
		}
	}
	for _, rp := range props {
		if rp.p.ProposalType == ProposalTypeUpdate {
			ln := &rp.p.Update.LeafNode
			if err := next.tree.UpdateLeaf(rp.sender.LeafIndex, ln); err != nil {
				return err
			}
			res.Updated = append(res.Updated, memberOf(rp.sender.LeafIndex, ln))
		}
	}
	for _, rp := range props {
		if rp.p.ProposalType == ProposalTypeRemove {
			i := rp.p.Remove.Removed
			ln := old.tree.Leaf(i)
			if ln == nil {
				return fmt.Errorf("%w: remove of leaf %d", ErrBlankLeaf, i)
			}
			res.Removed = append(res.Removed, memberOf(i, ln))
			if err := next.tree.RemoveLeaf(i); err != nil {
				return err
			}
		}
	}
	for _, rp := range props {
		if rp.p.ProposalType == ProposalTypeAdd {
			kp := &rp.p.Add.KeyPackage
			i, err := next.tree.AddLeaf(&kp.LeafNode)
			if err != nil {
				return err
			}
			m := memberOf(i, &kp.LeafNode)
			if m.KeyPackageRef, err = kp.Ref(); err != nil {
				return err
			}
			res.Added = append(res.Added, m)
		}
	}
	return nil
}

// joinerLeaf is where an external committer goes: the leftmost blank leaf,
// the tree extended when there is none (§12.4.2).
func (next *PublicGroup) joinerLeaf() (uint32, error) {
	i := next.tree.leftmostBlankLeaf()
	if i == next.tree.LeafCount() {
		if err := next.tree.extend(); err != nil {
			return 0, err
		}
	}
	return i, nil
}

// advance moves next to the new epoch: tree hash, transcript hashes, epoch.
func (next *PublicGroup) advance(old *PublicGroup, pm *PublicMessage, res *CommitResult) error {
	confirmed, interim, err := UpdateTranscriptHashes(old.suite, old.interim, pm.AuthenticatedContent())
	if err != nil {
		return err
	}
	next.ctx.Epoch = old.ctx.Epoch + 1
	next.ctx.TreeHash = next.tree.TreeHash()
	next.ctx.ConfirmedTranscriptHash = confirmed
	next.interim = interim
	res.GroupContext = next.ctx
	if ln := next.tree.Leaf(res.Committer.LeafIndex); ln != nil {
		res.Committer = memberOf(res.Committer.LeafIndex, ln)
	}
	return nil
}
