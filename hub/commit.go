package hub

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// commitPlan is what a checked commit will do.
type commitPlan struct {
	next     Partition        // the partition it opens
	view     *mls.PublicGroup // the new partition's public state; nil if unknown
	welcomes []PendingWelcome
}

// sendCommit checks a commit against the partition, sequences it, opens the
// next partition and routes its Welcome.
func (h *Hub) sendCommit(ctx context.Context, ps *partState, op *sendOp) (AppendResult, error) {
	if err := h.lockLoaded(ctx, ps); err != nil {
		return AppendResult{}, err
	}
	plan, res, err := h.sequenceCommit(ctx, ps, op)
	ps.mu.Unlock()
	if err != nil || res.Duplicate {
		return res, err
	}
	h.metrics.commits.Add(1)
	if plan.next.Verified {
		h.metrics.checked.Add(1)
	} else {
		h.metrics.unchecked.Add(1)
	}
	if res.Fork {
		h.metrics.forks.Add(1)
		h.log.Info("hub: fork", "group_id", fmt.Sprintf("%x", op.groupID), "partition", fmt.Sprintf("%x", ps.masked), "seq", res.Counter)
	}
	h.states.install(newLoadedState(plan.next.Masked, op.groupID, ps.suite, plan.next.Epoch, plan.view))
	h.deliverLocal(ctx, plan.welcomes, res.WelcomeIDs)
	return res, nil
}

// sequenceCommit checks a commit against ps (ps.mu held) and sequences it on
// condition that no other node sequenced a handshake to the partition since;
// if one did, it applies it and checks the commit again, so that the commit is
// always checked against the end of the log, as on one node.
func (h *Hub) sequenceCommit(ctx context.Context, ps *partState, op *sendOp) (*commitPlan, AppendResult, error) {
	for attempt := 0; ; attempt++ {
		plan, err := h.planCommit(ctx, ps, op)
		if err == nil {
			err = h.checkRoom(ctx, plan.welcomes)
		}
		if err != nil {
			return nil, AppendResult{}, err
		}
		res, err := h.append(ctx, ps, op, &plan.next, plan.welcomes)
		if !errors.Is(err, ErrStale) || attempt >= maxRechecks {
			return plan, res, err
		}
		h.metrics.rechecks.Add(1)
		if err := h.catchUp(ctx, ps); err != nil {
			return nil, AppendResult{}, err
		}
	}
}

// planCommit checks a commit in ps (ps.mu held): the epoch; for a
// PublicMessage in a partition with a public view, the commit itself (mls
// ProcessCommit) and the policy on its Adds; the GroupInfo against the
// result; the Welcome against the Adds.
func (h *Hub) planCommit(ctx context.Context, ps *partState, op *sendOp) (*commitPlan, error) {
	if op.epoch != ps.epoch {
		return nil, fmt.Errorf("%w: commit for epoch %d in a partition of epoch %d", ErrWrongPartition, op.epoch, ps.epoch)
	}
	nextMasked := ps.suite.Hash(op.commit.NextPartitionKey)
	if string(nextMasked) == ps.masked {
		return nil, fmt.Errorf("%w: next_partition_key is the commit's own partition key", ErrPartitionExists)
	}
	if err := checkExternalJoin(ps, op); err != nil {
		return nil, err
	}
	var next *mls.PublicGroup
	var res *mls.CommitResult
	if op.public && ps.view != nil {
		pm := op.msg.PublicMessage
		if err := checkPeerMember(op.sender, ps.view, &pm.Content); err != nil {
			return nil, err
		}
		if c := &pm.Content; c.Sender.SenderType == mls.SenderTypeMember {
			if m, ok := ps.view.Member(c.Sender.LeafIndex); ok {
				if err := h.checkUser(ctx, identityOf(m), nil, "committer"); err != nil {
					return nil, err
				}
			}
		}
		var err error
		next, res, err = ps.view.ProcessCommit(pm)
		switch {
		case err == nil:
			if err := h.checkCommitPolicy(ctx, ps, next, res); err != nil {
				return nil, err
			}
		case errors.Is(err, mls.ErrUnknownProposalRef) && ps.privateProposals && !op.external:
			// It may cover a PrivateMessage proposal the hub cannot read:
			// sequence it unchecked.
			next, res = nil, nil
		default:
			return nil, mlsRefusal(err)
		}
	}
	view, tree, err := h.checkCommitGroupInfo(ps, op, next)
	if err != nil {
		return nil, err
	}
	welcomes, err := h.planWelcomes(ctx, op.groupID, ps.suite, op.commit.WelcomeData, res, nil)
	if err != nil {
		return nil, err
	}
	return &commitPlan{
		next: Partition{Masked: nextMasked, GroupID: op.groupID, Epoch: op.epoch + 1, Verified: next != nil,
			GroupInfo: cloneBytes(op.commit.GroupInfo), RatchetTree: tree},
		view: view, welcomes: welcomes,
	}, nil
}

