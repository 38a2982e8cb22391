package mls

import (
	"errors"
	"fmt"
)

// GroupContext is RFC 9420's GroupContext (§8.1).
type GroupContext struct {
	Version                 ProtocolVersion
	CipherSuite             CipherSuite
	GroupID                 []byte
	Epoch                   uint64
	TreeHash                []byte
	ConfirmedTranscriptHash []byte
	Extensions              Extensions
}

func (g *GroupContext) encode(w *writer) {
	w.u16(uint16(g.Version))
	w.u16(uint16(g.CipherSuite))
	w.opaque("GroupContext.group_id", g.GroupID)
	w.u64(g.Epoch)
	w.opaque("GroupContext.tree_hash", g.TreeHash)
	w.opaque("GroupContext.confirmed_transcript_hash", g.ConfirmedTranscriptHash)
	g.Extensions.encode(w, "GroupContext.extensions")
}

func (g *GroupContext) decode(r *reader) {
	g.Version = ProtocolVersion(r.u16("GroupContext.version"))
	g.CipherSuite = CipherSuite(r.u16("GroupContext.cipher_suite"))
	g.GroupID = r.opaque("GroupContext.group_id")
	g.Epoch = r.u64("GroupContext.epoch")
	g.TreeHash = r.opaque("GroupContext.tree_hash")
	g.ConfirmedTranscriptHash = r.opaque("GroupContext.confirmed_transcript_hash")
	g.Extensions = decodeExtensions(r, "GroupContext.extensions")
}

// Marshal encodes g.
func (g *GroupContext) Marshal() ([]byte, error) { return marshal(g) }

// Unmarshal decodes g from exactly b.
func (g *GroupContext) Unmarshal(b []byte) error { return unmarshal(g, b, "GroupContext") }

// GroupInfo is RFC 9420's GroupInfo (§12.4.3).
type GroupInfo struct {
	GroupContext    GroupContext
	Extensions      Extensions
	ConfirmationTag []byte
	Signer          uint32
	Signature       []byte
}

func (g *GroupInfo) encodeTBS(w *writer) {
	g.GroupContext.encode(w)
	g.Extensions.encode(w, "GroupInfo.extensions")
	w.opaque("GroupInfo.confirmation_tag", g.ConfirmationTag)
	w.u32(g.Signer)
}

func (g *GroupInfo) encode(w *writer) {
	g.encodeTBS(w)
	w.opaque("GroupInfo.signature", g.Signature)
}

func (g *GroupInfo) decode(r *reader) {
	g.GroupContext.decode(r)
	g.Extensions = decodeExtensions(r, "GroupInfo.extensions")
	g.ConfirmationTag = r.opaque("GroupInfo.confirmation_tag")
	g.Signer = r.u32("GroupInfo.signer")
	g.Signature = r.opaque("GroupInfo.signature")
}

// Marshal encodes g.
func (g *GroupInfo) Marshal() ([]byte, error) { return marshal(g) }

// Unmarshal decodes g from exactly b.
func (g *GroupInfo) Unmarshal(b []byte) error { return unmarshal(g, b, "GroupInfo") }

// DecodeGroupInfo decodes a bare GroupInfo that is the whole of b.
func DecodeGroupInfo(b []byte) (*GroupInfo, error) {
	g := new(GroupInfo)
	if err := g.Unmarshal(b); err != nil {
		return nil, err
	}
	return g, nil
}

// TBS returns the encoded GroupInfoTBS (§12.4.3), the content signed with
// label "GroupInfoTBS".
func (g *GroupInfo) TBS() ([]byte, error) {
	w := writer{}
	g.encodeTBS(&w)
	if w.err != nil {
		return nil, w.err
	}
	return w.buf, nil
}

// EncryptedGroupSecrets is RFC 9420's EncryptedGroupSecrets (§12.4.3.1).
type EncryptedGroupSecrets struct {
	NewMember             []byte // KeyPackageRef
	EncryptedGroupSecrets HPKECiphertext
}

func (e *EncryptedGroupSecrets) encode(w *writer) {
	w.opaque("EncryptedGroupSecrets.new_member", e.NewMember)
	e.EncryptedGroupSecrets.encode(w)
}

func (e *EncryptedGroupSecrets) decode(r *reader) {
	e.NewMember = r.opaque("EncryptedGroupSecrets.new_member")
	e.EncryptedGroupSecrets.decode(r)
}

// Welcome is RFC 9420's Welcome (§12.4.3.1).
type Welcome struct {
	CipherSuite        CipherSuite
	Secrets            []EncryptedGroupSecrets
	EncryptedGroupInfo []byte
}

func (wl *Welcome) encode(w *writer) {
	w.u16(uint16(wl.CipherSuite))
	start := w.beginVec()
	for i := range wl.Secrets {
		wl.Secrets[i].encode(w)
	}
	w.endVec("Welcome.secrets", start)
	w.opaque("Welcome.encrypted_group_info", wl.EncryptedGroupInfo)
}

func (wl *Welcome) decode(r *reader) {
	wl.CipherSuite = CipherSuite(r.u16("Welcome.cipher_suite"))
	saved := r.enterVec("Welcome.secrets")
	if n := countOpaqueTuples(r, 3); n > 0 {
		wl.Secrets = make([]EncryptedGroupSecrets, 0, n)
	}
	for r.more() {
		wl.Secrets = append(wl.Secrets, EncryptedGroupSecrets{})
		wl.Secrets[len(wl.Secrets)-1].decode(r)
	}
	r.leaveVec(saved)
	wl.EncryptedGroupInfo = r.opaque("Welcome.encrypted_group_info")
}

