package mls

import "fmt"

// Capabilities is RFC 9420's Capabilities (§7.2). Values are kept as
// received, GREASE and unknown values included.
type Capabilities struct {
	Versions     []ProtocolVersion
	CipherSuites []CipherSuite
	Extensions   []ExtensionType
	Proposals    []ProposalType
	Credentials  []CredentialType
}

func (c *Capabilities) encode(w *writer) {
	putU16Vec(w, "Capabilities.versions", c.Versions)
	putU16Vec(w, "Capabilities.cipher_suites", c.CipherSuites)
	putU16Vec(w, "Capabilities.extensions", c.Extensions)
	putU16Vec(w, "Capabilities.proposals", c.Proposals)
	putU16Vec(w, "Capabilities.credentials", c.Credentials)
}

func (c *Capabilities) decode(r *reader) {
	c.Versions = u16Vec[ProtocolVersion](r, "Capabilities.versions")
	c.CipherSuites = u16Vec[CipherSuite](r, "Capabilities.cipher_suites")
	c.Extensions = u16Vec[ExtensionType](r, "Capabilities.extensions")
	c.Proposals = u16Vec[ProposalType](r, "Capabilities.proposals")
	c.Credentials = u16Vec[CredentialType](r, "Capabilities.credentials")
}

// SupportsExtension reports whether t is a default extension type or listed.
func (c *Capabilities) SupportsExtension(t ExtensionType) bool {
	return t.Default() || contains(c.Extensions, t)
}

// SupportsProposal reports whether t is a default proposal type or listed.
func (c *Capabilities) SupportsProposal(t ProposalType) bool {
	return t.Default() || contains(c.Proposals, t)
}

// SupportsCredential reports whether t is listed (credential types have no
// defaults).
func (c *Capabilities) SupportsCredential(t CredentialType) bool {
	return contains(c.Credentials, t)
}

func contains[T comparable](l []T, v T) bool {
	for _, x := range l {
		if x == v {
			return true
		}
	}
	return false
}

// Lifetime is RFC 9420's Lifetime (§7.2): seconds since the Unix epoch.
type Lifetime struct {
	NotBefore uint64
	NotAfter  uint64
}

// LeafNode is RFC 9420's LeafNode (§7.2). Lifetime is meaningful only for
// leaf_node_source key_package, ParentHash only for commit.
type LeafNode struct {
	EncryptionKey  []byte // HPKEPublicKey
	SignatureKey   []byte // SignaturePublicKey
	Credential     Credential
	Capabilities   Capabilities
	LeafNodeSource LeafNodeSource
	Lifetime       Lifetime // key_package
	ParentHash     []byte   // commit
	Extensions     Extensions
	Signature      []byte
}

// encodeTBSFields writes the fields shared by LeafNode and LeafNodeTBS.
func (ln *LeafNode) encodeTBSFields(w *writer) {
	w.opaque("LeafNode.encryption_key", ln.EncryptionKey)
	w.opaque("LeafNode.signature_key", ln.SignatureKey)
	ln.Credential.encode(w)
	ln.Capabilities.encode(w)
	w.u8(uint8(ln.LeafNodeSource))
	switch ln.LeafNodeSource {
	case LeafNodeSourceKeyPackage:
		w.u64(ln.Lifetime.NotBefore)
		w.u64(ln.Lifetime.NotAfter)
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		w.opaque("LeafNode.parent_hash", ln.ParentHash)
	default:
		w.fail("LeafNode.leaf_node_source", ErrUnknownLeafNodeSource)
	}
	ln.Extensions.encode(w, "LeafNode.extensions")
}

func (ln *LeafNode) encode(w *writer) {
	ln.encodeTBSFields(w)
	w.opaque("LeafNode.signature", ln.Signature)
}

func (ln *LeafNode) decode(r *reader) {
	ln.EncryptionKey = r.opaque("LeafNode.encryption_key")
	ln.SignatureKey = r.opaque("LeafNode.signature_key")
	ln.Credential.decode(r)
	ln.Capabilities.decode(r)
	off := r.off
	ln.LeafNodeSource = LeafNodeSource(r.u8("LeafNode.leaf_node_source"))
	switch ln.LeafNodeSource {
	case LeafNodeSourceKeyPackage:
		ln.Lifetime.NotBefore = r.u64("Lifetime.not_before")
		ln.Lifetime.NotAfter = r.u64("Lifetime.not_after")
	case LeafNodeSourceUpdate:
	case LeafNodeSourceCommit:
		ln.ParentHash = r.opaque("LeafNode.parent_hash")
	default:
		r.failValue("LeafNode.leaf_node_source", off, ErrUnknownLeafNodeSource, uint64(ln.LeafNodeSource), 2)
		return
	}
	ln.Extensions = decodeExtensions(r, "LeafNode.extensions")
	ln.Signature = r.opaque("LeafNode.signature")
}

// Marshal encodes ln.
func (ln *LeafNode) Marshal() ([]byte, error) { return marshal(ln) }

// Unmarshal decodes ln from exactly b.
func (ln *LeafNode) Unmarshal(b []byte) error { return unmarshal(ln, b, "LeafNode") }

