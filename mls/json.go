package mls

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
)

// RenderJSON renders a decoded value as JSON for operators: field names are
// RFC 9420's struct field names (snake_case), byte strings are lowercase
// hex, enums are RFC names ("mls_public_message", "commit", "member",
// "basic", ...; unknown values as "unknown(0x....)" or "grease(0x....)"),
// and only the fields a select chooses appear. Known extensions are shown
// both as extension_data and decoded, under their RFC name.
//
// v is one of *MLSMessage, *PublicMessage, *PrivateMessage, *Welcome,
// *GroupInfo, *GroupContext, *KeyPackage, *KeyPackageInfo, *LeafNode,
// *Proposal, *Commit, *UpdatePath, *GroupSecrets, *AuthenticatedContent,
// RatchetTree or *RatchetTree.
func RenderJSON(v any) ([]byte, error) {
	var o any
	switch x := v.(type) {
	case *MLSMessage:
		o = jsMLSMessage(x)
	case *PublicMessage:
		o = jsPublicMessage(x)
	case *PrivateMessage:
		o = jsPrivateMessage(x)
	case *Welcome:
		o = jsWelcome(x)
	case *GroupInfo:
		o = jsGroupInfo(x)
	case *GroupContext:
		o = jsGroupContext(x)
	case *KeyPackage:
		o = jsKeyPackage(x)
	case *KeyPackageInfo:
		o = jsKeyPackageInfo(x)
	case *LeafNode:
		o = jsLeafNode(x)
	case *Proposal:
		o = jsProposal(x)
	case *Commit:
		o = jsCommit(x)
	case *UpdatePath:
		o = jsUpdatePath(x)
	case *GroupSecrets:
		o = jsGroupSecrets(x)
	case *AuthenticatedContent:
		o = jsAuthenticatedContent(x)
	case RatchetTree:
		o = jsRatchetTree(x)
	case *RatchetTree:
		o = jsRatchetTree(*x)
	default:
		return nil, fmt.Errorf("mls: RenderJSON: unsupported type %T", v)
	}
	return json.Marshal(o)
}

// jobj is a JSON object that keeps its field order.
type jobj []jfield

type jfield struct {
	name  string
	value any
}

func (o jobj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(f.name)
		b.Write(k)
		b.WriteByte(':')
		v, err := json.Marshal(f.value)
		if err != nil {
			return nil, err
		}
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (o *jobj) add(name string, value any) { *o = append(*o, jfield{name, value}) }

// hx renders bytes as lowercase hex.
func hx(b []byte) string { return hex.EncodeToString(b) }

func enumList[T fmt.Stringer](l []T) []string {
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = v.String()
	}
	return out
}

func jsMLSMessage(m *MLSMessage) jobj {
	o := jobj{{"version", m.Version.String()}, {"wire_format", m.WireFormat.String()}}
	switch {
	case m.PublicMessage != nil:
		o.add("public_message", jsPublicMessage(m.PublicMessage))
	case m.PrivateMessage != nil:
		o.add("private_message", jsPrivateMessage(m.PrivateMessage))
	case m.Welcome != nil:
		o.add("welcome", jsWelcome(m.Welcome))
	case m.GroupInfo != nil:
		o.add("group_info", jsGroupInfo(m.GroupInfo))
	case m.KeyPackage != nil:
		o.add("key_package", jsKeyPackage(m.KeyPackage))
	}
	return o
}

func jsSender(s *Sender) jobj {
	o := jobj{{"sender_type", s.SenderType.String()}}
	switch s.SenderType {
	case SenderTypeMember:
		o.add("leaf_index", s.LeafIndex)
	case SenderTypeExternal:
		o.add("sender_index", s.SenderIndex)
	}
	return o
}

func jsFramedContent(c *FramedContent) jobj {
	o := jobj{
		{"group_id", hx(c.GroupID)},
		{"epoch", c.Epoch},
		{"sender", jsSender(&c.Sender)},
		{"authenticated_data", hx(c.AuthenticatedData)},
		{"content_type", c.ContentType.String()},
	}
	switch {
	case c.ContentType == ContentTypeApplication:
		o.add("application_data", hx(c.ApplicationData))
	case c.Proposal != nil:
		o.add("proposal", jsProposal(c.Proposal))
	case c.Commit != nil:
		o.add("commit", jsCommit(c.Commit))
	}
	return o
}

