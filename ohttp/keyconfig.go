package ohttp

import (
	"encoding/binary"
	"fmt"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// KeyConfig is one key configuration (RFC 9458 Section 3.1): what a client
// needs to encapsulate requests to one gateway key.
type KeyConfig struct {
	KeyID uint8
	KEM   KEMID
	// PublicKey is the serialized HPKE public key (Npk bytes).
	PublicKey []byte
	// Algorithms lists the (KDF, AEAD) pairs the gateway accepts with this
	// key, in its order of preference. Pairs this package does not
	// implement are kept, so that a parsed configuration re-encodes
	// unchanged, and are skipped when choosing.
	Algorithms []SymmetricAlgorithm
}

// Sizes of the Key Config fields.
const (
	maxAlgorithmsLen = 65532 // HPKE Symmetric Algorithms Length, 4..65532
	maxConfigLen     = 65535 // a config must fit the 2-byte length of the list form
)

// AppendBinary appends the Key Config encoding of c to b.
func (c KeyConfig) AppendBinary(b []byte) ([]byte, error) {
	p, ok := c.KEM.params()
	if !ok {
		return nil, fmt.Errorf("%w: %w: %v", ErrInvalidKeyConfig, ErrUnsupportedSuite, c.KEM)
	}
	if len(c.PublicKey) != p.npk {
		return nil, fmt.Errorf("%w: public key of %d bytes for %v", ErrInvalidKeyConfig, len(c.PublicKey), c.KEM)
	}
	n := 4 * len(c.Algorithms)
	if n == 0 || n > maxAlgorithmsLen {
		return nil, fmt.Errorf("%w: %d symmetric algorithms", ErrInvalidKeyConfig, len(c.Algorithms))
	}
	b = append(b, c.KeyID)
	b = binary.BigEndian.AppendUint16(b, uint16(c.KEM))
	b = append(b, c.PublicKey...)
	b = binary.BigEndian.AppendUint16(b, uint16(n))
	for _, a := range c.Algorithms {
		b = binary.BigEndian.AppendUint16(b, uint16(a.KDF))
		b = binary.BigEndian.AppendUint16(b, uint16(a.AEAD))
	}
	return b, nil
}

// MarshalBinary returns the Key Config encoding of c (RFC 9458 Section 3.1).
func (c KeyConfig) MarshalBinary() ([]byte, error) { return c.AppendBinary(nil) }

// Offers reports whether c lists the pair a.
func (c KeyConfig) Offers(a SymmetricAlgorithm) bool { return slices.Contains(c.Algorithms, a) }

// Preferred returns the first pair of c that this package implements.
func (c KeyConfig) Preferred() (SymmetricAlgorithm, bool) {
	for _, a := range c.Algorithms {
		if a.Supported() {
			return a, true
		}
	}
	return SymmetricAlgorithm{}, false
}

// UnmarshalKeyConfig decodes exactly one Key Config (RFC 9458 Section 3.1).
// The KEM must be supported, since its public key length is not encoded,
// and the public key must be a valid point for it.
func UnmarshalKeyConfig(b []byte) (*KeyConfig, error) {
	s := cryptobyte.String(b)
	c, err := readKeyConfig(&s)
	if err != nil {
		return nil, err
	}
	if !s.Empty() {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrInvalidKeyConfig, len(s))
	}
	return c, nil
}

func readKeyConfig(s *cryptobyte.String) (*KeyConfig, error) {
	var c KeyConfig
	var kem uint16
	if !s.ReadUint8(&c.KeyID) || !s.ReadUint16(&kem) {
		return nil, fmt.Errorf("%w: %w: key config header", ErrInvalidKeyConfig, ErrTruncated)
	}
	c.KEM = KEMID(kem)
	p, ok := c.KEM.params()
	if !ok {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedSuite, c.KEM)
	}
	var pk, algs cryptobyte.String
	if !s.ReadBytes((*[]byte)(&pk), p.npk) || !s.ReadUint16LengthPrefixed(&algs) {
		return nil, fmt.Errorf("%w: %w: key config of key %d", ErrInvalidKeyConfig, ErrTruncated, c.KeyID)
	}
	if len(algs) < 4 || len(algs) > maxAlgorithmsLen || len(algs)%4 != 0 {
		return nil, fmt.Errorf("%w: symmetric algorithms length %d", ErrInvalidKeyConfig, len(algs))
	}
	if _, err := p.kem.NewPublicKey(pk); err != nil {
		return nil, fmt.Errorf("%w: public key of key %d: %v", ErrInvalidKeyConfig, c.KeyID, err)
	}
	c.PublicKey = slices.Clone([]byte(pk))
	c.Algorithms = make([]SymmetricAlgorithm, 0, len(algs)/4)
	for !algs.Empty() {
		var kdf, aead uint16
		algs.ReadUint16(&kdf)
		algs.ReadUint16(&aead)
		c.Algorithms = append(c.Algorithms, SymmetricAlgorithm{KDF: KDFID(kdf), AEAD: AEADID(aead)})
	}
	return &c, nil
}

// MarshalKeyConfigs returns the application/ohttp-keys encoding of cs
// (RFC 9458 Section 3.2): each Key Config preceded by its length as a
// 2-byte integer.
func MarshalKeyConfigs(cs []KeyConfig) ([]byte, error) {
	var b []byte
	for i := range cs {
		at := len(b)
		b = append(b, 0, 0)
		var err error
		if b, err = cs[i].AppendBinary(b); err != nil {
			return nil, err
		}
		n := len(b) - at - 2
		if n > maxConfigLen {
			return nil, fmt.Errorf("%w: config of %d bytes", ErrInvalidKeyConfig, n)
		}
		binary.BigEndian.PutUint16(b[at:], uint16(n))
	}
	return b, nil
}

// UnmarshalKeyConfigs decodes an application/ohttp-keys list, keeping the
// configurations a client of this package can use, in list order. A
// configuration whose KEM this package does not implement (its length
// prefix frames it), or none of whose (KDF, AEAD) pairs it implements, is
// skipped; any encoding error fails the whole list, as RFC 9458 Section
// 3.2 requires. It fails with ErrNoUsableKey when no usable configuration
// remains.
func UnmarshalKeyConfigs(b []byte) ([]KeyConfig, error) {
	s := cryptobyte.String(b)
	var out []KeyConfig
	seen := 0
	for !s.Empty() {
		var one cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&one) {
			return nil, fmt.Errorf("%w: %w: key config %d", ErrInvalidKeyConfig, ErrTruncated, seen)
		}
		seen++
		if len(one) >= 3 && !KEMID(binary.BigEndian.Uint16(one[1:3])).Supported() {
			continue
		}
		c, err := readKeyConfig(&one)
		if err != nil {
			return nil, fmt.Errorf("key config %d: %w", seen-1, err)
		}
		if !one.Empty() {
			return nil, fmt.Errorf("%w: key config %d has %d trailing bytes", ErrInvalidKeyConfig, seen-1, len(one))
		}
		if _, ok := c.Preferred(); ok {
			out = append(out, *c)
		}
	}
	if seen == 0 {
		return nil, fmt.Errorf("%w: empty list", ErrInvalidKeyConfig)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: none of %d configurations", ErrNoUsableKey, seen)
	}
	return out, nil
}
