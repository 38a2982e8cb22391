package mls

// Add is RFC 9420's Add proposal (§12.1.1).
type Add struct {
	KeyPackage KeyPackage
}

func (a *Add) encode(w *writer) { a.KeyPackage.encode(w) }
func (a *Add) decode(r *reader) { a.KeyPackage.decode(r) }

// Marshal encodes a.
func (a *Add) Marshal() ([]byte, error) { return marshal(a) }

// Unmarshal decodes a from exactly b.
func (a *Add) Unmarshal(b []byte) error { return unmarshal(a, b, "Add") }

// Update is RFC 9420's Update proposal (§12.1.2).
type Update struct {
	LeafNode LeafNode
}

func (u *Update) encode(w *writer) { u.LeafNode.encode(w) }
func (u *Update) decode(r *reader) { u.LeafNode.decode(r) }

// Marshal encodes u.
func (u *Update) Marshal() ([]byte, error) { return marshal(u) }

// Unmarshal decodes u from exactly b.
func (u *Update) Unmarshal(b []byte) error { return unmarshal(u, b, "Update") }

// Remove is RFC 9420's Remove proposal (§12.1.3).
type Remove struct {
	Removed uint32
}

func (p *Remove) encode(w *writer) { w.u32(p.Removed) }
func (p *Remove) decode(r *reader) { p.Removed = r.u32("Remove.removed") }

// Marshal encodes p.
func (p *Remove) Marshal() ([]byte, error) { return marshal(p) }

// Unmarshal decodes p from exactly b.
func (p *Remove) Unmarshal(b []byte) error { return unmarshal(p, b, "Remove") }

// PreSharedKeyID is RFC 9420's PreSharedKeyID (§8.4). PSKID is set for
// external PSKs; Usage, PSKGroupID and PSKEpoch for resumption PSKs.
type PreSharedKeyID struct {
	PSKType    PSKType
	PSKID      []byte             // external
	Usage      ResumptionPSKUsage // resumption
	PSKGroupID []byte             // resumption
	PSKEpoch   uint64             // resumption
	PSKNonce   []byte
}

func (p *PreSharedKeyID) encode(w *writer) {
	w.u8(uint8(p.PSKType))
	switch p.PSKType {
	case PSKTypeExternal:
		w.opaque("PreSharedKeyID.psk_id", p.PSKID)
	case PSKTypeResumption:
		w.u8(uint8(p.Usage))
		w.opaque("PreSharedKeyID.psk_group_id", p.PSKGroupID)
		w.u64(p.PSKEpoch)
	default:
		w.fail("PreSharedKeyID.psktype", ErrUnknownPSKType)
	}
	w.opaque("PreSharedKeyID.psk_nonce", p.PSKNonce)
}

func (p *PreSharedKeyID) decode(r *reader) {
	off := r.off
	p.PSKType = PSKType(r.u8("PreSharedKeyID.psktype"))
	switch p.PSKType {
	case PSKTypeExternal:
		p.PSKID = r.opaque("PreSharedKeyID.psk_id")
	case PSKTypeResumption:
		p.Usage = ResumptionPSKUsage(r.u8("PreSharedKeyID.usage"))
		p.PSKGroupID = r.opaque("PreSharedKeyID.psk_group_id")
		p.PSKEpoch = r.u64("PreSharedKeyID.psk_epoch")
	default:
		r.failValue("PreSharedKeyID.psktype", off, ErrUnknownPSKType, uint64(p.PSKType), 2)
		return
	}
	p.PSKNonce = r.opaque("PreSharedKeyID.psk_nonce")
}

// Marshal encodes p.
func (p *PreSharedKeyID) Marshal() ([]byte, error) { return marshal(p) }

// Unmarshal decodes p from exactly b.
func (p *PreSharedKeyID) Unmarshal(b []byte) error { return unmarshal(p, b, "PreSharedKeyID") }