func jsAuth(a *FramedContentAuthData, ct ContentType) jobj {
	o := jobj{{"signature", hx(a.Signature)}}
	if ct == ContentTypeCommit {
		o.add("confirmation_tag", hx(a.ConfirmationTag))
	}
	return o
}

func jsPublicMessage(m *PublicMessage) jobj {
	o := jobj{{"content", jsFramedContent(&m.Content)}, {"auth", jsAuth(&m.Auth, m.Content.ContentType)}}
	if m.Content.Sender.SenderType == SenderTypeMember {
		o.add("membership_tag", hx(m.MembershipTag))
	}
	return o
}

func jsAuthenticatedContent(a *AuthenticatedContent) jobj {
	return jobj{
		{"wire_format", a.WireFormat.String()},
		{"content", jsFramedContent(&a.Content)},
		{"auth", jsAuth(&a.Auth, a.Content.ContentType)},
	}
}

func jsPrivateMessage(m *PrivateMessage) jobj {
	return jobj{
		{"group_id", hx(m.GroupID)},
		{"epoch", m.Epoch},
		{"content_type", m.ContentType.String()},
		{"authenticated_data", hx(m.AuthenticatedData)},
		{"encrypted_sender_data", hx(m.EncryptedSenderData)},
		{"ciphertext", hx(m.Ciphertext)},
	}
}

func jsHPKECiphertext(c *HPKECiphertext) jobj {
	return jobj{{"kem_output", hx(c.KEMOutput)}, {"ciphertext", hx(c.Ciphertext)}}
}

func jsWelcome(w *Welcome) jobj {
	secrets := make([]jobj, len(w.Secrets))
	for i := range w.Secrets {
		s := &w.Secrets[i]
		secrets[i] = jobj{
			{"new_member", hx(s.NewMember)},
			{"encrypted_group_secrets", jsHPKECiphertext(&s.EncryptedGroupSecrets)},
		}
	}
	return jobj{
		{"cipher_suite", w.CipherSuite.String()},
		{"secrets", secrets},
		{"encrypted_group_info", hx(w.EncryptedGroupInfo)},
	}
}

func jsGroupContext(g *GroupContext) jobj {
	return jobj{
		{"version", g.Version.String()},
		{"cipher_suite", g.CipherSuite.String()},
		{"group_id", hx(g.GroupID)},
		{"epoch", g.Epoch},
		{"tree_hash", hx(g.TreeHash)},
		{"confirmed_transcript_hash", hx(g.ConfirmedTranscriptHash)},
		{"extensions", jsExtensions(g.Extensions)},
	}
}

func jsGroupInfo(g *GroupInfo) jobj {
	return jobj{
		{"group_context", jsGroupContext(&g.GroupContext)},
		{"extensions", jsExtensions(g.Extensions)},
		{"confirmation_tag", hx(g.ConfirmationTag)},
		{"signer", g.Signer},
		{"signature", hx(g.Signature)},
	}
}

func jsKeyPackage(kp *KeyPackage) jobj {
	return jobj{
		{"version", kp.Version.String()},
		{"cipher_suite", kp.CipherSuite.String()},
		{"init_key", hx(kp.InitKey)},
		{"leaf_node", jsLeafNode(&kp.LeafNode)},
		{"extensions", jsExtensions(kp.Extensions)},
		{"signature", hx(kp.Signature)},
	}
}

func jsCredential(c *Credential) jobj {
	o := jobj{{"credential_type", c.CredentialType.String()}}
	switch c.CredentialType {
	case CredentialTypeBasic:
		o.add("identity", hx(c.Identity))
	case CredentialTypeX509:
		certs := make([]jobj, len(c.Certificates))
		for i := range c.Certificates {
			certs[i] = jobj{{"cert_data", hx(c.Certificates[i].CertData)}}
		}
		o.add("certificates", certs)
	default:
		o.add("data", hx(c.Data))
	}
	return o
}

func jsCapabilities(c *Capabilities) jobj {
	return jobj{
		{"versions", enumList(c.Versions)},
		{"cipher_suites", enumList(c.CipherSuites)},
		{"extensions", enumList(c.Extensions)},
		{"proposals", enumList(c.Proposals)},
		{"credentials", enumList(c.Credentials)},
	}
}

