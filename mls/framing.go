package mls

import (
	"errors"
	"fmt"
)

// Errors of the framing helpers.
var (
	// ErrMissingGroupContext means a member or new_member_commit sender's
	// signature was checked without the GroupContext it covers.
	ErrMissingGroupContext = errors.New("mls: GroupContext required for this sender type")
	// ErrGroupIDMismatch means the content's group_id is not the group's.
	ErrGroupIDMismatch = errors.New("mls: group_id does not match the group")
	// ErrEpochMismatch means the content's epoch is not the group's.
	ErrEpochMismatch = errors.New("mls: epoch does not match the group")
	// ErrSenderContent means a content type or proposal type that the
	// sender type may not send (RFC 9420 §6.1).
	ErrSenderContent = errors.New("mls: content not allowed for this sender type")
	// ErrNotCommit means a transcript hash input that does not carry a Commit.
	ErrNotCommit = errors.New("mls: content is not a commit")
)

// Labels of the references and signatures used here (RFC 9420 §5.2, §6.1).
const (
	KeyPackageRefLabel    = "MLS 1.0 KeyPackage Reference"
	ProposalRefLabel      = "MLS 1.0 Proposal Reference"
	FramedContentTBSLabel = "FramedContentTBS"
	KeyPackageTBSLabel    = "KeyPackageTBS"
	LeafNodeTBSLabel      = "LeafNodeTBS"
	GroupInfoTBSLabel     = "GroupInfoTBS"
)

// MakeKeyPackageRef is RFC 9420 §5.2's MakeKeyPackageRef over an encoded
// KeyPackage, with the KeyPackage's cipher suite.
func MakeKeyPackageRef(s *Suite, encodedKeyPackage []byte) []byte {
	return s.RefHash(KeyPackageRefLabel, encodedKeyPackage)
}

// MakeProposalRef is RFC 9420 §5.2's MakeProposalRef over an encoded
// AuthenticatedContent carrying a Proposal, with the group's cipher suite.
func MakeProposalRef(s *Suite, encodedAuthenticatedContent []byte) []byte {
	return s.RefHash(ProposalRefLabel, encodedAuthenticatedContent)
}

// Ref returns the KeyPackageRef of kp, using kp's cipher suite.
func (kp *KeyPackage) Ref() ([]byte, error) {
	s, err := kp.CipherSuite.Suite()
	if err != nil {
		return nil, err
	}
	b, err := kp.Marshal()
	if err != nil {
		return nil, err
	}
	return MakeKeyPackageRef(s, b), nil
}

// ProposalRef returns the ProposalRef of a (which must carry a proposal)
// under the group's suite s.
func (a *AuthenticatedContent) ProposalRef(s *Suite) ([]byte, error) {
	if a.Content.ContentType != ContentTypeProposal {
		return nil, fmt.Errorf("mls: ProposalRef: %w", ErrSenderContent)
	}
	b, err := a.Marshal()
	if err != nil {
		return nil, err
	}
	return MakeProposalRef(s, b), nil
}

// AuthenticatedContent returns the AuthenticatedContent a PublicMessage
// carries (wire format mls_public_message). It shares m's slices.
func (m *PublicMessage) AuthenticatedContent() *AuthenticatedContent {
	return &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: m.Content, Auth: m.Auth}
}

// senderNeedsContext reports whether the FramedContentTBS of a sender
// includes the GroupContext.
func senderNeedsContext(t SenderType) bool {
	return t == SenderTypeMember || t == SenderTypeNewMemberCommit
}

// FramedContentTBS returns the encoded FramedContentTBS (§6.1) of content
// sent with wire format wf. ctx is required for member and new_member_commit
// senders and ignored for the others.
func FramedContentTBS(wf WireFormat, content *FramedContent, ctx *GroupContext) ([]byte, error) {
	w := writer{buf: make([]byte, 0, 512)}
	w.u16(uint16(ProtocolVersionMLS10))
	w.u16(uint16(wf))
	content.encode(&w)
	if senderNeedsContext(content.Sender.SenderType) {
		if ctx == nil {
			return nil, fmt.Errorf("mls: FramedContentTBS: %w", ErrMissingGroupContext)
		}
		ctx.encode(&w)
	}
	if w.err != nil {
		return nil, w.err
	}
	return w.buf, nil
}

// CheckSender checks RFC 9420 §6.1's rules on what each sender type may
// send: external senders only proposals of a type allowed for them,
// new_member_proposal senders only Add proposals, new_member_commit senders
// only commits.
func (c *FramedContent) CheckSender() error {
	ok := true
	switch c.Sender.SenderType {
	case SenderTypeMember:
	case SenderTypeExternal:
		ok = c.ContentType == ContentTypeProposal && c.Proposal != nil &&
			externalProposalAllowed(c.Proposal.ProposalType)
	case SenderTypeNewMemberProposal:
		ok = c.ContentType == ContentTypeProposal && c.Proposal != nil &&
			c.Proposal.ProposalType == ProposalTypeAdd
	case SenderTypeNewMemberCommit:
		ok = c.ContentType == ContentTypeCommit
	default:
		return fmt.Errorf("mls: %w: %s", ErrUnknownSenderType, c.Sender.SenderType)
	}
	if !ok {
		return fmt.Errorf("%w: %s sender with %s content", ErrSenderContent,
			c.Sender.SenderType, c.describe())
	}
	return nil
}

