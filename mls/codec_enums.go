package mls

import "fmt"

// ProtocolVersion is RFC 9420's ProtocolVersion.
type ProtocolVersion uint16

// ProtocolVersionMLS10 is mls10, the only version RFC 9420 defines.
const ProtocolVersionMLS10 ProtocolVersion = 1

// String returns the RFC 9420 name.
func (v ProtocolVersion) String() string {
	if v == ProtocolVersionMLS10 {
		return "mls10"
	}
	return unknownName(uint64(v), 4)
}

// WireFormat is RFC 9420's WireFormat (§6, §17.2).
type WireFormat uint16

// The wire formats of RFC 9420 §17.2.
const (
	WireFormatPublicMessage  WireFormat = 1
	WireFormatPrivateMessage WireFormat = 2
	WireFormatWelcome        WireFormat = 3
	WireFormatGroupInfo      WireFormat = 4
	WireFormatKeyPackage     WireFormat = 5
)

// String returns the RFC 9420 name (mls_public_message, ...).
func (f WireFormat) String() string {
	switch f {
	case WireFormatPublicMessage:
		return "mls_public_message"
	case WireFormatPrivateMessage:
		return "mls_private_message"
	case WireFormatWelcome:
		return "mls_welcome"
	case WireFormatGroupInfo:
		return "mls_group_info"
	case WireFormatKeyPackage:
		return "mls_key_package"
	}
	return unknownName(uint64(f), 4)
}

// ContentType is RFC 9420's ContentType (§6).
type ContentType uint8

// The content types of RFC 9420 §6.
const (
	ContentTypeApplication ContentType = 1
	ContentTypeProposal    ContentType = 2
	ContentTypeCommit      ContentType = 3
)

// String returns the RFC 9420 name.
func (c ContentType) String() string {
	switch c {
	case ContentTypeApplication:
		return "application"
	case ContentTypeProposal:
		return "proposal"
	case ContentTypeCommit:
		return "commit"
	}
	return unknownName(uint64(c), 2)
}

// SenderType is RFC 9420's SenderType (§6).
type SenderType uint8

// The sender types of RFC 9420 §6.
const (
	SenderTypeMember            SenderType = 1
	SenderTypeExternal          SenderType = 2
	SenderTypeNewMemberProposal SenderType = 3
	SenderTypeNewMemberCommit   SenderType = 4
)

// String returns the RFC 9420 name.
func (s SenderType) String() string {
	switch s {
	case SenderTypeMember:
		return "member"
	case SenderTypeExternal:
		return "external"
	case SenderTypeNewMemberProposal:
		return "new_member_proposal"
	case SenderTypeNewMemberCommit:
		return "new_member_commit"
	}
	return unknownName(uint64(s), 2)
}

// ProposalType is RFC 9420's ProposalType (§12.1, §17.4).
type ProposalType uint16

// The proposal types of RFC 9420 §17.4.
const (
	ProposalTypeAdd                    ProposalType = 1
	ProposalTypeUpdate                 ProposalType = 2
	ProposalTypeRemove                 ProposalType = 3
	ProposalTypePSK                    ProposalType = 4
	ProposalTypeReInit                 ProposalType = 5
	ProposalTypeExternalInit           ProposalType = 6
	ProposalTypeGroupContextExtensions ProposalType = 7
)

// Default reports whether t is one of RFC 9420's default proposal types,
// which capabilities do not list (§7.2).
func (t ProposalType) Default() bool { return t >= 1 && t <= 7 }

// String returns the RFC 9420 name.
func (t ProposalType) String() string {
	switch t {
	case ProposalTypeAdd:
		return "add"
	case ProposalTypeUpdate:
		return "update"
	case ProposalTypeRemove:
		return "remove"
	case ProposalTypePSK:
		return "psk"
	case ProposalTypeReInit:
		return "reinit"
	case ProposalTypeExternalInit:
		return "external_init"
	case ProposalTypeGroupContextExtensions:
		return "group_context_extensions"
	}
	return unknownName(uint64(t), 4)
}

// ExtensionType is RFC 9420's ExtensionType (§13, §17.3).
type ExtensionType uint16

// The extension types of RFC 9420 §17.3.
const (
	ExtensionTypeApplicationID        ExtensionType = 1
	ExtensionTypeRatchetTree          ExtensionType = 2
	ExtensionTypeRequiredCapabilities ExtensionType = 3
	ExtensionTypeExternalPub          ExtensionType = 4
	ExtensionTypeExternalSenders      ExtensionType = 5
)

// Default reports whether t is one of RFC 9420's default extension types,
// which capabilities do not list (§7.2).
func (t ExtensionType) Default() bool { return t >= 1 && t <= 5 }