// checkExternalJoin applies the rules that keep one external joiner from
// taking the group's GroupInfo away (ps.mu held): an external commit is
// sequenced only where the hub verifies it (it has the partition's public
// state), and it must publish the GroupInfo of the epoch it opens (which
// checkCommitGroupInfo then matches against the computed state and requires
// to carry external_pub).
func checkExternalJoin(ps *partState, op *sendOp) error {
	switch {
	case !op.external:
		return nil
	case ps.view == nil:
		return fmt.Errorf("%w: the hub has no public state of partition %x to verify an external join against", ErrNoGroupInfo, []byte(ps.masked))
	case op.commit.GroupInfo == nil:
		return fmt.Errorf("%w: an external join must publish the GroupInfo of the epoch it opens", ErrInvalidGroupInfo)
	}
	return nil
}

// checkCommitPolicy refuses a commit that adds a user banned by the
// provider, by the partition's moderation list, or by the list the commit
// itself installs, and a commit installing a moderation list that does not
// parse.
func (h *Hub) checkCommitPolicy(ctx context.Context, ps *partState, next *mls.PublicGroup, res *mls.CommitResult) error {
	newPol := ps.pol
	if res.ExtensionsChanged {
		var err error
		if newPol, err = policyOf(next.Extensions()); err != nil {
			return fmt.Errorf("%w: %w", ErrInvalidMessage, err)
		}
	}
	for _, m := range res.Added {
		user := identityOf(m)
		if err := h.checkUser(ctx, user, ps.pol, "add of"); err != nil {
			return err
		}
		if newPol.isBanned(user) {
			return fmt.Errorf("%w: add of %s (banned by the same commit)", ErrBanned, user)
		}
	}
	return nil
}

// checkCommitGroupInfo checks CommitData.group_info and returns the public
// state of the new partition and the ratchet tree to keep beside the
// GroupInfo (when it has none). With a computed next state the GroupInfo
// must match it exactly (GroupContext, confirmation tag) and be signed by
// the signer's leaf in the new tree; a tree it carries must hash to
// tree_hash. Without one, the GroupInfo must verify on its own with its
// tree, or with a tree the hub infers: the partition's own tree when
// tree_hash matches it.
func (h *Hub) checkCommitGroupInfo(ps *partState, op *sendOp, next *mls.PublicGroup) (*mls.PublicGroup, []byte, error) {
	cd := op.commit
	if cd.GroupInfo == nil {
		return next, nil, nil
	}
	gi, err := decodeGroupInfo(cd)
	if err != nil {
		return nil, nil, err
	}
	gc := &gi.GroupContext
	if !bytes.Equal(gc.GroupID, op.groupID) || gc.CipherSuite != ps.suite.ID() || gc.Epoch != op.epoch+1 {
		return nil, nil, fmt.Errorf("%w: group %x suite %s epoch %d, want group %x suite %s epoch %d",
			ErrInvalidGroupInfo, gc.GroupID, gc.CipherSuite, gc.Epoch, op.groupID, ps.suite.ID(), op.epoch+1)
	}
	// Presence only: ts-mls 1.6.4 writes the key without its length prefix.
	if op.external && !gi.Extensions.Has(mls.ExtensionTypeExternalPub) {
		return nil, nil, fmt.Errorf("%w: an external join's GroupInfo must carry external_pub, so the group stays joinable", ErrInvalidGroupInfo)
	}
	hasTree := gi.Extensions.Has(mls.ExtensionTypeRatchetTree)
	if next != nil {
		if err := checkAgainstState(gi, next, op.msg.PublicMessage, hasTree); err != nil {
			return nil, nil, err
		}
		if hasTree {
			return next, nil, nil
		}
		tree, err := next.Tree().Marshal()
		return next, tree, err
	}
	var tree mls.RatchetTree
	var stored []byte
	if !hasTree {
		if ps.view == nil || !bytes.Equal(ps.view.TreeHash(), gc.TreeHash) {
			return nil, nil, fmt.Errorf("%w: the hub cannot infer the tree of epoch %d", ErrTreeRequired, gc.Epoch)
		}
		tree = ps.view.RatchetTree()
		if stored, err = ps.view.Tree().Marshal(); err != nil {
			return nil, nil, err
		}
	}
	view, err := h.viewFromGroupInfo(gi, tree)
	if err != nil {
		return nil, nil, err
	}
	return view, stored, nil
}

