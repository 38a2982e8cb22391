package mls

// Sender is RFC 9420's Sender (§6). LeafIndex is used for member senders,
// SenderIndex (an index into external_senders) for external senders.
type Sender struct {
	SenderType  SenderType
	LeafIndex   uint32 // member
	SenderIndex uint32 // external
}

func (s *Sender) encode(w *writer) {
	w.u8(uint8(s.SenderType))
	switch s.SenderType {
	case SenderTypeMember:
		w.u32(s.LeafIndex)
	case SenderTypeExternal:
		w.u32(s.SenderIndex)
	case SenderTypeNewMemberProposal, SenderTypeNewMemberCommit:
	default:
		w.fail("Sender.sender_type", ErrUnknownSenderType)
	}
}

func (s *Sender) decode(r *reader) {
	off := r.off
	s.SenderType = SenderType(r.u8("Sender.sender_type"))
	switch s.SenderType {
	case SenderTypeMember:
		s.LeafIndex = r.u32("Sender.leaf_index")
	case SenderTypeExternal:
		s.SenderIndex = r.u32("Sender.sender_index")
	case SenderTypeNewMemberProposal, SenderTypeNewMemberCommit:
	default:
		r.failValue("Sender.sender_type", off, ErrUnknownSenderType, uint64(s.SenderType), 2)
	}
}

// FramedContent is RFC 9420's FramedContent (§6). The field matching
// ContentType is set: ApplicationData, Proposal or Commit.
type FramedContent struct {
	GroupID           []byte
	Epoch             uint64
	Sender            Sender
	AuthenticatedData []byte
	ContentType       ContentType
	ApplicationData   []byte    // application
	Proposal          *Proposal // proposal
	Commit            *Commit   // commit
}

func (c *FramedContent) encode(w *writer) {
	w.opaque("FramedContent.group_id", c.GroupID)
	w.u64(c.Epoch)
	c.Sender.encode(w)
	w.opaque("FramedContent.authenticated_data", c.AuthenticatedData)
	w.u8(uint8(c.ContentType))
	switch c.ContentType {
	case ContentTypeApplication:
		w.opaque("FramedContent.application_data", c.ApplicationData)
	case ContentTypeProposal:
		if c.Proposal == nil {
			w.fail("FramedContent.proposal", ErrInconsistent)
			return
		}
		c.Proposal.encode(w)
	case ContentTypeCommit:
		if c.Commit == nil {
			w.fail("FramedContent.commit", ErrInconsistent)
			return
		}
		c.Commit.encode(w)
	default:
		w.fail("FramedContent.content_type", ErrUnknownContentType)
	}
}

func (c *FramedContent) decode(r *reader) {
	c.GroupID = r.opaque("FramedContent.group_id")
	c.Epoch = r.u64("FramedContent.epoch")
	c.Sender.decode(r)
	c.AuthenticatedData = r.opaque("FramedContent.authenticated_data")
	off := r.off
	c.ContentType = ContentType(r.u8("FramedContent.content_type"))
	if r.err != nil {
		return
	}
	switch c.ContentType {
	case ContentTypeApplication:
		c.ApplicationData = r.opaque("FramedContent.application_data")
	case ContentTypeProposal:
		c.Proposal = new(Proposal)
		c.Proposal.decode(r)
	case ContentTypeCommit:
		c.Commit = new(Commit)
		c.Commit.decode(r)
	default:
		r.failValue("FramedContent.content_type", off, ErrUnknownContentType, uint64(c.ContentType), 2)
	}
}

// Marshal encodes c.
func (c *FramedContent) Marshal() ([]byte, error) { return marshal(c) }

// Unmarshal decodes c from exactly b.
func (c *FramedContent) Unmarshal(b []byte) error { return unmarshal(c, b, "FramedContent") }

// FramedContentAuthData is RFC 9420's FramedContentAuthData (§6.1).
// ConfirmationTag is present exactly when the content type is commit, so
// encoding and decoding need the content type.
type FramedContentAuthData struct {
	Signature       []byte
	ConfirmationTag []byte // commit only
}