func (c *FramedContent) describe() string {
	if c.ContentType == ContentTypeProposal && c.Proposal != nil {
		return c.Proposal.ProposalType.String() + " proposal"
	}
	return c.ContentType.String()
}

// externalProposalAllowed is the "Ext" column of RFC 9420 §17.4. Proposal
// types the RFC does not define are left to their own specification and
// allowed here.
func externalProposalAllowed(t ProposalType) bool {
	switch t {
	case ProposalTypeUpdate, ProposalTypeExternalInit:
		return false
	}
	return true
}

// VerifyPublicMessage checks a PublicMessage the way a Delivery Service can:
// the sender type may send this content (CheckSender), the content belongs to
// ctx's group and epoch (when ctx is given), and the FramedContentAuthData
// signature verifies under signatureKey with label "FramedContentTBS".
//
// The caller picks signatureKey by sender type (§6.1): the member's leaf,
// the external_senders entry, the UpdatePath leaf of an external commit, or
// the KeyPackage leaf of a new_member_proposal Add. ctx is required for
// member and new_member_commit senders. The membership tag and confirmation
// tag are not checked: they need the group's secrets.
func VerifyPublicMessage(s *Suite, m *PublicMessage, signatureKey []byte, ctx *GroupContext) error {
	c := &m.Content
	if err := c.CheckSender(); err != nil {
		return fmt.Errorf("mls: verify PublicMessage: %w", err)
	}
	if ctx != nil {
		if string(c.GroupID) != string(ctx.GroupID) {
			return fmt.Errorf("mls: verify PublicMessage: %w", ErrGroupIDMismatch)
		}
		if c.Epoch != ctx.Epoch {
			return fmt.Errorf("mls: verify PublicMessage: %w: content epoch %d, group epoch %d",
				ErrEpochMismatch, c.Epoch, ctx.Epoch)
		}
	}
	tbs, err := FramedContentTBS(WireFormatPublicMessage, c, ctx)
	if err != nil {
		return fmt.Errorf("mls: verify PublicMessage: %w", err)
	}
	if err := s.VerifyWithLabel(signatureKey, FramedContentTBSLabel, tbs, m.Auth.Signature); err != nil {
		return fmt.Errorf("mls: verify PublicMessage signature (%s sender): %w", c.Sender.SenderType, err)
	}
	return nil
}

// ErrBadMembershipTag means a PublicMessage's membership_tag is wrong.
var ErrBadMembershipTag = errors.New("mls: bad membership tag")

// AuthenticatedContentTBM returns the encoded AuthenticatedContentTBM
// (§6.2) of a member's PublicMessage: the FramedContentTBS under ctx
// followed by the auth data.
func AuthenticatedContentTBM(m *PublicMessage, ctx *GroupContext) ([]byte, error) {
	tbs, err := FramedContentTBS(WireFormatPublicMessage, &m.Content, ctx)
	if err != nil {
		return nil, err
	}
	w := writer{buf: tbs}
	m.Auth.encode(&w, m.Content.ContentType)
	if w.err != nil {
		return nil, w.err
	}
	return w.buf, nil
}

// VerifyMembershipTag checks a member's membership_tag,
// MAC(membership_key, AuthenticatedContentTBM) (§6.2). Only group members
// hold membership_key; a Delivery Service normally cannot call this.
func VerifyMembershipTag(s *Suite, m *PublicMessage, membershipKey []byte, ctx *GroupContext) error {
	if m.Content.Sender.SenderType != SenderTypeMember {
		return fmt.Errorf("mls: membership tag: %w: %s sender has none", ErrSenderContent, m.Content.Sender.SenderType)
	}
	tbm, err := AuthenticatedContentTBM(m, ctx)
	if err != nil {
		return fmt.Errorf("mls: membership tag: %w", err)
	}
	if !s.VerifyMAC(membershipKey, tbm, m.MembershipTag) {
		return ErrBadMembershipTag
	}
	return nil
}

// SignFramedContent signs content as sent with wire format wf (label
// "FramedContentTBS"), with ctx as VerifyPublicMessage takes it, and returns
// the signature for FramedContentAuthData.signature. priv is a private key as
// Suite.SignWithLabel takes it.
func SignFramedContent(s *Suite, priv []byte, wf WireFormat, content *FramedContent, ctx *GroupContext) ([]byte, error) {
	tbs, err := FramedContentTBS(wf, content, ctx)
	if err != nil {
		return nil, err
	}
	return s.SignWithLabel(priv, FramedContentTBSLabel, tbs)
}
