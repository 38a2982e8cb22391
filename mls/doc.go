// Package mls implements the RFC 9420 codec and the public, non-member side of
// MLS that a Delivery Service needs. Pure library: no I/O, no logging.
//
// # Codec
//
// Every RFC 9420 structure a Delivery Service sees has a Go type with the
// RFC's field names in Go form (MLSMessage, PublicMessage, KeyPackage,
// LeafNode, Commit, Welcome, GroupInfo, ...). Each type has
//
//	func (x *T) Unmarshal(data []byte) error // data must be exactly one T
//	func (x *T) Marshal() ([]byte, error)
//
// and the most used ones also have a DecodeT function. Decoding then encoding
// gives back the input byte for byte: variable-length integers must be
// minimal (RFC 9420 §2.1.2), optional presence octets must be 0 or 1, and
// values the codec does not interpret are kept as they are (unknown extension
// types, unknown credential types, unknown proposal types).
//
// Unknown proposal and credential types have no length prefix of their own in
// RFC 9420, so their end cannot be found without knowing them. Like OpenMLS
// and mls-rs for custom proposals and credentials, this package reads their
// body as a single opaque<V>; a type whose body has another shape fails to
// decode (with a *DecodeError), never silently.
//
// Decoded byte slices ALIAS the input buffer: decoding allocates only the Go
// structs and slices of structs, never copies of keys, signatures or
// payloads. Callers must not modify the input while a decoded value is in
// use, and must copy what they keep beyond the input's lifetime (values that
// are meant to be kept, such as WelcomeInfo.KeyPackageRefs and
// KeyPackageInfo.Ref, are already copies).
//
// Lengths are checked against the remaining input before anything is
// allocated, and every vector element consumes input, so the memory a
// decoder allocates is bounded by the input size: about one byte per input
// byte for real messages, and at most 200 in the worst case (vectors of
// empty elements, such as 100,000 empty PSK ids). Callers bound message
// sizes; a decoder never trusts a length prefix.
//
// Errors are *DecodeError values naming the struct field and offset,
// wrapping a sentinel such as ErrTruncated or ErrUnknownWireFormat:
//
//	mls: decode LeafNode.signature_key: truncated at offset 74
//
// # Delivery Service helpers
//
// ValidateKeyPackage checks a KeyPackage as RFC 9420 §10.1 asks;
// VerifyPublicMessage checks a PublicMessage's FramedContentTBS signature;
// the transcript hash functions follow §8.2; InspectWelcome returns the
// cipher suite and the KeyPackageRefs a Welcome is for. RenderJSON turns
// decoded values into the operator-facing JSON of `mimids mls`.
package mls