func (a *FramedContentAuthData) encode(w *writer, ct ContentType) {
	w.opaque("FramedContentAuthData.signature", a.Signature)
	if ct == ContentTypeCommit {
		w.opaque("FramedContentAuthData.confirmation_tag", a.ConfirmationTag)
	}
}

func (a *FramedContentAuthData) decode(r *reader, ct ContentType) {
	a.Signature = r.opaque("FramedContentAuthData.signature")
	if ct == ContentTypeCommit {
		a.ConfirmationTag = r.opaque("FramedContentAuthData.confirmation_tag")
	}
}

// PublicMessage is RFC 9420's PublicMessage (§6.2). MembershipTag is present
// exactly for member senders.
type PublicMessage struct {
	Content       FramedContent
	Auth          FramedContentAuthData
	MembershipTag []byte // member senders only
}

func (m *PublicMessage) encode(w *writer) {
	m.Content.encode(w)
	m.Auth.encode(w, m.Content.ContentType)
	if m.Content.Sender.SenderType == SenderTypeMember {
		w.opaque("PublicMessage.membership_tag", m.MembershipTag)
	}
}

func (m *PublicMessage) decode(r *reader) {
	m.Content.decode(r)
	m.Auth.decode(r, m.Content.ContentType)
	if m.Content.Sender.SenderType == SenderTypeMember {
		m.MembershipTag = r.opaque("PublicMessage.membership_tag")
	}
}

// Marshal encodes m.
func (m *PublicMessage) Marshal() ([]byte, error) { return marshal(m) }

// Unmarshal decodes m from exactly b.
func (m *PublicMessage) Unmarshal(b []byte) error { return unmarshal(m, b, "PublicMessage") }

// PrivateMessage is RFC 9420's PrivateMessage (§6.3). A Delivery Service
// cannot decrypt it; it sees only these fields.
type PrivateMessage struct {
	GroupID             []byte
	Epoch               uint64
	ContentType         ContentType
	AuthenticatedData   []byte
	EncryptedSenderData []byte
	Ciphertext          []byte
}

func (m *PrivateMessage) encode(w *writer) {
	w.opaque("PrivateMessage.group_id", m.GroupID)
	w.u64(m.Epoch)
	w.u8(uint8(m.ContentType))
	w.opaque("PrivateMessage.authenticated_data", m.AuthenticatedData)
	w.opaque("PrivateMessage.encrypted_sender_data", m.EncryptedSenderData)
	w.opaque("PrivateMessage.ciphertext", m.Ciphertext)
}

func (m *PrivateMessage) decode(r *reader) {
	m.GroupID = r.opaque("PrivateMessage.group_id")
	m.Epoch = r.u64("PrivateMessage.epoch")
	off := r.off
	m.ContentType = ContentType(r.u8("PrivateMessage.content_type"))
	if r.err == nil && (m.ContentType < ContentTypeApplication || m.ContentType > ContentTypeCommit) {
		r.failValue("PrivateMessage.content_type", off, ErrUnknownContentType, uint64(m.ContentType), 2)
		return
	}
	m.AuthenticatedData = r.opaque("PrivateMessage.authenticated_data")
	m.EncryptedSenderData = r.opaque("PrivateMessage.encrypted_sender_data")
	m.Ciphertext = r.opaque("PrivateMessage.ciphertext")
}

// Marshal encodes m.
func (m *PrivateMessage) Marshal() ([]byte, error) { return marshal(m) }

// Unmarshal decodes m from exactly b.
func (m *PrivateMessage) Unmarshal(b []byte) error { return unmarshal(m, b, "PrivateMessage") }

// MLSMessage is RFC 9420's MLSMessage (§6). The field matching WireFormat is
// set. Decoding accepts only version mls10 and the five RFC 9420 wire
// formats.
type MLSMessage struct {
	Version        ProtocolVersion
	WireFormat     WireFormat
	PublicMessage  *PublicMessage
	PrivateMessage *PrivateMessage
	Welcome        *Welcome
	GroupInfo      *GroupInfo
	KeyPackage     *KeyPackage
}