// DecodeLeafNode decodes a LeafNode that is the whole of b.
func DecodeLeafNode(b []byte) (*LeafNode, error) {
	ln := new(LeafNode)
	if err := ln.Unmarshal(b); err != nil {
		return nil, err
	}
	return ln, nil
}

// TBS returns the encoded LeafNodeTBS (§7.2). groupID and leafIndex are
// used only for the update and commit sources, as the RFC specifies.
func (ln *LeafNode) TBS(groupID []byte, leafIndex uint32) ([]byte, error) {
	w := writer{buf: make([]byte, 0, 256)}
	ln.encodeTBSFields(&w)
	switch ln.LeafNodeSource {
	case LeafNodeSourceUpdate, LeafNodeSourceCommit:
		w.opaque("LeafNodeTBS.group_id", groupID)
		w.u32(leafIndex)
	}
	if w.err != nil {
		return nil, w.err
	}
	return w.buf, nil
}

// ParentNode is RFC 9420's ParentNode (§7.1).
type ParentNode struct {
	EncryptionKey  []byte // HPKEPublicKey
	ParentHash     []byte
	UnmergedLeaves []uint32
}

func (p *ParentNode) encode(w *writer) {
	w.opaque("ParentNode.encryption_key", p.EncryptionKey)
	w.opaque("ParentNode.parent_hash", p.ParentHash)
	putU32Vec(w, "ParentNode.unmerged_leaves", p.UnmergedLeaves)
}

func (p *ParentNode) decode(r *reader) {
	p.EncryptionKey = r.opaque("ParentNode.encryption_key")
	p.ParentHash = r.opaque("ParentNode.parent_hash")
	p.UnmergedLeaves = u32Vec(r, "ParentNode.unmerged_leaves")
}

// Marshal encodes p.
func (p *ParentNode) Marshal() ([]byte, error) { return marshal(p) }

// Unmarshal decodes p from exactly b.
func (p *ParentNode) Unmarshal(b []byte) error { return unmarshal(p, b, "ParentNode") }

// Node is RFC 9420's Node (§12.4.3.3): a leaf or a parent. Exactly one of
// Leaf and Parent is set, matching NodeType.
type Node struct {
	NodeType NodeType
	Leaf     *LeafNode
	Parent   *ParentNode
}

func (n *Node) encode(w *writer) {
	w.u8(uint8(n.NodeType))
	switch {
	case n.NodeType == NodeTypeLeaf && n.Leaf != nil:
		n.Leaf.encode(w)
	case n.NodeType == NodeTypeParent && n.Parent != nil:
		n.Parent.encode(w)
	default:
		w.fail("Node", ErrInconsistent)
	}
}

func (n *Node) decode(r *reader) {
	off := r.off
	n.NodeType = NodeType(r.u8("Node.node_type"))
	switch n.NodeType {
	case NodeTypeLeaf:
		n.Leaf = new(LeafNode)
		n.Leaf.decode(r)
	case NodeTypeParent:
		n.Parent = new(ParentNode)
		n.Parent.decode(r)
	default:
		r.failValue("Node.node_type", off, ErrUnknownNodeType, uint64(n.NodeType), 2)
	}
}

// RatchetTree is RFC 9420's optional<Node> ratchet_tree<V> (§12.4.3.3), in
// array order: a nil entry is a blank node. Leaves sit at even indices,
// parents at odd ones.
//
// Decoding checks the syntax the RFC asks every receiver to check: the tree
// is not empty, its last node is not blank, and every node has the type of
// its position. It does not pad the tree to 2^(d+1)-1 nodes.
type RatchetTree []*Node

func (t *RatchetTree) encode(w *writer) {
	start := w.beginVec()
	for _, n := range *t {
		w.optional(n != nil)
		if n != nil {
			n.encode(w)
		}
	}
	w.endVec("ratchet_tree", start)
}

func (t *RatchetTree) decode(r *reader) {
	saved := r.enterVec("ratchet_tree")
	start := r.off
	var out RatchetTree
	for r.more() {
		off := r.off
		if !r.optional("ratchet_tree.present") {
			out = append(out, nil)
			continue
		}
		n := new(Node)
		n.decode(r)
		if r.err == nil && int(n.NodeType)-1 != len(out)%2 {
			r.fail("ratchet_tree", off, ErrMalformedTree,
				fmt.Sprintf("%s node at index %d", n.NodeType, len(out)))
		}
		out = append(out, n)
	}
	r.leaveVec(saved)
	if r.err == nil && (len(out) == 0 || out[len(out)-1] == nil) {
		r.fail("ratchet_tree", start, ErrMalformedTree, "empty or ends in a blank node")
	}
	*t = out
}

// Marshal encodes t.
func (t *RatchetTree) Marshal() ([]byte, error) { return marshal(t) }

// Unmarshal decodes t from exactly b.
func (t *RatchetTree) Unmarshal(b []byte) error { return unmarshal(t, b, "ratchet_tree") }

// DecodeRatchetTree decodes a ratchet_tree that is the whole of b.
func DecodeRatchetTree(b []byte) (RatchetTree, error) {
	var t RatchetTree
	if err := t.Unmarshal(b); err != nil {
		return nil, err
	}
	return t, nil
}
