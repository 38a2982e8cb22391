package mls

import (
	"crypto/hpke"
	"crypto/rand"
	"errors"
	"fmt"

	circlhpke "github.com/cloudflare/circl/hpke"
)

// ErrHPKE is returned when HPKE encryption or decryption fails.
var ErrHPKE = errors.New("mls: hpke")

// kemX448 is the HPKE KEM identifier of DHKEM(X448, HKDF-SHA512), which
// crypto/hpke does not implement; circl does.
const kemX448 = 0x0021

// encryptContext encodes EncryptContext{"MLS 1.0 " + label, context}.
func encryptContext(label string, context []byte) []byte {
	n := len(labelPrefix) + len(label)
	b := make([]byte, 0, 8+n+len(context))
	b = suiteAppendLen(b, n)
	b = append(b, labelPrefix...)
	b = append(b, label...)
	b = suiteAppendLen(b, len(context))
	return append(b, context...)
}

// DecryptWithLabel is RFC 9420 §5.1.3's DecryptWithLabel: HPKE OpenBase with
// info = EncryptContext and empty aad. priv is a serialized HPKE private key.
// A Delivery Service never needs it (it holds no member keys); it is here so
// the suites can be checked end to end against the conformance vectors.
func (s *Suite) DecryptWithLabel(priv []byte, label string, context, kemOutput, ciphertext []byte) ([]byte, error) {
	info := encryptContext(label, context)
	if s.kemID == kemX448 {
		return s.circlOpen(priv, info, kemOutput, ciphertext)
	}
	kem, kdf, aead, err := s.stdHPKE()
	if err != nil {
		return nil, err
	}
	sk, err := kem.NewPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: private key: %v", ErrHPKE, err)
	}
	msg := make([]byte, 0, len(kemOutput)+len(ciphertext))
	msg = append(append(msg, kemOutput...), ciphertext...)
	pt, err := hpke.Open(sk, kdf, aead, info, msg)
	if err != nil {
		return nil, fmt.Errorf("%w: open: %v", ErrHPKE, err)
	}
	return pt, nil
}

// EncryptWithLabel is RFC 9420 §5.1.3's EncryptWithLabel: HPKE SealBase to
// pub with info = EncryptContext and empty aad.
func (s *Suite) EncryptWithLabel(pub []byte, label string, context, plaintext []byte) (kemOutput, ciphertext []byte, err error) {
	info := encryptContext(label, context)
	if s.kemID == kemX448 {
		return s.circlSeal(pub, info, plaintext)
	}
	kem, kdf, aead, err := s.stdHPKE()
	if err != nil {
		return nil, nil, err
	}
	pk, err := kem.NewPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: public key: %v", ErrHPKE, err)
	}
	out, err := hpke.Seal(pk, kdf, aead, info, plaintext)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: seal: %v", ErrHPKE, err)
	}
	nenc := len(out) - len(plaintext) - 16 // every MLS AEAD has a 16-byte tag
	return out[:nenc:nenc], out[nenc:], nil
}

func (s *Suite) stdHPKE() (hpke.KEM, hpke.KDF, hpke.AEAD, error) {
	kem, err := hpke.NewKEM(s.kemID)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: kem: %v", ErrHPKE, err)
	}
	kdf, err := hpke.NewKDF(s.kdfID)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: kdf: %v", ErrHPKE, err)
	}
	aead, err := hpke.NewAEAD(s.aeadID)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: aead: %v", ErrHPKE, err)
	}
	return kem, kdf, aead, nil
}

func (s *Suite) circlSuite() circlhpke.Suite {
	return circlhpke.NewSuite(circlhpke.KEM(s.kemID), circlhpke.KDF(s.kdfID), circlhpke.AEAD(s.aeadID))
}

func (s *Suite) circlOpen(priv, info, kemOutput, ciphertext []byte) ([]byte, error) {
	sk, err := circlhpke.KEM(s.kemID).Scheme().UnmarshalBinaryPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("%w: private key: %v", ErrHPKE, err)
	}
	r, err := s.circlSuite().NewReceiver(sk, info)
	if err != nil {
		return nil, fmt.Errorf("%w: receiver: %v", ErrHPKE, err)
	}
	o, err := r.Setup(kemOutput)
	if err != nil {
		return nil, fmt.Errorf("%w: setup: %v", ErrHPKE, err)
	}
	pt, err := o.Open(ciphertext, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: open: %v", ErrHPKE, err)
	}
	return pt, nil
}

func (s *Suite) circlSeal(pub, info, plaintext []byte) ([]byte, []byte, error) {
	pk, err := circlhpke.KEM(s.kemID).Scheme().UnmarshalBinaryPublicKey(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: public key: %v", ErrHPKE, err)
	}
	snd, err := s.circlSuite().NewSender(pk, info)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: sender: %v", ErrHPKE, err)
	}
	enc, sealer, err := snd.Setup(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: setup: %v", ErrHPKE, err)
	}
	ct, err := sealer.Seal(plaintext, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: seal: %v", ErrHPKE, err)
	}
	return enc, ct, nil
}
