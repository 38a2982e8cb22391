package mls

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

type cryptoBasicsVector struct {
	CipherSuite CipherSuite `json:"cipher_suite"`
	RefHash     struct {
		Label string   `json:"label"`
		Out   hexBytes `json:"out"`
		Value hexBytes `json:"value"`
	} `json:"ref_hash"`
	ExpandWithLabel struct {
		Secret  hexBytes `json:"secret"`
		Label   string   `json:"label"`
		Context hexBytes `json:"context"`
		Length  int      `json:"length"`
		Out     hexBytes `json:"out"`
	} `json:"expand_with_label"`
	DeriveSecret struct {
		Secret hexBytes `json:"secret"`
		Label  string   `json:"label"`
		Out    hexBytes `json:"out"`
	} `json:"derive_secret"`
	DeriveTreeSecret struct {
		Secret     hexBytes `json:"secret"`
		Label      string   `json:"label"`
		Generation uint32   `json:"generation"`
		Length     int      `json:"length"`
		Out        hexBytes `json:"out"`
	} `json:"derive_tree_secret"`
	SignWithLabel struct {
		Priv      hexBytes `json:"priv"`
		Pub       hexBytes `json:"pub"`
		Content   hexBytes `json:"content"`
		Label     string   `json:"label"`
		Signature hexBytes `json:"signature"`
	} `json:"sign_with_label"`
	EncryptWithLabel struct {
		Priv       hexBytes `json:"priv"`
		Pub        hexBytes `json:"pub"`
		Label      string   `json:"label"`
		Context    hexBytes `json:"context"`
		Plaintext  hexBytes `json:"plaintext"`
		KEMOutput  hexBytes `json:"kem_output"`
		Ciphertext hexBytes `json:"ciphertext"`
	} `json:"encrypt_with_label"`
}

func TestCryptoBasicsVectors(t *testing.T) {
	var vs []cryptoBasicsVector
	loadCodecVectors(t, "crypto-basics.json", &vs)
	if len(vs) == 0 {
		t.Fatal("no vectors")
	}
	seen := map[CipherSuite]bool{}
	for _, v := range vs {
		t.Run(v.CipherSuite.String(), func(t *testing.T) {
			seen[v.CipherSuite] = true
			s, err := v.CipherSuite.Suite()
			if err != nil {
				t.Fatal(err)
			}
			checkRefHash(t, s, &v)
			checkKDFLabels(t, s, &v)
			checkSignWithLabel(t, s, &v)
			// A DS never decrypts: EncryptWithLabel/DecryptWithLabel are not on
			// its path. They are checked anyway, through crypto/hpke (and circl
			// for X448), so every part of the vector is exercised.
			checkEncryptWithLabel(t, s, &v)
		})
	}
	for cs := CipherSuite(1); cs <= 7; cs++ {
		if !seen[cs] {
			t.Errorf("suite %d absent from crypto-basics.json", cs)
		}
	}
}

func checkRefHash(t *testing.T, s *Suite, v *cryptoBasicsVector) {
	got := s.RefHash(v.RefHash.Label, v.RefHash.Value)
	if !bytes.Equal(got, v.RefHash.Out) {
		t.Errorf("ref_hash = %x, want %x", got, v.RefHash.Out)
	}
}

func checkKDFLabels(t *testing.T, s *Suite, v *cryptoBasicsVector) {
	e := v.ExpandWithLabel
	got, err := s.ExpandWithLabel(e.Secret, e.Label, e.Context, e.Length)
	if err != nil || !bytes.Equal(got, e.Out) {
		t.Errorf("expand_with_label = %x, %v; want %x", got, err, e.Out)
	}
	d := v.DeriveSecret
	got, err = s.DeriveSecret(d.Secret, d.Label)
	if err != nil || !bytes.Equal(got, d.Out) {
		t.Errorf("derive_secret = %x, %v; want %x", got, err, d.Out)
	}
	ts := v.DeriveTreeSecret
	got, err = s.DeriveTreeSecret(ts.Secret, ts.Label, ts.Generation, ts.Length)
	if err != nil || !bytes.Equal(got, ts.Out) {
		t.Errorf("derive_tree_secret = %x, %v; want %x", got, err, ts.Out)
	}
}

func checkSignWithLabel(t *testing.T, s *Suite, v *cryptoBasicsVector) {
	sw := v.SignWithLabel
	if err := s.VerifyWithLabel(sw.Pub, sw.Label, sw.Content, sw.Signature); err != nil {
		t.Errorf("given signature: %v", err)
	}
	pub, err := s.SignaturePublicKey(sw.Priv)
	if err != nil || !bytes.Equal(pub, sw.Pub) {
		t.Errorf("public key from priv = %x, %v; want %x", pub, err, sw.Pub)
	}
	sig, err := s.SignWithLabel(sw.Priv, sw.Label, sw.Content)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.VerifyWithLabel(sw.Pub, sw.Label, sw.Content, sig); err != nil {
		t.Errorf("fresh signature: %v", err)
	}
	k, err := s.ParseSignatureKey(sw.Pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := k.VerifyWithLabel(sw.Label, sw.Content, sig); err != nil {
		t.Errorf("fresh signature, parsed key: %v", err)
	}
	// Any change to label, content or signature must fail.
	if err := s.VerifyWithLabel(sw.Pub, sw.Label+"x", sw.Content, sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other label: %v, want ErrBadSignature", err)
	}
	bad := bytes.Clone(sw.Content)
	bad[0] ^= 1
	if err := k.VerifyWithLabel(sw.Label, bad, sw.Signature); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other content: %v, want ErrBadSignature", err)
	}
	if err := s.VerifyWithLabel(sw.Pub[:len(sw.Pub)-1], sw.Label, sw.Content, sig); !errors.Is(err, ErrBadSignatureKey) {
		t.Errorf("short key: %v, want ErrBadSignatureKey", err)
	}
}

