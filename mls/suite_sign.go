package mls

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"hash"

	"github.com/cloudflare/circl/sign/ed448"
)

// SignatureKey is a parsed signature public key of one suite. Parsing once and
// verifying many times avoids re-decoding ECDSA points. A SignatureKey is
// immutable and safe for concurrent use.
type SignatureKey struct {
	suite *Suite
	raw   []byte
	ec    *ecdsa.PublicKey // ECDSA suites only
}

// ParseSignatureKey checks and parses a SignaturePublicKey of the suite's
// signature scheme: 32 bytes for Ed25519, 57 for Ed448, a point on the curve
// for ECDSA. raw is retained, not copied.
//
// RFC 9420 §5.1.1 encodes ECDSA keys as uncompressed points. ts-mls 1.6.4
// sends SEC 1 compressed points (0x02/0x03 prefix) instead, and its members
// accept each other's; for interoperability compressed points are accepted
// too (decompression costs a square root, so they verify more slowly).
func (s *Suite) ParseSignatureKey(raw []byte) (*SignatureKey, error) {
	k := &SignatureKey{suite: s, raw: raw}
	switch s.sig {
	case sigEd25519:
		if len(raw) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: ed25519 key of %d bytes", ErrBadSignatureKey, len(raw))
		}
	case sigEd448:
		if len(raw) != ed448.PublicKeySize {
			return nil, fmt.Errorf("%w: ed448 key of %d bytes", ErrBadSignatureKey, len(raw))
		}
	default:
		pt := raw
		if len(raw) > 0 && (raw[0] == 2 || raw[0] == 3) {
			x, y := elliptic.UnmarshalCompressed(s.curve, raw)
			if x == nil {
				return nil, fmt.Errorf("%w: %s: invalid compressed point", ErrBadSignatureKey, s.sig)
			}
			n := (s.curve.Params().BitSize + 7) / 8
			pt = make([]byte, 1+2*n)
			pt[0] = 4
			x.FillBytes(pt[1 : 1+n])
			y.FillBytes(pt[1+n:])
		}
		pk, err := ecdsa.ParseUncompressedPublicKey(s.curve, pt)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadSignatureKey, s.sig, err)
		}
		k.ec = pk
	}
	return k, nil
}

// Bytes returns the encoded key as given to ParseSignatureKey.
func (k *SignatureKey) Bytes() []byte { return k.raw }

// VerifyWithLabel checks signature over SignContent{"MLS 1.0 " + label,
// content} (RFC 9420 §5.1.2). It returns nil or an error matching ErrBadSignature.
func (k *SignatureKey) VerifyWithLabel(label string, content, signature []byte) error {
	s := k.suite
	var ok bool
	switch s.sig {
	case sigEd25519, sigEd448:
		bp := s.signContent(label, content)
		if s.sig == sigEd25519 {
			ok = ed25519.Verify(k.raw, *bp, signature)
		} else {
			ok = ed448.Verify(k.raw, *bp, signature, "")
		}
		s.bufPool.Put(bp)
	default:
		var d [64]byte
		ok = ecdsa.VerifyASN1(k.ec, s.signContentDigest(d[:0], label, content), signature)
	}
	if !ok {
		return fmt.Errorf("%w: %q", ErrBadSignature, label)
	}
	return nil
}

// VerifyWithLabel parses pub and checks signature over SignContent{"MLS 1.0 "
// + label, content} (RFC 9420 §5.1.2). A malformed key gives an error matching
// ErrBadSignatureKey, a wrong signature one matching ErrBadSignature.
func (s *Suite) VerifyWithLabel(pub []byte, label string, content, signature []byte) error {
	switch s.sig {
	case sigEd25519, sigEd448: // no parsing needed: avoid the allocation
		k := SignatureKey{suite: s, raw: pub}
		if (s.sig == sigEd25519 && len(pub) != ed25519.PublicKeySize) ||
			(s.sig == sigEd448 && len(pub) != ed448.PublicKeySize) {
			return fmt.Errorf("%w: %s key of %d bytes", ErrBadSignatureKey, s.sig, len(pub))
		}
		return k.VerifyWithLabel(label, content, signature)
	}
	k, err := s.ParseSignatureKey(pub)
	if err != nil {
		return err
	}
	return k.VerifyWithLabel(label, content, signature)
}