// Marshal encodes wl.
func (wl *Welcome) Marshal() ([]byte, error) { return marshal(wl) }

// Unmarshal decodes wl from exactly b.
func (wl *Welcome) Unmarshal(b []byte) error { return unmarshal(wl, b, "Welcome") }

// DecodeWelcome decodes a bare Welcome that is the whole of b.
func DecodeWelcome(b []byte) (*Welcome, error) {
	wl := new(Welcome)
	if err := wl.Unmarshal(b); err != nil {
		return nil, err
	}
	return wl, nil
}

// KeyPackageRefs returns the KeyPackageRef of every EncryptedGroupSecrets,
// in order: the KeyPackages this Welcome is for. The slices alias the
// Welcome.
func (wl *Welcome) KeyPackageRefs() [][]byte {
	refs := make([][]byte, len(wl.Secrets))
	for i := range wl.Secrets {
		refs[i] = wl.Secrets[i].NewMember
	}
	return refs
}

// PathSecret is RFC 9420's PathSecret (§12.4.3.1).
type PathSecret struct {
	PathSecret []byte
}

// GroupSecrets is RFC 9420's GroupSecrets (§12.4.3.1), the plaintext of an
// EncryptedGroupSecrets. PathSecret is nil when absent.
type GroupSecrets struct {
	JoinerSecret []byte
	PathSecret   *PathSecret
	PSKs         []PreSharedKeyID
}

func (g *GroupSecrets) encode(w *writer) {
	w.opaque("GroupSecrets.joiner_secret", g.JoinerSecret)
	w.optional(g.PathSecret != nil)
	if g.PathSecret != nil {
		w.opaque("PathSecret.path_secret", g.PathSecret.PathSecret)
	}
	start := w.beginVec()
	for i := range g.PSKs {
		g.PSKs[i].encode(w)
	}
	w.endVec("GroupSecrets.psks", start)
}

func (g *GroupSecrets) decode(r *reader) {
	g.JoinerSecret = r.opaque("GroupSecrets.joiner_secret")
	if r.optional("GroupSecrets.path_secret") {
		g.PathSecret = &PathSecret{PathSecret: r.opaque("PathSecret.path_secret")}
	}
	saved := r.enterVec("GroupSecrets.psks")
	for r.more() {
		var p PreSharedKeyID
		p.decode(r)
		g.PSKs = append(g.PSKs, p)
	}
	r.leaveVec(saved)
}

// Marshal encodes g.
func (g *GroupSecrets) Marshal() ([]byte, error) { return marshal(g) }

// Unmarshal decodes g from exactly b.
func (g *GroupSecrets) Unmarshal(b []byte) error { return unmarshal(g, b, "GroupSecrets") }

// Errors of Welcome inspection.
var (
	ErrNotWelcome             = errors.New("mls: message is not a Welcome")
	ErrBadKeyPackageRef       = errors.New("mls: KeyPackageRef of the wrong length")
	ErrDuplicateKeyPackageRef = errors.New("mls: KeyPackageRef listed twice")
)

// WelcomeInfo is what a Delivery Service needs to route a Welcome: its
// cipher suite and the KeyPackageRefs of the new members, in order. Refs
// are copies: they do not alias the input.
type WelcomeInfo struct {
	CipherSuite    CipherSuite
	KeyPackageRefs [][]byte
}

// InspectWelcome decodes an MLSMessage that must be a Welcome and returns
// its cipher suite and KeyPackageRefs, after checking that the suite is
// supported, every ref is one hash long, and no ref appears twice.
func InspectWelcome(b []byte) (*WelcomeInfo, error) {
	m, err := DecodeMLSMessage(b)
	if err != nil {
		return nil, err
	}
	if m.Welcome == nil {
		return nil, fmt.Errorf("%w: wire format %s", ErrNotWelcome, m.WireFormat)
	}
	return m.Welcome.Info()
}

// Info checks wl as InspectWelcome does and returns its WelcomeInfo.
func (wl *Welcome) Info() (*WelcomeInfo, error) {
	s, err := wl.CipherSuite.Suite()
	if err != nil {
		return nil, fmt.Errorf("mls: inspect Welcome: %w", err)
	}
	info := &WelcomeInfo{CipherSuite: wl.CipherSuite, KeyPackageRefs: make([][]byte, len(wl.Secrets))}
	seen := make(map[string]struct{}, len(wl.Secrets))
	buf := make([]byte, 0, len(wl.Secrets)*s.HashSize())
	for i := range wl.Secrets {
		ref := wl.Secrets[i].NewMember
		if len(ref) != s.HashSize() {
			return nil, fmt.Errorf("mls: inspect Welcome: %w: secrets[%d] has %d bytes, want %d",
				ErrBadKeyPackageRef, i, len(ref), s.HashSize())
		}
		if _, dup := seen[string(ref)]; dup {
			return nil, fmt.Errorf("mls: inspect Welcome: %w: %x", ErrDuplicateKeyPackageRef, ref)
		}
		seen[string(ref)] = struct{}{}
		buf = append(buf, ref...)
		info.KeyPackageRefs[i] = buf[len(buf)-len(ref) : len(buf) : len(buf)]
	}
	return info, nil
}