// PreSharedKey is RFC 9420's PreSharedKey proposal (§12.1.4).
type PreSharedKey struct {
	PSK PreSharedKeyID
}

func (p *PreSharedKey) encode(w *writer) { p.PSK.encode(w) }
func (p *PreSharedKey) decode(r *reader) { p.PSK.decode(r) }

// Marshal encodes p.
func (p *PreSharedKey) Marshal() ([]byte, error) { return marshal(p) }

// Unmarshal decodes p from exactly b.
func (p *PreSharedKey) Unmarshal(b []byte) error { return unmarshal(p, b, "PreSharedKey") }

// ReInit is RFC 9420's ReInit proposal (§12.1.5).
type ReInit struct {
	GroupID     []byte
	Version     ProtocolVersion
	CipherSuite CipherSuite
	Extensions  Extensions
}

func (p *ReInit) encode(w *writer) {
	w.opaque("ReInit.group_id", p.GroupID)
	w.u16(uint16(p.Version))
	w.u16(uint16(p.CipherSuite))
	p.Extensions.encode(w, "ReInit.extensions")
}

func (p *ReInit) decode(r *reader) {
	p.GroupID = r.opaque("ReInit.group_id")
	p.Version = ProtocolVersion(r.u16("ReInit.version"))
	p.CipherSuite = CipherSuite(r.u16("ReInit.cipher_suite"))
	p.Extensions = decodeExtensions(r, "ReInit.extensions")
}

// Marshal encodes p.
func (p *ReInit) Marshal() ([]byte, error) { return marshal(p) }

// Unmarshal decodes p from exactly b.
func (p *ReInit) Unmarshal(b []byte) error { return unmarshal(p, b, "ReInit") }

// ExternalInit is RFC 9420's ExternalInit proposal (§12.1.6).
type ExternalInit struct {
	KEMOutput []byte
}

func (p *ExternalInit) encode(w *writer) { w.opaque("ExternalInit.kem_output", p.KEMOutput) }
func (p *ExternalInit) decode(r *reader) { p.KEMOutput = r.opaque("ExternalInit.kem_output") }

// Marshal encodes p.
func (p *ExternalInit) Marshal() ([]byte, error) { return marshal(p) }

// Unmarshal decodes p from exactly b.
func (p *ExternalInit) Unmarshal(b []byte) error { return unmarshal(p, b, "ExternalInit") }

// GroupContextExtensions is RFC 9420's GroupContextExtensions proposal
// (§12.1.7).
type GroupContextExtensions struct {
	Extensions Extensions
}

func (p *GroupContextExtensions) encode(w *writer) {
	p.Extensions.encode(w, "GroupContextExtensions.extensions")
}

func (p *GroupContextExtensions) decode(r *reader) {
	p.Extensions = decodeExtensions(r, "GroupContextExtensions.extensions")
}

// Marshal encodes p.
func (p *GroupContextExtensions) Marshal() ([]byte, error) { return marshal(p) }

// Unmarshal decodes p from exactly b.
func (p *GroupContextExtensions) Unmarshal(b []byte) error {
	return unmarshal(p, b, "GroupContextExtensions")
}

// Proposal is RFC 9420's Proposal (§12.1). The field matching ProposalType
// is set; for a proposal type RFC 9420 does not define, Unknown holds the
// body, which is read and written as one opaque<V> (see the package doc).
type Proposal struct {
	ProposalType           ProposalType
	Add                    *Add
	Update                 *Update
	Remove                 *Remove
	PreSharedKey           *PreSharedKey
	ReInit                 *ReInit
	ExternalInit           *ExternalInit
	GroupContextExtensions *GroupContextExtensions
	Unknown                []byte
}

