package mls

import (
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"sync"
)

// CipherSuite identifies an MLS cipher suite (RFC 9420 §17.1).
type CipherSuite uint16

// The cipher suites of RFC 9420 §17.1.
const (
	MLS128DHKEMX25519AES128GCMSHA256Ed25519        CipherSuite = 0x0001
	MLS128DHKEMP256AES128GCMSHA256P256             CipherSuite = 0x0002
	MLS128DHKEMX25519ChaCha20Poly1305SHA256Ed25519 CipherSuite = 0x0003
	MLS256DHKEMX448AES256GCMSHA512Ed448            CipherSuite = 0x0004
	MLS256DHKEMP521AES256GCMSHA512P521             CipherSuite = 0x0005
	MLS256DHKEMX448ChaCha20Poly1305SHA512Ed448     CipherSuite = 0x0006
	MLS256DHKEMP384AES256GCMSHA384P384             CipherSuite = 0x0007
)

// Sentinel errors of the cipher suite layer.
var (
	// ErrUnsupportedCipherSuite is returned for a cipher suite outside 1–7.
	ErrUnsupportedCipherSuite = errors.New("mls: unsupported cipher suite")
	// ErrBadSignature is returned when a signature does not verify.
	ErrBadSignature = errors.New("mls: bad signature")
	// ErrBadSignatureKey is returned for a malformed signature public or private key.
	ErrBadSignatureKey = errors.New("mls: malformed signature key")
	// ErrLabelTooLong is returned when an ExpandWithLabel output length
	// does not fit the KDFLabel's uint16 or the KDF's limit.
	ErrLabelTooLong = errors.New("mls: invalid ExpandWithLabel length")
)

// UnsupportedCipherSuiteError reports the cipher suite that is not supported.
// It matches ErrUnsupportedCipherSuite with errors.Is.
type UnsupportedCipherSuiteError struct {
	Suite CipherSuite
}

func (e *UnsupportedCipherSuiteError) Error() string {
	return fmt.Sprintf("mls: unsupported cipher suite 0x%04x", uint16(e.Suite))
}

// Is makes errors.Is(err, ErrUnsupportedCipherSuite) true.
func (e *UnsupportedCipherSuiteError) Is(target error) bool {
	return target == ErrUnsupportedCipherSuite
}

// signatureScheme names the signature algorithm of a suite.
type signatureScheme uint8

const (
	sigEd25519 signatureScheme = iota + 1
	sigECDSAP256
	sigECDSAP384
	sigECDSAP521
	sigEd448
)

// String returns the TLS SignatureScheme name of the scheme.
func (s signatureScheme) String() string {
	switch s {
	case sigEd25519:
		return "ed25519"
	case sigECDSAP256:
		return "ecdsa_secp256r1_sha256"
	case sigECDSAP384:
		return "ecdsa_secp384r1_sha384"
	case sigECDSAP521:
		return "ecdsa_secp521r1_sha512"
	case sigEd448:
		return "ed448"
	}
	return "unknown"
}

// Suite holds the primitives of one cipher suite. Suite values are static,
// immutable and safe for concurrent use; get one with CipherSuite.Suite.
type Suite struct {
	id       CipherSuite
	newHash  func() hash.Hash
	nh       int // hash and KDF output size in bytes
	sig      signatureScheme
	kemID    uint16
	kdfID    uint16
	aeadID   uint16
	curve    elliptic.Curve // ECDSA suites only
	bufPool  sync.Pool      // *[]byte scratch for signed content
	hashPool sync.Pool      // hash.Hash scratch for ECDSA digests
}

var suites = [...]*Suite{
	1: newSuite(1, sha256.New, 32, sigEd25519, 0x0020, 0x0001, 0x0001, nil),
	2: newSuite(2, sha256.New, 32, sigECDSAP256, 0x0010, 0x0001, 0x0001, elliptic.P256()),
	3: newSuite(3, sha256.New, 32, sigEd25519, 0x0020, 0x0001, 0x0003, nil),
	4: newSuite(4, sha512.New, 64, sigEd448, 0x0021, 0x0003, 0x0002, nil),
	5: newSuite(5, sha512.New, 64, sigECDSAP521, 0x0012, 0x0003, 0x0002, elliptic.P521()),
	6: newSuite(6, sha512.New, 64, sigEd448, 0x0021, 0x0003, 0x0003, nil),
	7: newSuite(7, sha512.New384, 48, sigECDSAP384, 0x0011, 0x0002, 0x0002, elliptic.P384()),
}

func newSuite(id CipherSuite, h func() hash.Hash, nh int, sig signatureScheme,
	kem, kdf, aead uint16, curve elliptic.Curve) *Suite {
	return &Suite{id: id, newHash: h, nh: nh, sig: sig, kemID: kem, kdfID: kdf,
		aeadID: aead, curve: curve}
}

// Suite returns the primitives of cs, or an *UnsupportedCipherSuiteError.
func (cs CipherSuite) Suite() (*Suite, error) {
	if int(cs) < len(suites) && suites[cs] != nil {
		return suites[cs], nil
	}
	return nil, &UnsupportedCipherSuiteError{Suite: cs}
}

// Supported reports whether cs is one of the suites of RFC 9420 §17.1.
func (cs CipherSuite) Supported() bool {
	return int(cs) < len(suites) && suites[cs] != nil
}