// viewFromGroupInfo builds a public state from a GroupInfo and its tree.
func (h *Hub) viewFromGroupInfo(gi *mls.GroupInfo, tree mls.RatchetTree) (*mls.PublicGroup, error) {
	view, err := mls.NewPublicGroup(gi, tree, h.cfg.MLS)
	switch {
	case errors.Is(err, mls.ErrTreeHashMismatch):
		return nil, fmt.Errorf("%w: %w", ErrTreeMismatch, err)
	case errors.Is(err, mls.ErrNoRatchetTree):
		return nil, fmt.Errorf("%w: %w", ErrTreeRequired, err)
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrInvalidGroupInfo, err)
	}
	if _, err := policyOf(view.Extensions()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidGroupInfo, err)
	}
	return view, nil
}

// checkAgainstState checks a GroupInfo against the state the hub computed
// from its commit.
func checkAgainstState(gi *mls.GroupInfo, next *mls.PublicGroup, pm *mls.PublicMessage, hasTree bool) error {
	if hasTree {
		rt, err := gi.Extensions.RatchetTree()
		if err != nil {
			return fmt.Errorf("%w: ratchet_tree: %w", ErrInvalidGroupInfo, err)
		}
		t, err := mls.NewTree(gi.GroupContext.CipherSuite, rt)
		if err != nil {
			return fmt.Errorf("%w: ratchet_tree: %w", ErrInvalidGroupInfo, err)
		}
		if !bytes.Equal(t.TreeHash(), gi.GroupContext.TreeHash) {
			return fmt.Errorf("%w: GroupInfo's ratchet_tree", ErrTreeMismatch)
		}
	}
	got, err := gi.GroupContext.Marshal()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidGroupInfo, err)
	}
	wantGC := next.GroupContext()
	want, err := wantGC.Marshal()
	if err != nil {
		return err
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("%w: group_context differs from the commit's result (%s)", ErrInvalidGroupInfo, contextDiff(&gi.GroupContext, &wantGC))
	}
	if !bytes.Equal(gi.ConfirmationTag, pm.Auth.ConfirmationTag) {
		return fmt.Errorf("%w: confirmation_tag is not the commit's", ErrInvalidGroupInfo)
	}
	signer := next.Tree().Leaf(gi.Signer)
	if signer == nil {
		return fmt.Errorf("%w: %w: leaf %d", ErrInvalidGroupInfo, mls.ErrGroupInfoSigner, gi.Signer)
	}
	tbs, err := gi.TBS()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidGroupInfo, err)
	}
	if err := next.Suite().VerifyWithLabel(signer.SignatureKey, mls.GroupInfoTBSLabel, tbs, gi.Signature); err != nil {
		return fmt.Errorf("%w: signature: %w", ErrInvalidGroupInfo, err)
	}
	return nil
}

// contextDiff names the GroupContext fields that differ.
func contextDiff(a, b *mls.GroupContext) string {
	var d []string
	if a.Epoch != b.Epoch {
		d = append(d, fmt.Sprintf("epoch %d, want %d", a.Epoch, b.Epoch))
	}
	if !bytes.Equal(a.TreeHash, b.TreeHash) {
		d = append(d, "tree_hash")
	}
	if !bytes.Equal(a.ConfirmedTranscriptHash, b.ConfirmedTranscriptHash) {
		d = append(d, "confirmed_transcript_hash")
	}
	ea, _ := (&mls.GroupContext{Extensions: a.Extensions}).Marshal()
	eb, _ := (&mls.GroupContext{Extensions: b.Extensions}).Marshal()
	if !bytes.Equal(ea, eb) {
		d = append(d, "extensions")
	}
	if len(d) == 0 {
		return "version, suite or group_id"
	}
	return fmt.Sprint(d)
}

func decodeGroupInfo(cd *protocol.CommitData) (*mls.GroupInfo, error) {
	m, err := cd.ParsedGroupInfo()
	if err != nil {
		return nil, err
	}
	if m.GroupInfo == nil {
		return nil, fmt.Errorf("%w: group_info: %w", ErrMalformed, protocol.ErrNotGroupInfo)
	}
	return m.GroupInfo, nil
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}