// body returns the codec of the variant that ProposalType selects, or nil
// for an unknown type. With alloc it allocates the variant when missing.
func (p *Proposal) body(alloc bool) (codec, bool) {
	switch p.ProposalType {
	case ProposalTypeAdd:
		if p.Add == nil && alloc {
			p.Add = new(Add)
		}
		return p.Add, p.Add != nil
	case ProposalTypeUpdate:
		if p.Update == nil && alloc {
			p.Update = new(Update)
		}
		return p.Update, p.Update != nil
	case ProposalTypeRemove:
		if p.Remove == nil && alloc {
			p.Remove = new(Remove)
		}
		return p.Remove, p.Remove != nil
	case ProposalTypePSK:
		if p.PreSharedKey == nil && alloc {
			p.PreSharedKey = new(PreSharedKey)
		}
		return p.PreSharedKey, p.PreSharedKey != nil
	case ProposalTypeReInit:
		if p.ReInit == nil && alloc {
			p.ReInit = new(ReInit)
		}
		return p.ReInit, p.ReInit != nil
	case ProposalTypeExternalInit:
		if p.ExternalInit == nil && alloc {
			p.ExternalInit = new(ExternalInit)
		}
		return p.ExternalInit, p.ExternalInit != nil
	case ProposalTypeGroupContextExtensions:
		if p.GroupContextExtensions == nil && alloc {
			p.GroupContextExtensions = new(GroupContextExtensions)
		}
		return p.GroupContextExtensions, p.GroupContextExtensions != nil
	}
	return nil, true
}

func (p *Proposal) encode(w *writer) {
	w.u16(uint16(p.ProposalType))
	b, ok := p.body(false)
	switch {
	case !ok:
		w.fail("Proposal."+p.ProposalType.String(), ErrInconsistent)
	case b == nil:
		w.opaque("Proposal.unknown", p.Unknown)
	default:
		b.encode(w)
	}
}

func (p *Proposal) decode(r *reader) {
	p.ProposalType = ProposalType(r.u16("Proposal.proposal_type"))
	if r.err != nil {
		return
	}
	if b, _ := p.body(true); b != nil {
		b.decode(r)
	} else {
		p.Unknown = r.opaque("Proposal.unknown")
	}
}

// Marshal encodes p.
func (p *Proposal) Marshal() ([]byte, error) { return marshal(p) }

// Unmarshal decodes p from exactly b.
func (p *Proposal) Unmarshal(b []byte) error { return unmarshal(p, b, "Proposal") }

// DecodeProposal decodes a Proposal that is the whole of b.
func DecodeProposal(b []byte) (*Proposal, error) {
	p := new(Proposal)
	if err := p.Unmarshal(b); err != nil {
		return nil, err
	}
	return p, nil
}

// ProposalOrRef is RFC 9420's ProposalOrRef (§12.4).
type ProposalOrRef struct {
	Type      ProposalOrRefType
	Proposal  *Proposal // proposal
	Reference []byte    // reference: a ProposalRef
}

func (p *ProposalOrRef) encode(w *writer) {
	w.u8(uint8(p.Type))
	switch p.Type {
	case ProposalOrRefTypeProposal:
		if p.Proposal == nil {
			w.fail("ProposalOrRef.proposal", ErrInconsistent)
			return
		}
		p.Proposal.encode(w)
	case ProposalOrRefTypeReference:
		w.opaque("ProposalOrRef.reference", p.Reference)
	default:
		w.fail("ProposalOrRef.type", ErrUnknownProposalOrRefType)
	}
}

func (p *ProposalOrRef) decode(r *reader) {
	off := r.off
	p.Type = ProposalOrRefType(r.u8("ProposalOrRef.type"))
	switch p.Type {
	case ProposalOrRefTypeProposal:
		p.Proposal = new(Proposal)
		p.Proposal.decode(r)
	case ProposalOrRefTypeReference:
		p.Reference = r.opaque("ProposalOrRef.reference")
	default:
		r.failValue("ProposalOrRef.type", off, ErrUnknownProposalOrRefType, uint64(p.Type), 2)
	}
}

// HPKECiphertext is RFC 9420's HPKECiphertext (§7.6).
type HPKECiphertext struct {
	KEMOutput  []byte
	Ciphertext []byte
}

