package ohttp

import (
	"crypto/hpke"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
)

// Key is one gateway key: an HPKE private key with its key identifier, the
// (KDF, AEAD) pairs it accepts and its creation time. A Key is immutable
// and safe for concurrent use.
type Key struct {
	id      uint8
	kem     KEMID
	algs    []SymmetricAlgorithm
	created time.Time
	priv    hpke.PrivateKey
	config  KeyConfig
}

// GenerateKey creates a key with a fresh HPKE key pair. algs lists the
// accepted (KDF, AEAD) pairs in order of preference; nil means
// AllAlgorithms.
func GenerateKey(id uint8, kem KEMID, algs []SymmetricAlgorithm, created time.Time) (*Key, error) {
	p, ok := kem.params()
	if !ok {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedSuite, kem)
	}
	priv, err := p.kem.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("ohttp: generate key: %w", err)
	}
	return newKey(id, kem, algs, created, priv)
}

// NewKey builds a key from a serialized HPKE private key (RFC 9180
// SerializePrivateKey, as returned by hpke.PrivateKey.Bytes).
func NewKey(id uint8, kem KEMID, algs []SymmetricAlgorithm, created time.Time, privateKey []byte) (*Key, error) {
	p, ok := kem.params()
	if !ok {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedSuite, kem)
	}
	priv, err := p.kem.NewPrivateKey(privateKey)
	if err != nil {
		return nil, fmt.Errorf("%w: private key: %v", ErrInvalidKey, err)
	}
	return newKey(id, kem, algs, created, priv)
}

func newKey(id uint8, kem KEMID, algs []SymmetricAlgorithm, created time.Time, priv hpke.PrivateKey) (*Key, error) {
	if algs == nil {
		algs = AllAlgorithms()
	}
	if len(algs) == 0 || 4*len(algs) > maxAlgorithmsLen {
		return nil, fmt.Errorf("%w: %d symmetric algorithms", ErrUnsupportedSuite, len(algs))
	}
	for _, a := range algs {
		if !a.Supported() {
			return nil, fmt.Errorf("%w: %v", ErrUnsupportedSuite, a)
		}
	}
	algs = slices.Clone(algs)
	k := &Key{id: id, kem: kem, algs: algs, created: created, priv: priv}
	k.config = KeyConfig{KeyID: id, KEM: kem, PublicKey: priv.PublicKey().Bytes(), Algorithms: algs}
	return k, nil
}

// ID returns the key identifier.
func (k *Key) ID() uint8 { return k.id }

// KEM returns the key's KEM.
func (k *Key) KEM() KEMID { return k.kem }

// Created returns the creation time given when the key was made.
func (k *Key) Created() time.Time { return k.created }

// Algorithms returns the accepted (KDF, AEAD) pairs.
func (k *Key) Algorithms() []SymmetricAlgorithm { return slices.Clone(k.algs) }

// Config returns the public key configuration of k.
func (k *Key) Config() KeyConfig {
	c := k.config
	c.PublicKey = slices.Clone(c.PublicKey)
	c.Algorithms = slices.Clone(c.Algorithms)
	return c
}

// storedKeyVersion is the first byte of MarshalBinary's format.
const storedKeyVersion = 1

// MarshalBinary serializes k, private key included, for storage:
//
//	version(1) = 1, key_id(1), kem_id(2), created_unix_seconds(8),
//	created_nanoseconds(4), private_key<2>, algorithms<2> of (kdf_id(2), aead_id(2))
//
// where <2> is a 2-byte length prefix. The result is secret.
func (k *Key) MarshalBinary() ([]byte, error) {
	sk, err := k.priv.Bytes()
	if err != nil {
		return nil, fmt.Errorf("ohttp: serialize private key: %w", err)
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddUint8(storedKeyVersion)
	b.AddUint8(k.id)
	b.AddUint16(uint16(k.kem))
	b.AddUint64(uint64(k.created.Unix()))
	b.AddUint32(uint32(k.created.Nanosecond()))
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(sk) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, a := range k.algs {
			b.AddUint16(uint16(a.KDF))
			b.AddUint16(uint16(a.AEAD))
		}
	})
	return b.Bytes()
}

// UnmarshalKey parses the output of Key.MarshalBinary.
func UnmarshalKey(data []byte) (*Key, error) {
	s := cryptobyte.String(data)
	var version, id uint8
	var kem uint16
	var secs uint64
	var nanos uint32
	var sk, algs cryptobyte.String
	if !s.ReadUint8(&version) || !s.ReadUint8(&id) || !s.ReadUint16(&kem) ||
		!s.ReadUint64(&secs) || !s.ReadUint32(&nanos) ||
		!s.ReadUint16LengthPrefixed(&sk) || !s.ReadUint16LengthPrefixed(&algs) {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, ErrTruncated)
	}
	switch {
	case version != storedKeyVersion:
		return nil, fmt.Errorf("%w: version %d", ErrInvalidKey, version)
	case !s.Empty():
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrInvalidKey, len(s))
	case nanos >= 1e9:
		return nil, fmt.Errorf("%w: creation time", ErrInvalidKey)
	case len(algs)%4 != 0:
		return nil, fmt.Errorf("%w: algorithms length %d", ErrInvalidKey, len(algs))
	}
	list := make([]SymmetricAlgorithm, 0, len(algs)/4)
	for !algs.Empty() {
		var kdf, aead uint16
		algs.ReadUint16(&kdf)
		algs.ReadUint16(&aead)
		list = append(list, SymmetricAlgorithm{KDF: KDFID(kdf), AEAD: AEADID(aead)})
	}
	k, err := NewKey(id, KEMID(kem), list, time.Unix(int64(secs), int64(nanos)), sk)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return k, nil
}

// DecapsulateRequest opens an Encapsulated Request addressed to k and
// returns the Binary HTTP request with the context that encapsulates the
// response (RFC 9458 Section 4.3).
func (k *Key) DecapsulateRequest(encRequest []byte) ([]byte, *ResponseContext, error) {
	er, err := ParseEncapsulatedRequest(encRequest)
	if err != nil {
		return nil, nil, err
	}
	return k.open(er)
}

// open decrypts a parsed request; it checks that the header names k and
// one of its pairs.
func (k *Key) open(er *EncapsulatedRequest) ([]byte, *ResponseContext, error) {
	h := er.Header
	if h.KeyID != k.id || h.KEM != k.kem {
		return nil, nil, fmt.Errorf("%w: %d for %v", ErrUnknownKeyID, h.KeyID, h.KEM)
	}
	if !slices.Contains(k.algs, h.Algorithm()) {
		return nil, nil, fmt.Errorf("%w: key %d does not accept %v", ErrUnsupportedSuite, k.id, h.Algorithm())
	}
	s, err := resolveSuite(h.KEM, h.KDF, h.AEAD)
	if err != nil {
		return nil, nil, err
	}
	r, err := hpke.NewRecipient(er.Enc, k.priv, s.kdf.kdf, s.aead.aead, h.info())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: encapsulated key: %v", ErrDecrypt, err)
	}
	pt, err := r.Open(nil, er.Ciphertext)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: request", ErrDecrypt)
	}
	secret, err := r.Export(responseLabel, s.aead.nonceLen())
	if err != nil {
		return nil, nil, fmt.Errorf("ohttp: hpke export: %w", err)
	}
	enc := slices.Clone(er.Enc)
	return pt, &ResponseContext{x: exchange{hdr: h, enc: enc, secret: secret, kdf: s.kdf, aead: s.aead}}, nil
}