func jsLifetime(l Lifetime) jobj {
	return jobj{{"not_before", l.NotBefore}, {"not_after", l.NotAfter}}
}

func jsLeafNode(ln *LeafNode) jobj {
	o := jobj{
		{"encryption_key", hx(ln.EncryptionKey)},
		{"signature_key", hx(ln.SignatureKey)},
		{"credential", jsCredential(&ln.Credential)},
		{"capabilities", jsCapabilities(&ln.Capabilities)},
		{"leaf_node_source", ln.LeafNodeSource.String()},
	}
	switch ln.LeafNodeSource {
	case LeafNodeSourceKeyPackage:
		o.add("lifetime", jsLifetime(ln.Lifetime))
	case LeafNodeSourceCommit:
		o.add("parent_hash", hx(ln.ParentHash))
	}
	o.add("extensions", jsExtensions(ln.Extensions))
	o.add("signature", hx(ln.Signature))
	return o
}

func jsParentNode(p *ParentNode) jobj {
	leaves := p.UnmergedLeaves
	if leaves == nil {
		leaves = []uint32{}
	}
	return jobj{
		{"encryption_key", hx(p.EncryptionKey)},
		{"parent_hash", hx(p.ParentHash)},
		{"unmerged_leaves", leaves},
	}
}

// jsRatchetTree renders optional<Node> ratchet_tree<V>: null for blanks.
func jsRatchetTree(t RatchetTree) []any {
	out := make([]any, len(t))
	for i, n := range t {
		switch {
		case n == nil:
			out[i] = nil
		case n.Leaf != nil:
			out[i] = jobj{{"node_type", n.NodeType.String()}, {"leaf_node", jsLeafNode(n.Leaf)}}
		case n.Parent != nil:
			out[i] = jobj{{"node_type", n.NodeType.String()}, {"parent_node", jsParentNode(n.Parent)}}
		default:
			out[i] = jobj{{"node_type", n.NodeType.String()}}
		}
	}
	return out
}

func jsPSKID(p *PreSharedKeyID) jobj {
	o := jobj{{"psktype", p.PSKType.String()}}
	switch p.PSKType {
	case PSKTypeExternal:
		o.add("psk_id", hx(p.PSKID))
	case PSKTypeResumption:
		o.add("usage", p.Usage.String())
		o.add("psk_group_id", hx(p.PSKGroupID))
		o.add("psk_epoch", p.PSKEpoch)
	}
	o.add("psk_nonce", hx(p.PSKNonce))
	return o
}

func jsGroupSecrets(g *GroupSecrets) jobj {
	o := jobj{{"joiner_secret", hx(g.JoinerSecret)}}
	if g.PathSecret != nil {
		o.add("path_secret", jobj{{"path_secret", hx(g.PathSecret.PathSecret)}})
	} else {
		o.add("path_secret", nil)
	}
	psks := make([]jobj, len(g.PSKs))
	for i := range g.PSKs {
		psks[i] = jsPSKID(&g.PSKs[i])
	}
	o.add("psks", psks)
	return o
}

func jsProposal(p *Proposal) jobj {
	o := jobj{{"proposal_type", p.ProposalType.String()}}
	switch {
	case p.Add != nil:
		o.add("add", jobj{{"key_package", jsKeyPackage(&p.Add.KeyPackage)}})
	case p.Update != nil:
		o.add("update", jobj{{"leaf_node", jsLeafNode(&p.Update.LeafNode)}})
	case p.Remove != nil:
		o.add("remove", jobj{{"removed", p.Remove.Removed}})
	case p.PreSharedKey != nil:
		o.add("psk", jobj{{"psk", jsPSKID(&p.PreSharedKey.PSK)}})
	case p.ReInit != nil:
		o.add("reinit", jobj{
			{"group_id", hx(p.ReInit.GroupID)},
			{"version", p.ReInit.Version.String()},
			{"cipher_suite", p.ReInit.CipherSuite.String()},
			{"extensions", jsExtensions(p.ReInit.Extensions)},
		})
	case p.ExternalInit != nil:
		o.add("external_init", jobj{{"kem_output", hx(p.ExternalInit.KEMOutput)}})
	case p.GroupContextExtensions != nil:
		o.add("group_context_extensions", jobj{{"extensions", jsExtensions(p.GroupContextExtensions.Extensions)}})
	default:
		o.add("data", hx(p.Unknown))
	}
	return o
}

