package mls

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors of the codec. Decoders return them wrapped in a
// *DecodeError that says which field failed and where; encoders wrap them in
// an *EncodeError. Test with errors.Is.
var (
	// ErrTruncated means the input ended (or a vector ended) inside a value.
	ErrTruncated = errors.New("mls: truncated")
	// ErrTrailingData means bytes remain after a complete top-level value.
	ErrTrailingData = errors.New("mls: trailing data")
	// ErrVarintNotMinimal means a variable-length integer did not use the
	// shortest encoding (RFC 9420 §2.1.2).
	ErrVarintNotMinimal = errors.New("mls: variable-length integer not minimally encoded")
	// ErrVarintPrefix means a variable-length integer used the invalid prefix
	// 0b11, i.e. a length beyond the 30-bit limit.
	ErrVarintPrefix = errors.New("mls: variable-length integer over the 30-bit limit (prefix 11)")
	// ErrVectorTooLong means a vector is longer than 2^30-1 bytes (encoding).
	ErrVectorTooLong = errors.New("mls: vector longer than 2^30-1 bytes")
	// ErrVectorElement means a vector's byte length is not a whole number of
	// its fixed-size elements.
	ErrVectorElement = errors.New("mls: vector length not a multiple of the element size")
	// ErrInvalidOptional means an optional<T> presence octet was not 0 or 1.
	ErrInvalidOptional = errors.New("mls: optional presence octet not 0 or 1")
	// ErrUnsupportedVersion means a protocol version other than mls10.
	ErrUnsupportedVersion = errors.New("mls: unsupported protocol version")
	// ErrUnknownWireFormat means a wire format outside RFC 9420's five.
	ErrUnknownWireFormat = errors.New("mls: unknown wire format")
	// ErrUnknownContentType means a content type other than application,
	// proposal or commit.
	ErrUnknownContentType = errors.New("mls: unknown content type")
	// ErrUnknownSenderType means a sender type outside RFC 9420's four.
	ErrUnknownSenderType = errors.New("mls: unknown sender type")
	// ErrUnknownLeafNodeSource means a leaf_node_source outside key_package,
	// update and commit.
	ErrUnknownLeafNodeSource = errors.New("mls: unknown leaf node source")
	// ErrUnknownNodeType means a node type other than leaf or parent.
	ErrUnknownNodeType = errors.New("mls: unknown node type")
	// ErrUnknownPSKType means a PSK type other than external or resumption.
	ErrUnknownPSKType = errors.New("mls: unknown PSK type")
	// ErrUnknownProposalOrRefType means a ProposalOrRef type other than
	// proposal or reference.
	ErrUnknownProposalOrRefType = errors.New("mls: unknown ProposalOrRef type")
	// ErrMalformedTree means a ratchet_tree that is empty, ends in a blank
	// node, or has a leaf at a parent position or vice versa.
	ErrMalformedTree = errors.New("mls: malformed ratchet tree")
	// ErrInconsistent means a Go value that cannot be encoded because its
	// selector and its contents disagree (e.g. Proposal.Type add with no Add).
	ErrInconsistent = errors.New("mls: selector and contents disagree")
)

// DecodeError reports where and why decoding failed.
type DecodeError struct {
	// Field is the RFC 9420 struct and field being decoded, e.g.
	// "LeafNode.signature_key".
	Field string
	// Offset is the byte offset in the input where the failing value starts.
	Offset int
	// Detail adds the offending value when there is one, e.g. "0x0009".
	Detail string
	// Err is one of the package's sentinel errors.
	Err error
}

func (e *DecodeError) Error() string {
	var b strings.Builder
	b.WriteString("mls: decode ")
	b.WriteString(e.Field)
	b.WriteString(": ")
	b.WriteString(strings.TrimPrefix(e.Err.Error(), "mls: "))
	if e.Detail != "" {
		b.WriteString(" (")
		b.WriteString(e.Detail)
		b.WriteString(")")
	}
	fmt.Fprintf(&b, " at offset %d", e.Offset)
	return b.String()
}

// Unwrap returns the sentinel.
func (e *DecodeError) Unwrap() error { return e.Err }

// EncodeError reports a value that cannot be encoded.
type EncodeError struct {
	// Field is the RFC 9420 struct and field being encoded.
	Field string
	// Err is one of the package's sentinel errors.
	Err error
}

func (e *EncodeError) Error() string {
	return "mls: encode " + e.Field + ": " + strings.TrimPrefix(e.Err.Error(), "mls: ")
}

// Unwrap returns the sentinel.
func (e *EncodeError) Unwrap() error { return e.Err }
