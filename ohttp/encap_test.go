package ohttp

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"
)

var allKEMs = []KEMID{KEMX25519HKDFSHA256, KEMP256HKDFSHA256}

func newTestKey(t testing.TB, id uint8, kem KEMID) *Key {
	t.Helper()
	k, err := GenerateKey(id, kem, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestRoundTripAllSuites encapsulates a request and a response with every
// KEM, KDF and AEAD combination, in both directions.
func TestRoundTripAllSuites(t *testing.T) {
	req := []byte("a binary HTTP request")
	resp := bytes.Repeat([]byte("response"), 100)
	for _, kem := range allKEMs {
		k := newTestKey(t, 7, kem)
		cfg := k.Config()
		for _, alg := range AllAlgorithms() {
			t.Run(fmt.Sprintf("%v/%v", kem, alg), func(t *testing.T) {
				encReq, cc, err := EncapsulateRequest(&cfg, alg, req)
				if err != nil {
					t.Fatal(err)
				}
				p, _ := kem.params()
				a, _ := alg.AEAD.params()
				if want := HeaderLen + p.nenc + len(req) + tagLen; len(encReq) != want {
					t.Errorf("encapsulated request of %d bytes, want %d", len(encReq), want)
				}
				got, rc, err := k.DecapsulateRequest(encReq)
				if err != nil || !bytes.Equal(got, req) {
					t.Fatalf("decapsulate: %q, %v", got, err)
				}
				if rc.Header() != cc.Header() || rc.Header().Algorithm() != alg {
					t.Errorf("headers differ: %+v %+v", rc.Header(), cc.Header())
				}
				encResp, err := rc.EncapsulateResponse(resp)
				if err != nil {
					t.Fatal(err)
				}
				if want := a.nonceLen() + len(resp) + tagLen; len(encResp) != want {
					t.Errorf("encapsulated response of %d bytes, want %d", len(encResp), want)
				}
				back, err := cc.DecapsulateResponse(encResp)
				if err != nil || !bytes.Equal(back, resp) {
					t.Fatalf("decapsulate response: %v", err)
				}
				// Each bit flip of the response is detected.
				for _, i := range []int{0, a.nonceLen(), len(encResp) - 1} {
					bad := bytes.Clone(encResp)
					bad[i] ^= 1
					if _, err := cc.DecapsulateResponse(bad); !errors.Is(err, ErrDecrypt) {
						t.Errorf("flipped byte %d: %v", i, err)
					}
				}
			})
		}
	}
}

func TestDecapsulateErrors(t *testing.T) {
	k := newTestKey(t, 3, KEMX25519HKDFSHA256)
	other := newTestKey(t, 3, KEMX25519HKDFSHA256)
	p256 := newTestKey(t, 3, KEMP256HKDFSHA256)
	narrow, err := GenerateKey(3, KEMX25519HKDFSHA256, []SymmetricAlgorithm{{KDFHKDFSHA256, AEADAES128GCM}}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	cfg := k.Config()
	good, _, err := EncapsulateRequest(&cfg, SymmetricAlgorithm{KDFHKDFSHA384, AEADChaCha20Poly1305}, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte { b := bytes.Clone(good); b[i] ^= 0x80; return b }
	withHeader := func(h Header) []byte { return append(h.appendTo(nil), good[HeaderLen:]...) }
	tests := []struct {
		name string
		key  *Key
		in   []byte
		want error
	}{
		{"empty", k, nil, ErrTruncated},
		{"header only", k, good[:HeaderLen], ErrTruncated},
		{"no tag", k, good[:HeaderLen+32+15], ErrTruncated},
		{"truncated ciphertext", k, good[:len(good)-1], ErrDecrypt},
		{"flipped enc", k, flip(HeaderLen), ErrDecrypt},
		{"flipped ciphertext", k, flip(len(good) - 1), ErrDecrypt},
		{"flipped kdf in header", k, withHeader(Header{3, KEMX25519HKDFSHA256, KDFHKDFSHA256, AEADChaCha20Poly1305}), ErrDecrypt},
		{"other key same id", other, good, ErrDecrypt},
		{"wrong key id", k, withHeader(Header{4, KEMX25519HKDFSHA256, KDFHKDFSHA384, AEADChaCha20Poly1305}), ErrUnknownKeyID},
		{"wrong KEM", p256, good, ErrUnknownKeyID},
		{"pair not offered", narrow, good, ErrUnsupportedSuite},
		{"unknown KEM", k, withHeader(Header{3, 0x0011, KDFHKDFSHA384, AEADChaCha20Poly1305}), ErrUnsupportedSuite},
		{"unknown KDF", k, withHeader(Header{3, KEMX25519HKDFSHA256, 0x0004, AEADChaCha20Poly1305}), ErrUnsupportedSuite},
		{"export-only AEAD", k, withHeader(Header{3, KEMX25519HKDFSHA256, KDFHKDFSHA384, 0xffff}), ErrUnsupportedSuite},
		{"garbage", k, bytes.Repeat([]byte{0x5a}, 100), ErrUnsupportedSuite},
		{"low-order X25519 enc", k, append(good[:HeaderLen:HeaderLen], make([]byte, 32+20)...), ErrDecrypt},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tc.key.DecapsulateRequest(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestEncapsulateRequestErrors(t *testing.T) {
	k := newTestKey(t, 1, KEMX25519HKDFSHA256)
	cfg := k.Config()
	if _, _, err := EncapsulateRequest(&cfg, SymmetricAlgorithm{KDFHKDFSHA256, 0x0009}, nil); !errors.Is(err, ErrUnsupportedSuite) {
		t.Errorf("pair not offered: %v", err)
	}
	cfg.Algorithms = append(cfg.Algorithms, SymmetricAlgorithm{KDFHKDFSHA256, 0x0009})
	if _, _, err := EncapsulateRequest(&cfg, SymmetricAlgorithm{KDFHKDFSHA256, 0x0009}, nil); !errors.Is(err, ErrUnsupportedSuite) {
		t.Errorf("unknown AEAD: %v", err)
	}
	cfg = k.Config()
	cfg.PublicKey = make([]byte, 5)
	if _, _, err := EncapsulateRequest(&cfg, cfg.Algorithms[0], nil); !errors.Is(err, ErrInvalidKeyConfig) {
		t.Errorf("bad public key: %v", err)
	}
	cc := &ClientContext{}
	cc.x.aead, _ = AEADAES128GCM.params()
	if _, err := cc.DecapsulateResponse(make([]byte, 31)); !errors.Is(err, ErrTruncated) {
		t.Errorf("short response: %v", err)
	}
}

// TestResponseNonceUnique checks that two responses to one request use
// different nonces (the random source is crypto/rand by default).
func TestResponseNonceUnique(t *testing.T) {
	k := newTestKey(t, 1, KEMX25519HKDFSHA256)
	cfg := k.Config()
	encReq, _, _ := EncapsulateRequest(&cfg, cfg.Algorithms[0], []byte("x"))
	_, rc, err := k.DecapsulateRequest(encReq)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := rc.EncapsulateResponse([]byte("same"))
	b, _ := rc.EncapsulateResponse([]byte("same"))
	if bytes.Equal(a[:16], b[:16]) {
		t.Fatal("response nonce repeated")
	}
	rc.rand = bytes.NewReader(nil)
	if _, err := rc.EncapsulateResponse(nil); err == nil {
		t.Fatal("exhausted random source accepted")
	}
}
