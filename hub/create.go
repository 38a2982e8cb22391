package hub

import (
	"context"
	"errors"
	"fmt"

	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// CreateGroup creates a group hosted here: the request's GroupInfo (with
// its tree) must verify on its own (supported suite, tree hash, tree
// validity, signature), no member may be banned by the provider, and the
// group ID must be new. The creator must be one of this provider's clients,
// and the GroupInfo signer's leaf (the creator's own) must name it. Each
// Welcome ref of this provider must be a KeyPackage it served whose leaf is
// in the tree. A retry of a request that created the group succeeds again.
func (h *Hub) CreateGroup(ctx context.Context, sender protocol.Sender, req *protocol.CreateGroupRequest) (protocol.CreateGroupResponse, error) {
	resp, err := h.createGroup(ctx, sender, req)
	if err != nil {
		h.refused(err)
	}
	return resp, err
}

func (h *Hub) createGroup(ctx context.Context, sender protocol.Sender, req *protocol.CreateGroupRequest) (protocol.CreateGroupResponse, error) {
	if !sender.Local {
		return protocol.CreateGroupResponse{}, fmt.Errorf("%w: a group is created by a client of its hub", ErrMalformed)
	}
	gi, tree, err := h.parseCreate(req)
	if err != nil {
		return protocol.CreateGroupResponse{}, err
	}
	gc := &gi.GroupContext
	suite, err := gc.CipherSuite.Suite()
	if err != nil {
		return protocol.CreateGroupResponse{}, fmt.Errorf("%w: %w", ErrInvalidGroupInfo, err)
	}
	masked := suite.Hash(req.PartitionKey)
	if done, err := h.alreadyCreated(ctx, gc.GroupID, masked); done || err != nil {
		return protocol.CreateGroupResponse{MaskedPartitionKey: masked}, err
	}
	if err := h.admit(ctx, sender); err != nil {
		return protocol.CreateGroupResponse{}, err
	}
	view, err := h.viewFromGroupInfo(gi, tree)
	if err != nil {
		return protocol.CreateGroupResponse{}, err
	}
	for _, m := range view.Members() {
		if err := h.checkUser(ctx, identityOf(m), nil, "member"); err != nil {
			return protocol.CreateGroupResponse{}, err
		}
	}
	if err := checkOwnLeaf(sender, view.Tree().Leaf(gi.Signer), "the creator's leaf (the GroupInfo signer)"); err != nil {
		return protocol.CreateGroupResponse{}, err
	}
	welcomes, err := h.planWelcomes(ctx, gc.GroupID, suite, req.WelcomeData, nil, view.Tree())
	if err == nil {
		err = h.checkRoom(ctx, welcomes)
	}
	if err != nil {
		return protocol.CreateGroupResponse{}, err
	}
	first := Partition{Masked: masked, GroupID: cloneBytes(gc.GroupID), Epoch: gc.Epoch, Verified: true,
		GroupInfo: cloneBytes(req.GroupInfo)}
	if !gi.Extensions.Has(mls.ExtensionTypeRatchetTree) {
		first.RatchetTree = cloneBytes(req.RatchetTree)
	}
	g := Group{GroupID: first.GroupID, CipherSuite: gc.CipherSuite, CreatorClient: sender.ClientID,
		CreatorUser: protocol.UserOf(sender.UserURI), CreatedAt: h.cfg.Now()}
	ids, err := h.store.CreateGroup(ctx, g, first, welcomes)
	if errors.Is(err, ErrGroupExists) {
		if done, err2 := h.alreadyCreated(ctx, gc.GroupID, masked); done || err2 != nil {
			return protocol.CreateGroupResponse{MaskedPartitionKey: masked}, err2
		}
	}
	if err != nil {
		return protocol.CreateGroupResponse{}, err
	}
	h.states.install(newLoadedState(masked, first.GroupID, suite, gc.Epoch, view))
	h.log.Info("hub: group created", "group_id", fmt.Sprintf("%x", gc.GroupID), "partition", fmt.Sprintf("%x", masked), "members", len(view.Members()))
	h.deliverLocal(ctx, welcomes, ids)
	return protocol.CreateGroupResponse{MaskedPartitionKey: masked}, nil
}

// parseCreate checks a CreateGroupRequest's sizes and decodes its parts.
func (h *Hub) parseCreate(req *protocol.CreateGroupRequest) (*mls.GroupInfo, mls.RatchetTree, error) {
	if len(req.GroupInfo) > h.cfg.MaxGroupInfoSize || len(req.RatchetTree) > h.cfg.MaxGroupInfoSize {
		return nil, nil, fmt.Errorf("%w: GroupInfo or tree over %d bytes", ErrTooLarge, h.cfg.MaxGroupInfoSize)
	}
	if req.WelcomeData != nil && len(req.WelcomeData.Welcome) > h.cfg.MaxWelcomeSize {
		return nil, nil, fmt.Errorf("%w: Welcome over %d bytes", ErrTooLarge, h.cfg.MaxWelcomeSize)
	}
	if len(req.PartitionKey) != protocol.PartitionKeySize {
		return nil, nil, fmt.Errorf("%w: partition key of %d bytes", ErrMalformed, len(req.PartitionKey))
	}
	m, err := req.ParsedGroupInfo()
	if err != nil {
		return nil, nil, err
	}
	if m.GroupInfo == nil {
		return nil, nil, fmt.Errorf("%w: group_info: %w", ErrMalformed, protocol.ErrNotGroupInfo)
	}
	tree, err := req.ParsedTree()
	if err != nil {
		return nil, nil, err
	}
	if e, ok := m.GroupInfo.Extensions.Find(mls.ExtensionTypeRatchetTree); ok && req.RatchetTree != nil &&
		string(e.ExtensionData) != string(req.RatchetTree) {
		return nil, nil, fmt.Errorf("%w: ratchet_tree differs from the GroupInfo's", ErrTreeMismatch)
	}
	if len(m.GroupInfo.GroupContext.GroupID) > protocol.MaxGroupIDLen {
		return nil, nil, fmt.Errorf("%w: group ID of %d bytes", ErrMalformed, len(m.GroupInfo.GroupContext.GroupID))
	}
	return m.GroupInfo, tree, nil
}

// alreadyCreated reports whether the group exists with masked as its first
// partition (a retried CreateGroupRequest); ErrGroupExists if it exists
// otherwise.
func (h *Hub) alreadyCreated(ctx context.Context, groupID, masked []byte) (bool, error) {
	if _, err := h.store.Group(ctx, groupID); errors.Is(err, ErrUnknownGroup) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	p, err := h.store.Partition(ctx, masked)
	if err == nil && p.Parent == nil && string(p.GroupID) == string(groupID) {
		return true, nil
	}
	if err != nil && !errors.Is(err, ErrUnknownPartition) {
		return false, err
	}
	return false, fmt.Errorf("%w: %x", ErrGroupExists, groupID)
}