// String returns the RFC 9420 name of the suite.
func (cs CipherSuite) String() string {
	switch cs {
	case MLS128DHKEMX25519AES128GCMSHA256Ed25519:
		return "MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519"
	case MLS128DHKEMP256AES128GCMSHA256P256:
		return "MLS_128_DHKEMP256_AES128GCM_SHA256_P256"
	case MLS128DHKEMX25519ChaCha20Poly1305SHA256Ed25519:
		return "MLS_128_DHKEMX25519_CHACHA20POLY1305_SHA256_Ed25519"
	case MLS256DHKEMX448AES256GCMSHA512Ed448:
		return "MLS_256_DHKEMX448_AES256GCM_SHA512_Ed448"
	case MLS256DHKEMP521AES256GCMSHA512P521:
		return "MLS_256_DHKEMP521_AES256GCM_SHA512_P521"
	case MLS256DHKEMX448ChaCha20Poly1305SHA512Ed448:
		return "MLS_256_DHKEMX448_CHACHA20POLY1305_SHA512_Ed448"
	case MLS256DHKEMP384AES256GCMSHA384P384:
		return "MLS_256_DHKEMP384_AES256GCM_SHA384_P384"
	}
	return fmt.Sprintf("unknown(0x%04x)", uint16(cs))
}

// ID returns the suite's identifier.
func (s *Suite) ID() CipherSuite { return s.id }

// HashSize returns the output size of the suite's hash, which is also KDF.Nh.
func (s *Suite) HashSize() int { return s.nh }

// NewHash returns a fresh hash.Hash of the suite's hash function.
func (s *Suite) NewHash() hash.Hash { return s.newHash() }

// Hash returns the suite's hash of data.
func (s *Suite) Hash(data []byte) []byte {
	h := s.newHash()
	h.Write(data)
	return h.Sum(make([]byte, 0, s.nh))
}

// MAC returns HMAC(key, data) with the suite's hash (RFC 9420 §5.1).
func (s *Suite) MAC(key, data []byte) []byte {
	m := hmac.New(s.newHash, key)
	m.Write(data)
	return m.Sum(nil)
}

// VerifyMAC reports whether tag is HMAC(key, data), in constant time.
func (s *Suite) VerifyMAC(key, data, tag []byte) bool {
	return subtle.ConstantTimeCompare(s.MAC(key, data), tag) == 1
}

// Extract is KDF.Extract (HKDF-Extract) with the suite's hash.
func (s *Suite) Extract(salt, ikm []byte) []byte {
	out, err := hkdf.Extract(s.newHash, ikm, salt)
	if err != nil { // only in FIPS-140 only mode for short keys
		return nil
	}
	return out
}

// Expand is KDF.Expand (HKDF-Expand) with the suite's hash. info is taken as
// bytes; length must not exceed 255*Nh.
func (s *Suite) Expand(prk, info []byte, length int) ([]byte, error) {
	if length < 0 || length > 255*s.nh {
		return nil, fmt.Errorf("%w: %d", ErrLabelTooLong, length)
	}
	out, err := hkdf.Expand(s.newHash, prk, string(info), length)
	if err != nil {
		return nil, fmt.Errorf("mls: expand: %w", err)
	}
	return out, nil
}

// labelPrefix is prepended to every label (RFC 9420 §5.1.2, §8).
const labelPrefix = "MLS 1.0 "

// ExpandWithLabel is RFC 9420 §8's ExpandWithLabel(Secret, Label, Context, Length).
func (s *Suite) ExpandWithLabel(secret []byte, label string, context []byte, length int) ([]byte, error) {
	if length < 0 || length > 0xffff {
		return nil, fmt.Errorf("%w: %d", ErrLabelTooLong, length)
	}
	n := len(labelPrefix) + len(label)
	info := make([]byte, 0, 2+4+n+4+len(context))
	info = append(info, byte(length>>8), byte(length))
	info = suiteAppendLen(info, n)
	info = append(info, labelPrefix...)
	info = append(info, label...)
	info = suiteAppendLen(info, len(context))
	info = append(info, context...)
	return s.Expand(secret, info, length)
}

// DeriveSecret is ExpandWithLabel(Secret, Label, "", KDF.Nh) (RFC 9420 §8).
func (s *Suite) DeriveSecret(secret []byte, label string) ([]byte, error) {
	return s.ExpandWithLabel(secret, label, nil, s.nh)
}

// DeriveTreeSecret is ExpandWithLabel(Secret, Label, Generation, Length) with
// Generation encoded as a big-endian uint32 (RFC 9420 §9.1).
func (s *Suite) DeriveTreeSecret(secret []byte, label string, generation uint32, length int) ([]byte, error) {
	g := [4]byte{byte(generation >> 24), byte(generation >> 16), byte(generation >> 8), byte(generation)}
	return s.ExpandWithLabel(secret, label, g[:], length)
}

// RefHash is Hash(RefHashInput{label, value}) (RFC 9420 §5.2). Unlike the
// signature and KDF labels, label is used as given, without "MLS 1.0 ".
func (s *Suite) RefHash(label string, value []byte) []byte {
	h := s.newHash()
	var hdr [4]byte
	h.Write(suiteAppendLen(hdr[:0], len(label)))
	h.Write([]byte(label))
	h.Write(suiteAppendLen(hdr[:0], len(value)))
	h.Write(value)
	return h.Sum(make([]byte, 0, s.nh))
}

// suiteAppendLen appends the RFC 9420 §2.1.2 variable-length header for n.
// Callers never pass n ≥ 2^30: every input here is bounded by memory far below.
func suiteAppendLen(b []byte, n int) []byte {
	switch {
	case n < 1<<6:
		return append(b, byte(n))
	case n < 1<<14:
		return append(b, 0x40|byte(n>>8), byte(n))
	default:
		return append(b, 0x80|byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}