// SignWithLabel signs SignContent{"MLS 1.0 " + label, content} with priv, a
// private key in the test-vector encoding (RFC 8032 seed for EdDSA, big-endian
// scalar for ECDSA). ECDSA signatures are DER encoded as in TLS 1.3.
func (s *Suite) SignWithLabel(priv []byte, label string, content []byte) ([]byte, error) {
	switch s.sig {
	case sigEd25519:
		if len(priv) != ed25519.SeedSize {
			return nil, fmt.Errorf("%w: ed25519 seed of %d bytes", ErrBadSignatureKey, len(priv))
		}
		bp := s.signContent(label, content)
		defer s.bufPool.Put(bp)
		return ed25519.Sign(ed25519.NewKeyFromSeed(priv), *bp), nil
	case sigEd448:
		if len(priv) != ed448.SeedSize {
			return nil, fmt.Errorf("%w: ed448 seed of %d bytes", ErrBadSignatureKey, len(priv))
		}
		bp := s.signContent(label, content)
		defer s.bufPool.Put(bp)
		return ed448.Sign(ed448.NewKeyFromSeed(priv), *bp, ""), nil
	}
	sk, err := ecdsa.ParseRawPrivateKey(s.curve, priv)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignatureKey, err)
	}
	var d [64]byte
	sig, err := ecdsa.SignASN1(rand.Reader, sk, s.signContentDigest(d[:0], label, content))
	if err != nil {
		return nil, fmt.Errorf("mls: sign: %w", err)
	}
	return sig, nil
}

// GenerateSignatureKey makes a fresh key pair of the suite's signature scheme,
// in the encodings SignWithLabel and VerifyWithLabel take.
func (s *Suite) GenerateSignatureKey() (priv, pub []byte, err error) {
	switch s.sig {
	case sigEd25519:
		p, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("mls: generate key: %w", err)
		}
		return k.Seed(), p, nil
	case sigEd448:
		p, k, err := ed448.GenerateKey(rand.Reader)
		if err != nil {
			return nil, nil, fmt.Errorf("mls: generate key: %w", err)
		}
		return k.Seed(), p, nil
	}
	k, err := ecdsa.GenerateKey(s.curve, rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: generate key: %w", err)
	}
	if priv, err = k.Bytes(); err != nil {
		return nil, nil, fmt.Errorf("mls: generate key: %w", err)
	}
	if pub, err = k.PublicKey.Bytes(); err != nil {
		return nil, nil, fmt.Errorf("mls: generate key: %w", err)
	}
	return priv, pub, nil
}

// SignaturePublicKey derives the public key of a private key in the
// encoding SignWithLabel takes.
func (s *Suite) SignaturePublicKey(priv []byte) ([]byte, error) {
	switch s.sig {
	case sigEd25519:
		if len(priv) != ed25519.SeedSize {
			return nil, fmt.Errorf("%w: ed25519 seed of %d bytes", ErrBadSignatureKey, len(priv))
		}
		return ed25519.NewKeyFromSeed(priv).Public().(ed25519.PublicKey), nil
	case sigEd448:
		if len(priv) != ed448.SeedSize {
			return nil, fmt.Errorf("%w: ed448 seed of %d bytes", ErrBadSignatureKey, len(priv))
		}
		return ed448.NewKeyFromSeed(priv).Public().(ed448.PublicKey), nil
	}
	sk, err := ecdsa.ParseRawPrivateKey(s.curve, priv)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignatureKey, err)
	}
	pub, err := sk.PublicKey.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignatureKey, err)
	}
	return pub, nil
}

// signContent encodes SignContent into a pooled buffer; the caller returns it
// to s.bufPool when done.
func (s *Suite) signContent(label string, content []byte) *[]byte {
	bp, _ := s.bufPool.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	n := len(labelPrefix) + len(label)
	b := (*bp)[:0]
	b = suiteAppendLen(b, n)
	b = append(b, labelPrefix...)
	b = append(b, label...)
	b = suiteAppendLen(b, len(content))
	b = append(b, content...)
	*bp = b
	return bp
}

// signContentDigest appends the suite hash of the encoded SignContent to dst
// without materialising the encoding.
func (s *Suite) signContentDigest(dst []byte, label string, content []byte) []byte {
	h, _ := s.hashPool.Get().(hash.Hash)
	if h == nil {
		h = s.newHash()
	}
	h.Reset()
	var hdr [4]byte
	h.Write(suiteAppendLen(hdr[:0], len(labelPrefix)+len(label)))
	h.Write([]byte(labelPrefix))
	h.Write([]byte(label))
	h.Write(suiteAppendLen(hdr[:0], len(content)))
	h.Write(content)
	dst = h.Sum(dst)
	s.hashPool.Put(h)
	return dst
}