func jsUpdatePath(u *UpdatePath) jobj {
	nodes := make([]jobj, len(u.Nodes))
	for i := range u.Nodes {
		n := &u.Nodes[i]
		cts := make([]jobj, len(n.EncryptedPathSecret))
		for j := range n.EncryptedPathSecret {
			cts[j] = jsHPKECiphertext(&n.EncryptedPathSecret[j])
		}
		nodes[i] = jobj{{"encryption_key", hx(n.EncryptionKey)}, {"encrypted_path_secret", cts}}
	}
	return jobj{{"leaf_node", jsLeafNode(&u.LeafNode)}, {"nodes", nodes}}
}

func jsCommit(c *Commit) jobj {
	props := make([]jobj, len(c.Proposals))
	for i := range c.Proposals {
		p := &c.Proposals[i]
		o := jobj{{"type", p.Type.String()}}
		if p.Proposal != nil {
			o.add("proposal", jsProposal(p.Proposal))
		} else {
			o.add("reference", hx(p.Reference))
		}
		props[i] = o
	}
	o := jobj{{"proposals", props}}
	if c.Path != nil {
		o.add("path", jsUpdatePath(c.Path))
	} else {
		o.add("path", nil)
	}
	return o
}

// jsExtensions renders an extension list; known extension types are also
// decoded, under their RFC name, or get a decode_error.
func jsExtensions(l Extensions) []jobj {
	out := make([]jobj, len(l))
	for i := range l {
		e := &l[i]
		o := jobj{{"extension_type", e.ExtensionType.String()}, {"extension_data", hx(e.ExtensionData)}}
		if v, err := jsExtensionBody(e); err != nil {
			o.add("decode_error", err.Error())
		} else if v != nil {
			o.add(e.ExtensionType.String(), v)
		}
		out[i] = o
	}
	return out
}

func jsExtensionBody(e *Extension) (any, error) {
	l := Extensions{*e}
	switch e.ExtensionType {
	case ExtensionTypeApplicationID:
		a, err := l.ApplicationID()
		return hx(a), err
	case ExtensionTypeRatchetTree:
		t, err := l.RatchetTree()
		if err != nil {
			return nil, err
		}
		return jsRatchetTree(t), nil
	case ExtensionTypeRequiredCapabilities:
		rc, err := l.RequiredCapabilities()
		if err != nil {
			return nil, err
		}
		return jobj{
			{"extension_types", enumList(rc.ExtensionTypes)},
			{"proposal_types", enumList(rc.ProposalTypes)},
			{"credential_types", enumList(rc.CredentialTypes)},
		}, nil
	case ExtensionTypeExternalPub:
		ep, err := l.ExternalPub()
		if err != nil {
			return nil, err
		}
		return jobj{{"external_pub", hx(ep.ExternalPub)}}, nil
	case ExtensionTypeExternalSenders:
		es, err := l.ExternalSenders()
		if err != nil {
			return nil, err
		}
		out := make([]jobj, len(es))
		for i := range es {
			out[i] = jobj{{"signature_key", hx(es[i].SignatureKey)}, {"credential", jsCredential(&es[i].Credential)}}
		}
		return out, nil
	}
	return nil, nil
}

// jsKeyPackageInfo renders the summary of a validated KeyPackage.
func jsKeyPackageInfo(i *KeyPackageInfo) jobj {
	o := jobj{
		{"ref", hx(i.Ref)},
		{"version", i.Version.String()},
		{"cipher_suite", i.CipherSuite.String()},
		{"credential", jsCredential(&i.Credential)},
	}
	if i.Identity != nil {
		o.add("identity", hx(i.Identity))
	}
	o.add("signature_key", hx(i.SignatureKey))
	o.add("lifetime", jobj{
		{"not_before", i.Lifetime.NotBefore},
		{"not_after", i.Lifetime.NotAfter},
		{"not_before_time", i.NotBefore().Format("2006-01-02T15:04:05Z07:00")},
		{"not_after_time", i.NotAfter().Format("2006-01-02T15:04:05Z07:00")},
	})
	return o
}