func (c *HPKECiphertext) encode(w *writer) {
	w.opaque("HPKECiphertext.kem_output", c.KEMOutput)
	w.opaque("HPKECiphertext.ciphertext", c.Ciphertext)
}

func (c *HPKECiphertext) decode(r *reader) {
	c.KEMOutput = r.opaque("HPKECiphertext.kem_output")
	c.Ciphertext = r.opaque("HPKECiphertext.ciphertext")
}

// UpdatePathNode is RFC 9420's UpdatePathNode (§7.6).
type UpdatePathNode struct {
	EncryptionKey       []byte // HPKEPublicKey
	EncryptedPathSecret []HPKECiphertext
}

func (n *UpdatePathNode) encode(w *writer) {
	w.opaque("UpdatePathNode.encryption_key", n.EncryptionKey)
	start := w.beginVec()
	for i := range n.EncryptedPathSecret {
		n.EncryptedPathSecret[i].encode(w)
	}
	w.endVec("UpdatePathNode.encrypted_path_secret", start)
}

func (n *UpdatePathNode) decode(r *reader) {
	n.EncryptionKey = r.opaque("UpdatePathNode.encryption_key")
	saved := r.enterVec("UpdatePathNode.encrypted_path_secret")
	for r.more() {
		var c HPKECiphertext
		c.decode(r)
		n.EncryptedPathSecret = append(n.EncryptedPathSecret, c)
	}
	r.leaveVec(saved)
}

// UpdatePath is RFC 9420's UpdatePath (§7.6).
type UpdatePath struct {
	LeafNode LeafNode
	Nodes    []UpdatePathNode
}

func (u *UpdatePath) encode(w *writer) {
	u.LeafNode.encode(w)
	start := w.beginVec()
	for i := range u.Nodes {
		u.Nodes[i].encode(w)
	}
	w.endVec("UpdatePath.nodes", start)
}

func (u *UpdatePath) decode(r *reader) {
	u.LeafNode.decode(r)
	saved := r.enterVec("UpdatePath.nodes")
	for r.more() {
		var n UpdatePathNode
		n.decode(r)
		u.Nodes = append(u.Nodes, n)
	}
	r.leaveVec(saved)
}

// Marshal encodes u.
func (u *UpdatePath) Marshal() ([]byte, error) { return marshal(u) }

// Unmarshal decodes u from exactly b.
func (u *UpdatePath) Unmarshal(b []byte) error { return unmarshal(u, b, "UpdatePath") }

// Commit is RFC 9420's Commit (§12.4). Path is nil when absent.
type Commit struct {
	Proposals []ProposalOrRef
	Path      *UpdatePath
}

func (c *Commit) encode(w *writer) {
	start := w.beginVec()
	for i := range c.Proposals {
		c.Proposals[i].encode(w)
	}
	w.endVec("Commit.proposals", start)
	w.optional(c.Path != nil)
	if c.Path != nil {
		c.Path.encode(w)
	}
}

func (c *Commit) decode(r *reader) {
	saved := r.enterVec("Commit.proposals")
	for r.more() {
		var p ProposalOrRef
		p.decode(r)
		c.Proposals = append(c.Proposals, p)
	}
	r.leaveVec(saved)
	if r.optional("Commit.path") {
		c.Path = new(UpdatePath)
		c.Path.decode(r)
	}
}

// Marshal encodes c.
func (c *Commit) Marshal() ([]byte, error) { return marshal(c) }

// Unmarshal decodes c from exactly b.
func (c *Commit) Unmarshal(b []byte) error { return unmarshal(c, b, "Commit") }

// DecodeCommit decodes a Commit that is the whole of b.
func DecodeCommit(b []byte) (*Commit, error) {
	c := new(Commit)
	if err := c.Unmarshal(b); err != nil {
		return nil, err
	}
	return c, nil
}