// String returns the RFC 9420 name.
func (t ExtensionType) String() string {
	switch t {
	case ExtensionTypeApplicationID:
		return "application_id"
	case ExtensionTypeRatchetTree:
		return "ratchet_tree"
	case ExtensionTypeRequiredCapabilities:
		return "required_capabilities"
	case ExtensionTypeExternalPub:
		return "external_pub"
	case ExtensionTypeExternalSenders:
		return "external_senders"
	}
	return unknownName(uint64(t), 4)
}

// CredentialType is RFC 9420's CredentialType (§5.3, §17.5).
type CredentialType uint16

// The credential types of RFC 9420 §17.5.
const (
	CredentialTypeBasic CredentialType = 1
	CredentialTypeX509  CredentialType = 2
)

// String returns the RFC 9420 name.
func (t CredentialType) String() string {
	switch t {
	case CredentialTypeBasic:
		return "basic"
	case CredentialTypeX509:
		return "x509"
	}
	return unknownName(uint64(t), 4)
}

// LeafNodeSource is RFC 9420's LeafNodeSource (§7.2).
type LeafNodeSource uint8

// The leaf node sources of RFC 9420 §7.2.
const (
	LeafNodeSourceKeyPackage LeafNodeSource = 1
	LeafNodeSourceUpdate     LeafNodeSource = 2
	LeafNodeSourceCommit     LeafNodeSource = 3
)

// String returns the RFC 9420 name.
func (s LeafNodeSource) String() string {
	switch s {
	case LeafNodeSourceKeyPackage:
		return "key_package"
	case LeafNodeSourceUpdate:
		return "update"
	case LeafNodeSourceCommit:
		return "commit"
	}
	return unknownName(uint64(s), 2)
}

// NodeType is RFC 9420's NodeType (§7.8, §12.4.3.3).
type NodeType uint8

// The node types of RFC 9420.
const (
	NodeTypeLeaf   NodeType = 1
	NodeTypeParent NodeType = 2
)

// String returns the RFC 9420 name.
func (t NodeType) String() string {
	switch t {
	case NodeTypeLeaf:
		return "leaf"
	case NodeTypeParent:
		return "parent"
	}
	return unknownName(uint64(t), 2)
}

// PSKType is RFC 9420's PSKType (§8.4).
type PSKType uint8

// The PSK types of RFC 9420 §8.4.
const (
	PSKTypeExternal   PSKType = 1
	PSKTypeResumption PSKType = 2
)

// String returns the RFC 9420 name.
func (t PSKType) String() string {
	switch t {
	case PSKTypeExternal:
		return "external"
	case PSKTypeResumption:
		return "resumption"
	}
	return unknownName(uint64(t), 2)
}

// ResumptionPSKUsage is RFC 9420's ResumptionPSKUsage (§8.4). Values are
// kept as received: the codec does not interpret them.
type ResumptionPSKUsage uint8

// The resumption PSK usages of RFC 9420 §8.4.
const (
	ResumptionPSKUsageApplication ResumptionPSKUsage = 1
	ResumptionPSKUsageReInit      ResumptionPSKUsage = 2
	ResumptionPSKUsageBranch      ResumptionPSKUsage = 3
)

// String returns the RFC 9420 name.
func (u ResumptionPSKUsage) String() string {
	switch u {
	case ResumptionPSKUsageApplication:
		return "application"
	case ResumptionPSKUsageReInit:
		return "reinit"
	case ResumptionPSKUsageBranch:
		return "branch"
	}
	return unknownName(uint64(u), 2)
}

// ProposalOrRefType is RFC 9420's ProposalOrRefType (§12.4).
type ProposalOrRefType uint8

// The ProposalOrRef types of RFC 9420 §12.4.
const (
	ProposalOrRefTypeProposal  ProposalOrRefType = 1
	ProposalOrRefTypeReference ProposalOrRefType = 2
)

// String returns the RFC 9420 name.
func (t ProposalOrRefType) String() string {
	switch t {
	case ProposalOrRefTypeProposal:
		return "proposal"
	case ProposalOrRefTypeReference:
		return "reference"
	}
	return unknownName(uint64(t), 2)
}

// IsGREASE reports whether v is one of the GREASE values of RFC 9420 §13.5
// (0x0A0A, 0x1A1A, ..., 0xEAEA).
func IsGREASE(v uint16) bool {
	return v&0x0f0f == 0x0a0a && v>>12 == (v>>4)&0x0f && v>>12 <= 0xe
}

// unknownName renders a value without an RFC name: "grease(0x0a0a)" for
// GREASE values and "unknown(0x1234)" otherwise.
func unknownName(v uint64, width int) string {
	if width == 4 && IsGREASE(uint16(v)) {
		return fmt.Sprintf("grease(0x%04x)", v)
	}
	return fmt.Sprintf("unknown(0x%0*x)", width, v)
}
