package mls

import (
	"bytes"
	"errors"
	"testing"
)

type messageProtectionVector struct {
	CipherSuite             CipherSuite `json:"cipher_suite"`
	GroupID                 hexBytes    `json:"group_id"`
	Epoch                   uint64      `json:"epoch"`
	TreeHash                hexBytes    `json:"tree_hash"`
	ConfirmedTranscriptHash hexBytes    `json:"confirmed_transcript_hash"`
	SignaturePriv           hexBytes    `json:"signature_priv"`
	SignaturePub            hexBytes    `json:"signature_pub"`
	MembershipKey           hexBytes    `json:"membership_key"`
	Proposal                hexBytes    `json:"proposal"`
	ProposalPub             hexBytes    `json:"proposal_pub"`
	ProposalPriv            hexBytes    `json:"proposal_priv"`
	Commit                  hexBytes    `json:"commit"`
	CommitPub               hexBytes    `json:"commit_pub"`
	CommitPriv              hexBytes    `json:"commit_priv"`
	ApplicationPriv         hexBytes    `json:"application_priv"`
}

// TestVectorsMessageProtectionPublic checks the PublicMessage half of
// message-protection.json (the half a Delivery Service can check): the
// proposal and commit PublicMessages carry the raw values, their signatures
// verify under the GroupContext, their membership tags verify, and a fresh
// signature made here verifies too. The PrivateMessages round-trip.
func TestVectorsMessageProtectionPublic(t *testing.T) {
	var cases []messageProtectionVector
	loadCodecVectors(t, "message-protection.json", &cases)
	if len(cases) == 0 {
		t.Fatal("message-protection.json: no cases")
	}
	for _, c := range cases {
		t.Run(c.CipherSuite.String(), func(t *testing.T) {
			s, err := c.CipherSuite.Suite()
			if err != nil {
				t.Fatal(err)
			}
			ctx := &GroupContext{Version: ProtocolVersionMLS10, CipherSuite: c.CipherSuite, GroupID: c.GroupID,
				Epoch: c.Epoch, TreeHash: c.TreeHash, ConfirmedTranscriptHash: c.ConfirmedTranscriptHash}
			checkProtected(t, s, &c, ctx, c.ProposalPub, c.Proposal, ContentTypeProposal)
			checkProtected(t, s, &c, ctx, c.CommitPub, c.Commit, ContentTypeCommit)
			for _, b := range [][]byte{c.ProposalPriv, c.CommitPriv, c.ApplicationPriv} {
				m, err := DecodeMLSMessage(b)
				if err != nil || m.PrivateMessage == nil {
					t.Fatalf("PrivateMessage: %v", err)
				}
				if re, _ := m.Marshal(); !bytes.Equal(re, b) {
					t.Fatal("PrivateMessage does not round-trip")
				}
			}
		})
	}
}

func checkProtected(t *testing.T, s *Suite, c *messageProtectionVector, ctx *GroupContext, msg, raw []byte, ct ContentType) {
	t.Helper()
	m, err := DecodeMLSMessage(msg)
	if err != nil || m.PublicMessage == nil {
		t.Fatalf("%s: decode: %v", ct, err)
	}
	pm := m.PublicMessage
	if pm.Content.ContentType != ct || pm.Content.Sender != (Sender{SenderType: SenderTypeMember, LeafIndex: 1}) {
		t.Fatalf("%s: content %s from %+v", ct, pm.Content.ContentType, pm.Content.Sender)
	}
	var body []byte
	if ct == ContentTypeProposal {
		body, err = pm.Content.Proposal.Marshal()
	} else {
		body, err = pm.Content.Commit.Marshal()
	}
	if err != nil || !bytes.Equal(body, raw) {
		t.Fatalf("%s: carried value differs from the raw one (%v)", ct, err)
	}
	if err := VerifyPublicMessage(s, pm, c.SignaturePub, ctx); err != nil {
		t.Fatalf("%s: %v", ct, err)
	}
	if err := VerifyMembershipTag(s, pm, c.MembershipKey, ctx); err != nil {
		t.Fatalf("%s: %v", ct, err)
	}
	// A signature under another epoch's context must fail.
	other := *ctx
	other.TreeHash = append([]byte{1}, ctx.TreeHash...)
	if err := VerifyPublicMessage(s, pm, c.SignaturePub, &other); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("%s: other context: got %v, want ErrBadSignature", ct, err)
	}
	// Re-sign and verify.
	priv := []byte(c.SignaturePriv)
	if c.CipherSuite == MLS256DHKEMP521AES256GCMSHA512P521 {
		priv = leftPad(priv, 66)
	}
	sig, err := SignFramedContent(s, priv, WireFormatPublicMessage, &pm.Content, ctx)
	if err != nil {
		t.Fatal(err)
	}
	resigned := *pm
	resigned.Auth.Signature = sig
	if err := VerifyPublicMessage(s, &resigned, c.SignaturePub, ctx); err != nil {
		t.Fatalf("%s: re-signed: %v", ct, err)
	}
}

// leftPad returns b left-padded with zeros to n bytes. The P-521 private
// key of message-protection.json has its leading zero byte dropped.
func leftPad(b []byte, n int) []byte {
	if len(b) >= n {
		return b
	}
	return append(make([]byte, n-len(b)), b...)
}

