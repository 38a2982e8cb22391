package ohttp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hpke"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
)

// KEMID is an HPKE KEM identifier (RFC 9180 Section 7.1).
type KEMID uint16

// KEMs this package supports.
const (
	KEMP256HKDFSHA256   KEMID = 0x0010 // DHKEM(P-256, HKDF-SHA256)
	KEMX25519HKDFSHA256 KEMID = 0x0020 // DHKEM(X25519, HKDF-SHA256)
)

// KDFID is an HPKE KDF identifier (RFC 9180 Section 7.2).
type KDFID uint16

// KDFs this package supports.
const (
	KDFHKDFSHA256 KDFID = 0x0001
	KDFHKDFSHA384 KDFID = 0x0002
	KDFHKDFSHA512 KDFID = 0x0003
)

// AEADID is an HPKE AEAD identifier (RFC 9180 Section 7.3).
type AEADID uint16

// AEADs this package supports.
const (
	AEADAES128GCM        AEADID = 0x0001
	AEADAES256GCM        AEADID = 0x0002
	AEADChaCha20Poly1305 AEADID = 0x0003
)

// SymmetricAlgorithm is one (KDF, AEAD) pair of a key configuration.
type SymmetricAlgorithm struct {
	KDF  KDFID
	AEAD AEADID
}

func (a SymmetricAlgorithm) String() string { return a.KDF.String() + "/" + a.AEAD.String() }

func (id KEMID) String() string {
	switch id {
	case KEMP256HKDFSHA256:
		return "DHKEM(P-256,HKDF-SHA256)"
	case KEMX25519HKDFSHA256:
		return "DHKEM(X25519,HKDF-SHA256)"
	}
	return fmt.Sprintf("KEM(0x%04x)", uint16(id))
}

func (id KDFID) String() string {
	switch id {
	case KDFHKDFSHA256:
		return "HKDF-SHA256"
	case KDFHKDFSHA384:
		return "HKDF-SHA384"
	case KDFHKDFSHA512:
		return "HKDF-SHA512"
	}
	return fmt.Sprintf("KDF(0x%04x)", uint16(id))
}

func (id AEADID) String() string {
	switch id {
	case AEADAES128GCM:
		return "AES-128-GCM"
	case AEADAES256GCM:
		return "AES-256-GCM"
	case AEADChaCha20Poly1305:
		return "ChaCha20-Poly1305"
	}
	return fmt.Sprintf("AEAD(0x%04x)", uint16(id))
}

// Supported reports whether the package implements the KEM.
func (id KEMID) Supported() bool { _, ok := id.params(); return ok }

// Supported reports whether the package implements both algorithms.
func (a SymmetricAlgorithm) Supported() bool {
	_, okk := a.KDF.params()
	_, oka := a.AEAD.params()
	return okk && oka
}

// AllAlgorithms returns every supported (KDF, AEAD) pair, HKDF-SHA256 with
// AES-128-GCM first: the list a gateway key offers by default.
func AllAlgorithms() []SymmetricAlgorithm {
	var out []SymmetricAlgorithm
	for _, k := range []KDFID{KDFHKDFSHA256, KDFHKDFSHA384, KDFHKDFSHA512} {
		for _, a := range []AEADID{AEADAES128GCM, AEADAES256GCM, AEADChaCha20Poly1305} {
			out = append(out, SymmetricAlgorithm{KDF: k, AEAD: a})
		}
	}
	return out
}

type kemParams struct {
	kem  hpke.KEM
	npk  int // public key length
	nenc int // encapsulated key length
}

func (id KEMID) params() (kemParams, bool) {
	switch id {
	case KEMP256HKDFSHA256:
		return kemParams{kem: hpke.DHKEM(ecdh.P256()), npk: 65, nenc: 65}, true
	case KEMX25519HKDFSHA256:
		return kemParams{kem: hpke.DHKEM(ecdh.X25519()), npk: 32, nenc: 32}, true
	}
	return kemParams{}, false
}

type kdfParams struct {
	kdf  hpke.KDF
	hash func() hash.Hash
}

func (id KDFID) params() (kdfParams, bool) {
	switch id {
	case KDFHKDFSHA256:
		return kdfParams{kdf: hpke.HKDFSHA256(), hash: sha256.New}, true
	case KDFHKDFSHA384:
		return kdfParams{kdf: hpke.HKDFSHA384(), hash: sha512.New384}, true
	case KDFHKDFSHA512:
		return kdfParams{kdf: hpke.HKDFSHA512(), hash: sha512.New}, true
	}
	return kdfParams{}, false
}

type aeadParams struct {
	aead hpke.AEAD
	nk   int // key length
	nn   int // nonce length
	new  func(key []byte) (cipher.AEAD, error)
}

// nonceLen is max(Nn, Nk): the length of the exported response secret and
// of the response nonce (RFC 9458 Section 4.4).
func (p aeadParams) nonceLen() int { return max(p.nk, p.nn) }

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func (id AEADID) params() (aeadParams, bool) {
	switch id {
	case AEADAES128GCM:
		return aeadParams{aead: hpke.AES128GCM(), nk: 16, nn: 12, new: newGCM}, true
	case AEADAES256GCM:
		return aeadParams{aead: hpke.AES256GCM(), nk: 32, nn: 12, new: newGCM}, true
	case AEADChaCha20Poly1305:
		return aeadParams{aead: hpke.ChaCha20Poly1305(), nk: 32, nn: 12, new: chacha20poly1305.New}, true
	}
	return aeadParams{}, false
}

// suite is a resolved (KEM, KDF, AEAD) triple.
type suite struct {
	kem  kemParams
	kdf  kdfParams
	aead aeadParams
}

// resolveSuite resolves the three identifiers, failing with
// ErrUnsupportedSuite when one is not implemented.
func resolveSuite(kem KEMID, kdf KDFID, aead AEADID) (suite, error) {
	var s suite
	var ok bool
	if s.kem, ok = kem.params(); !ok {
		return s, fmt.Errorf("%w: %v", ErrUnsupportedSuite, kem)
	}
	if s.kdf, ok = kdf.params(); !ok {
		return s, fmt.Errorf("%w: %v", ErrUnsupportedSuite, kdf)
	}
	if s.aead, ok = aead.params(); !ok {
		return s, fmt.Errorf("%w: %v", ErrUnsupportedSuite, aead)
	}
	return s, nil
}
