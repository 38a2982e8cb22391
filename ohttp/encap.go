package ohttp

import (
	"crypto/hkdf"
	"crypto/hpke"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
)

// HPKE labels of RFC 9458 Section 4: the info prefix of requests and the
// exporter context of responses.
const (
	requestLabel  = "message/bhttp request"
	responseLabel = "message/bhttp response"
)

// HeaderLen is the length of the Encapsulated Request header.
const HeaderLen = 7

// Header is the header of an Encapsulated Request (RFC 9458 Section 4.1):
// the key identifier and the HPKE suite the client chose.
type Header struct {
	KeyID uint8
	KEM   KEMID
	KDF   KDFID
	AEAD  AEADID
}

// Algorithm returns the (KDF, AEAD) pair of h.
func (h Header) Algorithm() SymmetricAlgorithm { return SymmetricAlgorithm{KDF: h.KDF, AEAD: h.AEAD} }

func (h Header) appendTo(b []byte) []byte {
	b = append(b, h.KeyID)
	b = binary.BigEndian.AppendUint16(b, uint16(h.KEM))
	b = binary.BigEndian.AppendUint16(b, uint16(h.KDF))
	return binary.BigEndian.AppendUint16(b, uint16(h.AEAD))
}

// info returns the HPKE info of a request: "message/bhttp request", a zero
// byte and the header.
func (h Header) info() []byte {
	b := make([]byte, 0, len(requestLabel)+1+HeaderLen)
	b = append(b, requestLabel...)
	b = append(b, 0)
	return h.appendTo(b)
}

// EncapsulatedRequest is a parsed Encapsulated Request. Enc and Ciphertext
// alias the parsed input.
type EncapsulatedRequest struct {
	Header
	// Enc is the HPKE encapsulated key (Nenc bytes): fresh for every
	// request, it identifies the request for replay detection.
	Enc []byte
	// Ciphertext is the HPKE-protected Binary HTTP request.
	Ciphertext []byte
}

// tagLen is the tag length of every supported AEAD.
const tagLen = 16

// ParseEncapsulatedRequest splits an Encapsulated Request into header,
// encapsulated key and ciphertext. It resolves the suite (ErrUnsupportedSuite)
// to learn Nenc and checks that the ciphertext can hold an AEAD tag
// (ErrTruncated); it does not decrypt.
func ParseEncapsulatedRequest(b []byte) (*EncapsulatedRequest, error) {
	if len(b) < HeaderLen {
		return nil, fmt.Errorf("%w: encapsulated request of %d bytes", ErrTruncated, len(b))
	}
	h := Header{
		KeyID: b[0],
		KEM:   KEMID(binary.BigEndian.Uint16(b[1:])),
		KDF:   KDFID(binary.BigEndian.Uint16(b[3:])),
		AEAD:  AEADID(binary.BigEndian.Uint16(b[5:])),
	}
	s, err := resolveSuite(h.KEM, h.KDF, h.AEAD)
	if err != nil {
		return nil, err
	}
	rest := b[HeaderLen:]
	if len(rest) < s.kem.nenc+tagLen {
		return nil, fmt.Errorf("%w: encapsulated request of %d bytes for %v", ErrTruncated, len(b), h.KEM)
	}
	return &EncapsulatedRequest{Header: h, Enc: rest[:s.kem.nenc:s.kem.nenc], Ciphertext: rest[s.kem.nenc:]}, nil
}

// exchange is what both ends keep of one request to handle its response.
type exchange struct {
	hdr    Header
	enc    []byte
	secret []byte // Export("message/bhttp response", max(Nn, Nk))
	kdf    kdfParams
	aead   aeadParams
}

// responseKeys derives the response AEAD key and nonce (RFC 9458 Section
// 4.4) from the exported secret, enc and the response nonce.
func (x *exchange) responseKeys(nonce []byte) (prk, key, aeadNonce []byte, err error) {
	salt := make([]byte, 0, len(x.enc)+len(nonce))
	salt = append(append(salt, x.enc...), nonce...)
	if prk, err = hkdf.Extract(x.kdf.hash, x.secret, salt); err != nil {
		return nil, nil, nil, err
	}
	if key, err = hkdf.Expand(x.kdf.hash, prk, "key", x.aead.nk); err != nil {
		return nil, nil, nil, err
	}
	if aeadNonce, err = hkdf.Expand(x.kdf.hash, prk, "nonce", x.aead.nn); err != nil {
		return nil, nil, nil, err
	}
	return prk, key, aeadNonce, nil
}