func TestVerifyPublicMessageChecks(t *testing.T) {
	s, _ := MLS128DHKEMX25519AES128GCMSHA256Ed25519.Suite()
	priv, pub, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	ctx := &GroupContext{Version: ProtocolVersionMLS10, CipherSuite: 1, GroupID: []byte("group"), Epoch: 7}
	mk := func(sender Sender, ct ContentType, p *Proposal) *PublicMessage {
		m := &PublicMessage{Content: FramedContent{GroupID: []byte("group"), Epoch: 7, Sender: sender, ContentType: ct}}
		switch ct {
		case ContentTypeApplication:
			m.Content.ApplicationData = []byte("hi")
		case ContentTypeProposal:
			m.Content.Proposal = p
		case ContentTypeCommit:
			m.Content.Commit = &Commit{}
			m.Auth.ConfirmationTag = make([]byte, 32)
		}
		sig, err := SignFramedContent(s, priv, WireFormatPublicMessage, &m.Content, ctx)
		if err != nil {
			t.Fatal(err)
		}
		m.Auth.Signature = sig
		return m
	}
	remove := &Proposal{ProposalType: ProposalTypeRemove, Remove: &Remove{Removed: 1}}
	update := &Proposal{ProposalType: ProposalTypeUpdate, Update: &Update{LeafNode: LeafNode{LeafNodeSource: LeafNodeSourceUpdate}}}
	add := &Proposal{ProposalType: ProposalTypeAdd, Add: &Add{KeyPackage: *newTestKeyPackage(t, 1, nil).kp}}
	member := Sender{SenderType: SenderTypeMember, LeafIndex: 2}
	cases := []struct {
		name string
		m    *PublicMessage
		ctx  *GroupContext
		want error
	}{
		{"member commit", mk(member, ContentTypeCommit, nil), ctx, nil},
		{"member application", mk(member, ContentTypeApplication, nil), ctx, nil},
		{"external remove", mk(Sender{SenderType: SenderTypeExternal, SenderIndex: 0}, ContentTypeProposal, remove), ctx, nil},
		{"external remove without context", mk(Sender{SenderType: SenderTypeExternal}, ContentTypeProposal, remove), nil, nil},
		{"external update", mk(Sender{SenderType: SenderTypeExternal}, ContentTypeProposal, update), ctx, ErrSenderContent},
		{"external commit by external sender", mk(Sender{SenderType: SenderTypeExternal}, ContentTypeCommit, nil), ctx, ErrSenderContent},
		{"new member add", mk(Sender{SenderType: SenderTypeNewMemberProposal}, ContentTypeProposal, add), ctx, nil},
		{"new member remove", mk(Sender{SenderType: SenderTypeNewMemberProposal}, ContentTypeProposal, remove), ctx, ErrSenderContent},
		{"new member commit", mk(Sender{SenderType: SenderTypeNewMemberCommit}, ContentTypeCommit, nil), ctx, nil},
		{"new member commit as proposal", mk(Sender{SenderType: SenderTypeNewMemberCommit}, ContentTypeProposal, add), ctx, ErrSenderContent},
		{"member without context", mk(member, ContentTypeApplication, nil), nil, ErrMissingGroupContext},
		{"wrong epoch", mk(member, ContentTypeCommit, nil), &GroupContext{GroupID: []byte("group"), Epoch: 8}, ErrEpochMismatch},
		{"wrong group", mk(member, ContentTypeCommit, nil), &GroupContext{GroupID: []byte("other"), Epoch: 7}, ErrGroupIDMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := VerifyPublicMessage(s, c.m, pub, c.ctx)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	t.Run("bad signature", func(t *testing.T) {
		m := mk(member, ContentTypeCommit, nil)
		m.Auth.Signature[0] ^= 1
		if err := VerifyPublicMessage(s, m, pub, ctx); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("tampered content", func(t *testing.T) {
		m := mk(member, ContentTypeApplication, nil)
		m.Content.AuthenticatedData = []byte("x")
		if err := VerifyPublicMessage(s, m, pub, ctx); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestProposalRef(t *testing.T) {
	s, _ := MLS128DHKEMX25519AES128GCMSHA256Ed25519.Suite()
	a := &AuthenticatedContent{WireFormat: WireFormatPublicMessage, Content: FramedContent{
		GroupID: []byte("g"), Sender: Sender{SenderType: SenderTypeMember},
		ContentType: ContentTypeProposal, Proposal: &Proposal{ProposalType: ProposalTypeRemove, Remove: &Remove{Removed: 3}},
	}, Auth: FramedContentAuthData{Signature: []byte{1, 2, 3}}}
	ref, err := a.ProposalRef(s)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := a.Marshal()
	if !bytes.Equal(ref, s.RefHash(ProposalRefLabel, enc)) || len(ref) != 32 {
		t.Fatalf("ref %x", ref)
	}
	a.Content.ContentType = ContentTypeCommit
	if _, err := a.ProposalRef(s); err == nil {
		t.Fatal("ProposalRef of a commit")
	}
}