func checkEncryptWithLabel(t *testing.T, s *Suite, v *cryptoBasicsVector) {
	e := v.EncryptWithLabel
	pt, err := s.DecryptWithLabel(e.Priv, e.Label, e.Context, e.KEMOutput, e.Ciphertext)
	if err != nil || !bytes.Equal(pt, e.Plaintext) {
		t.Errorf("decrypt given = %x, %v; want %x", pt, err, e.Plaintext)
	}
	enc, ct, err := s.EncryptWithLabel(e.Pub, e.Label, e.Context, e.Plaintext)
	if err != nil {
		t.Fatal(err)
	}
	pt, err = s.DecryptWithLabel(e.Priv, e.Label, e.Context, enc, ct)
	if err != nil || !bytes.Equal(pt, e.Plaintext) {
		t.Errorf("decrypt fresh = %x, %v; want %x", pt, err, e.Plaintext)
	}
	if _, err := s.DecryptWithLabel(e.Priv, e.Label+"x", e.Context, enc, ct); !errors.Is(err, ErrHPKE) {
		t.Errorf("other label: %v, want ErrHPKE", err)
	}
}

func TestUnsupportedCipherSuite(t *testing.T) {
	for _, cs := range []CipherSuite{0, 8, 0x0a0a, 0xffff} {
		t.Run(fmt.Sprint(uint16(cs)), func(t *testing.T) {
			_, err := cs.Suite()
			var ue *UnsupportedCipherSuiteError
			if !errors.Is(err, ErrUnsupportedCipherSuite) || !errors.As(err, &ue) || ue.Suite != cs {
				t.Fatalf("Suite() error = %v", err)
			}
			if cs.Supported() {
				t.Fatal("Supported() = true")
			}
		})
	}
}

func TestGenerateSignatureKeyAllSuites(t *testing.T) {
	for cs := CipherSuite(1); cs <= 7; cs++ {
		t.Run(cs.String(), func(t *testing.T) {
			s, _ := cs.Suite()
			priv, pub, err := s.GenerateSignatureKey()
			if err != nil {
				t.Fatal(err)
			}
			sig, err := s.SignWithLabel(priv, "LeafNodeTBS", []byte("content"))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.VerifyWithLabel(pub, "LeafNodeTBS", []byte("content"), sig); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func BenchmarkVerifyWithLabel(b *testing.B) {
	content := bytes.Repeat([]byte{7}, 300) // about a LeafNodeTBS
	for cs := CipherSuite(1); cs <= 7; cs++ {
		s, _ := cs.Suite()
		priv, pub, err := s.GenerateSignatureKey()
		if err != nil {
			b.Fatal(err)
		}
		sig, err := s.SignWithLabel(priv, "LeafNodeTBS", content)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(cs.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := s.VerifyWithLabel(pub, "LeafNodeTBS", content, sig); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCompressedECDSAKeys checks the ts-mls interop leniency: ECDSA
// signature keys as SEC 1 compressed points verify like uncompressed ones.
func TestCompressedECDSAKeys(t *testing.T) {
	var vs []cryptoBasicsVector
	loadCodecVectors(t, "crypto-basics.json", &vs)
	n := 0
	for _, v := range vs {
		s, _ := v.CipherSuite.Suite()
		if s.sig == sigEd25519 || s.sig == sigEd448 {
			continue
		}
		t.Run(v.CipherSuite.String(), func(t *testing.T) {
			sw := v.SignWithLabel
			pub := sw.Pub // 0x04 || X || Y
			l := (len(pub) - 1) / 2
			comp := append([]byte{2 | pub[len(pub)-1]&1}, pub[1:1+l]...)
			if err := s.VerifyWithLabel(comp, sw.Label, sw.Content, sw.Signature); err != nil {
				t.Fatalf("compressed key: %v", err)
			}
			comp[0] ^= 1 // the other point with this X: a valid key, the wrong one
			if err := s.VerifyWithLabel(comp, sw.Label, sw.Content, sw.Signature); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("negated point: %v", err)
			}
			bad := append([]byte{2}, bytes.Repeat([]byte{0xff}, l)...) // X beyond the field
			if err := s.VerifyWithLabel(bad, sw.Label, sw.Content, sw.Signature); !errors.Is(err, ErrBadSignatureKey) {
				t.Fatalf("invalid compressed point: %v", err)
			}
			n++
		})
	}
	if n != 3 {
		t.Fatalf("%d ECDSA suites checked, want 3", n)
	}
}
