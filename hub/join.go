package hub

import (
	"context"
	"errors"
	"fmt"

	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// ExternalJoin sequences an external commit to the group's newest partition
// (the tip of its main line, Store.NewestPartition), verified like any
// public commit; the hub must have that partition's public state. The
// joiner's leaf must name a local sender, and the commit must publish the
// new epoch's GroupInfo (with external_pub), so that a refused or bogus
// join leaves the group as it was and a sequenced one leaves it joinable.
func (h *Hub) ExternalJoin(ctx context.Context, sender protocol.Sender, req *protocol.ExternalJoinRequest) (protocol.ExternalJoinResponse, error) {
	resp, err := h.externalJoin(ctx, sender, req)
	if err != nil {
		h.refused(err)
	}
	return resp, err
}

func (h *Hub) externalJoin(ctx context.Context, sender protocol.Sender, req *protocol.ExternalJoinRequest) (protocol.ExternalJoinResponse, error) {
	if err := h.checkSizes(req.Message, &req.CommitData); err != nil {
		return protocol.ExternalJoinResponse{}, err
	}
	m, err := req.Parsed()
	if err != nil {
		return protocol.ExternalJoinResponse{}, err
	}
	if m.PublicMessage == nil || m.PublicMessage.Content.ContentType != mls.ContentTypeCommit ||
		m.PublicMessage.Content.Sender.SenderType != mls.SenderTypeNewMemberCommit {
		return protocol.ExternalJoinResponse{}, fmt.Errorf("%w: an external join is a PublicMessage commit from a new_member_commit sender", ErrInvalidMessage)
	}
	op, err := newSendOp(sender, req.Message, m, &req.CommitData)
	if err != nil {
		return protocol.ExternalJoinResponse{}, err
	}
	if _, err := h.groupSuite(ctx, op.groupID); err != nil {
		return protocol.ExternalJoinResponse{}, err
	}
	if err := checkIntroduced(sender, m); err != nil {
		return protocol.ExternalJoinResponse{}, err
	}
	op.hash = requestHash("external join", op.groupID, op)
	if masked, c, ok, err := h.store.FindRequest(ctx, op.hash); err != nil || ok {
		if ok {
			h.metrics.duplicates.Add(1)
		}
		return protocol.ExternalJoinResponse{MaskedPartitionKey: masked, Counter: c}, err
	}
	if err := h.admit(ctx, sender); err != nil {
		return protocol.ExternalJoinResponse{}, err
	}
	newest, err := h.store.NewestPartition(ctx, op.groupID)
	if err != nil {
		return protocol.ExternalJoinResponse{}, err
	}
	ps, err := h.state(ctx, newest.Masked)
	if err != nil {
		return protocol.ExternalJoinResponse{}, err
	}
	defer h.states.release(ps)
	res, err := h.sendCommit(ctx, ps, op)
	if err != nil {
		return protocol.ExternalJoinResponse{}, err
	}
	return protocol.ExternalJoinResponse{MaskedPartitionKey: res.Masked, Counter: res.Counter}, nil
}

// GroupInfo answers a GroupInfoRequest with the GroupInfo of the group's
// newest partition, and the ratchet tree the hub keeps beside it when the
// GroupInfo has no ratchet_tree extension.
func (h *Hub) GroupInfo(ctx context.Context, req *protocol.GroupInfoRequest) (*protocol.GroupInfoResponse, error) {
	if _, err := h.store.Group(ctx, req.GroupID); err != nil {
		return nil, err
	}
	p, err := h.store.NewestPartition(ctx, req.GroupID)
	if err != nil {
		return nil, err
	}
	if p.GroupInfo == nil {
		return nil, fmt.Errorf("%w: partition %x", ErrNoGroupInfo, p.Masked)
	}
	resp := &protocol.GroupInfoResponse{GroupInfo: p.GroupInfo}
	m, err := mls.DecodeMLSMessage(p.GroupInfo)
	if err != nil || m.GroupInfo == nil {
		return nil, errors.Join(fmt.Errorf("hub: stored GroupInfo of %x does not decode", p.Masked), err)
	}
	if !m.GroupInfo.Extensions.Has(mls.ExtensionTypeRatchetTree) {
		resp.RatchetTree = p.RatchetTree
	}
	return resp, nil
}