func (m *MLSMessage) body(alloc bool) (codec, bool) {
	switch m.WireFormat {
	case WireFormatPublicMessage:
		if m.PublicMessage == nil && alloc {
			m.PublicMessage = new(PublicMessage)
		}
		return m.PublicMessage, m.PublicMessage != nil
	case WireFormatPrivateMessage:
		if m.PrivateMessage == nil && alloc {
			m.PrivateMessage = new(PrivateMessage)
		}
		return m.PrivateMessage, m.PrivateMessage != nil
	case WireFormatWelcome:
		if m.Welcome == nil && alloc {
			m.Welcome = new(Welcome)
		}
		return m.Welcome, m.Welcome != nil
	case WireFormatGroupInfo:
		if m.GroupInfo == nil && alloc {
			m.GroupInfo = new(GroupInfo)
		}
		return m.GroupInfo, m.GroupInfo != nil
	case WireFormatKeyPackage:
		if m.KeyPackage == nil && alloc {
			m.KeyPackage = new(KeyPackage)
		}
		return m.KeyPackage, m.KeyPackage != nil
	}
	return nil, false
}

func (m *MLSMessage) encode(w *writer) {
	w.u16(uint16(m.Version))
	w.u16(uint16(m.WireFormat))
	b, ok := m.body(false)
	if !ok {
		if b == nil {
			w.fail("MLSMessage.wire_format", ErrUnknownWireFormat)
		} else {
			w.fail("MLSMessage."+m.WireFormat.String(), ErrInconsistent)
		}
		return
	}
	b.encode(w)
}

func (m *MLSMessage) decode(r *reader) {
	off := r.off
	m.Version = ProtocolVersion(r.u16("MLSMessage.version"))
	if r.err == nil && m.Version != ProtocolVersionMLS10 {
		r.failValue("MLSMessage.version", off, ErrUnsupportedVersion, uint64(m.Version), 4)
		return
	}
	off = r.off
	m.WireFormat = WireFormat(r.u16("MLSMessage.wire_format"))
	if r.err != nil {
		return
	}
	b, _ := m.body(true)
	if b == nil {
		r.failValue("MLSMessage.wire_format", off, ErrUnknownWireFormat, uint64(m.WireFormat), 4)
		return
	}
	b.decode(r)
}

// Marshal encodes m.
func (m *MLSMessage) Marshal() ([]byte, error) { return marshal(m) }

// Unmarshal decodes m from exactly b.
func (m *MLSMessage) Unmarshal(b []byte) error { return unmarshal(m, b, "MLSMessage") }

// DecodeMLSMessage decodes an MLSMessage that is the whole of b.
func DecodeMLSMessage(b []byte) (*MLSMessage, error) {
	m := new(MLSMessage)
	if err := m.Unmarshal(b); err != nil {
		return nil, err
	}
	return m, nil
}

// AuthenticatedContent is RFC 9420's AuthenticatedContent (§6).
type AuthenticatedContent struct {
	WireFormat WireFormat
	Content    FramedContent
	Auth       FramedContentAuthData
}

func (a *AuthenticatedContent) encode(w *writer) {
	w.u16(uint16(a.WireFormat))
	a.Content.encode(w)
	a.Auth.encode(w, a.Content.ContentType)
}

func (a *AuthenticatedContent) decode(r *reader) {
	a.WireFormat = WireFormat(r.u16("AuthenticatedContent.wire_format"))
	a.Content.decode(r)
	a.Auth.decode(r, a.Content.ContentType)
}

// Marshal encodes a.
func (a *AuthenticatedContent) Marshal() ([]byte, error) { return marshal(a) }

// Unmarshal decodes a from exactly b.
func (a *AuthenticatedContent) Unmarshal(b []byte) error {
	return unmarshal(a, b, "AuthenticatedContent")
}
