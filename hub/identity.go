package hub

import (
	"fmt"

	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// Identity of the leaves a local client introduces for itself. The socket
// authenticates a local sender, so the hub can hold the credentials that
// sender puts in the group for itself to the sender's own names, as the
// KeyPackage upload does. A remote sender (a follower acting for one of its
// users) is vouched for by its provider, but only for that provider's users:
// a sender forwarded by a peer (Sender.Peer) may introduce leaves naming the
// forwarded user only, and may commit or propose only from a leaf of a user of
// the peer's domain (checkPeerMember). A remote sender without Peer (an
// in-process caller) is not checked.

// checkOwnLeaf refuses a leaf a local sender introduces for itself unless its
// credential names the sender: a BasicCredential whose identity is the
// sender's client URI or user URI (a KeyPackage names its user URI, so a
// leaf that came from one keeps it). what says which leaf it is.
func checkOwnLeaf(s protocol.Sender, ln *mls.LeafNode, what string) error {
	if !s.Local {
		return checkPeerLeaf(s, ln, what)
	}
	if ln == nil {
		return fmt.Errorf("%w: %s is blank", ErrIdentityMismatch, what)
	}
	c := &ln.Credential
	if c.CredentialType != mls.CredentialTypeBasic {
		return fmt.Errorf("%w: %s has a %s credential, want basic", ErrIdentityMismatch, what, c.CredentialType)
	}
	id := string(c.Identity)
	if id == "" || (id != s.ClientURI && id != s.UserURI) {
		return fmt.Errorf("%w: %s claims %q; the sender is %s", ErrIdentityMismatch, what, shorten(id, 80), senderName(s))
	}
	return nil
}

// checkIntroduced applies checkOwnLeaf to the leaves a PublicMessage
// handshake introduces for its sender: a commit's UpdatePath leaf (a
// member's new leaf, or an external joiner's), an Update proposal's leaf,
// and the KeyPackage leaf of a new_member_proposal Add. PrivateMessages hide
// them; other leaves (Adds of others) are not the sender's.
func checkIntroduced(s protocol.Sender, m *mls.MLSMessage) error {
	if (!s.Local && s.Peer == "") || m.PublicMessage == nil {
		return nil
	}
	c := &m.PublicMessage.Content
	switch {
	case c.ContentType == mls.ContentTypeCommit && c.Commit != nil && c.Commit.Path != nil:
		what := "the commit's UpdatePath leaf"
		if c.Sender.SenderType == mls.SenderTypeNewMemberCommit {
			what = "the external joiner's leaf"
		}
		return checkOwnLeaf(s, &c.Commit.Path.LeafNode, what)
	case c.ContentType != mls.ContentTypeProposal || c.Proposal == nil:
		return nil
	case c.Proposal.Update != nil:
		return checkOwnLeaf(s, &c.Proposal.Update.LeafNode, "the Update proposal's leaf")
	case c.Proposal.Add != nil && c.Sender.SenderType == mls.SenderTypeNewMemberProposal:
		return checkOwnLeaf(s, &c.Proposal.Add.KeyPackage.LeafNode, "the new member's own Add")
	}
	return nil
}

// checkPeerLeaf refuses a leaf a forwarded sender introduces for itself unless
// its credential is a BasicCredential naming a user of the forwarding peer
// (ErrForeignIdentity otherwise), and that user the forwarded one
// (ErrIdentityMismatch otherwise): the local rule, with the peer's word for
// who the sender is.
func checkPeerLeaf(s protocol.Sender, ln *mls.LeafNode, what string) error {
	if s.Peer == "" {
		return nil
	}
	if ln == nil {
		return fmt.Errorf("%w: %s is blank", ErrIdentityMismatch, what)
	}
	c := &ln.Credential
	if c.CredentialType != mls.CredentialTypeBasic {
		return fmt.Errorf("%w: %s has a %s credential, want basic", ErrIdentityMismatch, what, c.CredentialType)
	}
	id := string(c.Identity)
	if !ofDomain(id, s.Peer) {
		return fmt.Errorf("%w: %s claims %q, not a user of %s (the forwarding provider)", ErrForeignIdentity, what, shorten(id, 80), s.Peer)
	}
	if protocol.UserOf(id) != s.UserURI {
		return fmt.Errorf("%w: %s claims %q; the sender is %s", ErrIdentityMismatch, what, shorten(id, 80), s.UserURI)
	}
	return nil
}

// checkPeerMember refuses a PublicMessage handshake that a forwarded sender
// sends from a member leaf whose credential names no user of the forwarding
// peer (a follower commits and proposes for its own users' leaves only). The
// hub knows the leaf only where it has the partition's public state (view);
// a PrivateMessage hides its sender.
func checkPeerMember(s protocol.Sender, view *mls.PublicGroup, c *mls.FramedContent) error {
	if s.Peer == "" || view == nil || c.Sender.SenderType != mls.SenderTypeMember {
		return nil
	}
	m, ok := view.Member(c.Sender.LeafIndex)
	if !ok {
		return nil // a blank or missing leaf: the MLS checks refuse it
	}
	if id := string(m.Identity); !ofDomain(id, s.Peer) {
		return fmt.Errorf("%w: the sender's leaf %d names %q, not a user of %s (the forwarding provider)",
			ErrForeignIdentity, c.Sender.LeafIndex, shorten(id, 80), s.Peer)
	}
	return nil
}

// ofDomain reports whether id is a MIMI user or client URI of domain.
func ofDomain(id, domain string) bool {
	d, user, _, err := protocol.ParseURI(id)
	return err == nil && user != "" && d == domain
}

func senderName(s protocol.Sender) string {
	if s.ClientURI != "" {
		return s.ClientURI
	}
	if s.UserURI != "" {
		return s.UserURI
	}
	return fmt.Sprintf("client %d", s.ClientID)
}

// shorten keeps a claimed identity printable in an error.
func shorten(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