// ResponseContext is the gateway's side of one exchange: it encapsulates
// the response to the request it was decapsulated from.
type ResponseContext struct {
	x exchange
	// rand supplies the response nonce; nil means crypto/rand. Tests set it
	// to reproduce the RFC 9458 vector.
	rand io.Reader
}

// Header returns the header of the request, naming its key and suite.
func (c *ResponseContext) Header() Header { return c.x.hdr }

// Enc returns the request's HPKE encapsulated key.
func (c *ResponseContext) Enc() []byte { return c.x.enc }

// EncapsulateResponse returns the Encapsulated Response (RFC 9458 Section
// 4.4) of a Binary HTTP response: a fresh random nonce followed by the
// AEAD-protected response.
func (c *ResponseContext) EncapsulateResponse(response []byte) ([]byte, error) {
	n := c.x.aead.nonceLen()
	out := make([]byte, n, n+len(response)+tagLen)
	r := c.rand
	if r == nil {
		r = rand.Reader
	}
	if _, err := io.ReadFull(r, out); err != nil {
		return nil, fmt.Errorf("ohttp: response nonce: %w", err)
	}
	_, key, nonce, err := c.x.responseKeys(out)
	if err != nil {
		return nil, fmt.Errorf("ohttp: response keys: %w", err)
	}
	aead, err := c.x.aead.new(key)
	if err != nil {
		return nil, fmt.Errorf("ohttp: response keys: %w", err)
	}
	return aead.Seal(out, nonce, response, nil), nil
}

// ClientContext is the client's side of one exchange: it decapsulates the
// response to the request it encapsulated.
type ClientContext struct {
	x exchange
}

// Header returns the header of the request.
func (c *ClientContext) Header() Header { return c.x.hdr }

// DecapsulateResponse opens an Encapsulated Response and returns the
// Binary HTTP response it protects.
func (c *ClientContext) DecapsulateResponse(encResponse []byte) ([]byte, error) {
	n := c.x.aead.nonceLen()
	if len(encResponse) < n+tagLen {
		return nil, fmt.Errorf("%w: encapsulated response of %d bytes", ErrTruncated, len(encResponse))
	}
	_, key, nonce, err := c.x.responseKeys(encResponse[:n])
	if err != nil {
		return nil, fmt.Errorf("ohttp: response keys: %w", err)
	}
	aead, err := c.x.aead.new(key)
	if err != nil {
		return nil, fmt.Errorf("ohttp: response keys: %w", err)
	}
	pt, err := aead.Open(nil, nonce, encResponse[n:], nil)
	if err != nil {
		return nil, fmt.Errorf("%w: response", ErrDecrypt)
	}
	return pt, nil
}

// EncapsulateRequest encapsulates a Binary HTTP request to the key of cfg
// with the pair alg, which cfg must offer (RFC 9458 Section 4.3). It
// returns the Encapsulated Request and the context that opens the response.
func EncapsulateRequest(cfg *KeyConfig, alg SymmetricAlgorithm, request []byte) ([]byte, *ClientContext, error) {
	if !cfg.Offers(alg) {
		return nil, nil, fmt.Errorf("%w: key %d does not offer %v", ErrUnsupportedSuite, cfg.KeyID, alg)
	}
	s, err := resolveSuite(cfg.KEM, alg.KDF, alg.AEAD)
	if err != nil {
		return nil, nil, err
	}
	pk, err := s.kem.kem.NewPublicKey(cfg.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: public key of key %d: %v", ErrInvalidKeyConfig, cfg.KeyID, err)
	}
	h := Header{KeyID: cfg.KeyID, KEM: cfg.KEM, KDF: alg.KDF, AEAD: alg.AEAD}
	enc, sender, err := hpke.NewSender(pk, s.kdf.kdf, s.aead.aead, h.info())
	if err != nil {
		return nil, nil, fmt.Errorf("ohttp: hpke sender: %w", err)
	}
	ct, err := sender.Seal(nil, request)
	if err != nil {
		return nil, nil, fmt.Errorf("ohttp: hpke seal: %w", err)
	}
	out := make([]byte, 0, HeaderLen+len(enc)+len(ct))
	out = append(append(h.appendTo(out), enc...), ct...)
	secret, err := sender.Export(responseLabel, s.aead.nonceLen())
	if err != nil {
		return nil, nil, fmt.Errorf("ohttp: hpke export: %w", err)
	}
	return out, &ClientContext{x: exchange{hdr: h, enc: enc, secret: secret, kdf: s.kdf, aead: s.aead}}, nil
}
