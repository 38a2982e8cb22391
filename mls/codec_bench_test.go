package mls

import (
	"crypto/ed25519"
	"fmt"
	"testing"
	"time"
)

// BenchmarkValidateKeyPackage measures ValidateKeyPackage (decoding
// included) per suite, and bare ed25519.Verify over a message of the same
// size: a validation costs at least two verifications, so suite 1's
// validations/s can be compared with half the verifications/s.
func BenchmarkValidateKeyPackage(b *testing.B) {
	for cs := CipherSuite(1); cs <= 7; cs++ {
		tk := newTestKeyPackage(b, cs, nil)
		enc, err := (&MLSMessage{Version: 1, WireFormat: WireFormatKeyPackage, KeyPackage: tk.kp}).Marshal()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("suite-%d", cs), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				kp, err := DecodeKeyPackageMessage(enc)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := ValidateKeyPackage(kp, testClock); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "validations/s")
		})
	}
	tk := newTestKeyPackage(b, 1, nil)
	msg, err := tk.kp.TBS()
	if err != nil {
		b.Fatal(err)
	}
	sk := ed25519.NewKeyFromSeed(tk.priv)
	sig := ed25519.Sign(sk, msg)
	pub := sk.Public().(ed25519.PublicKey)
	b.Run("ed25519.Verify", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !ed25519.Verify(pub, msg, sig) {
				b.Fatal("verify")
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifications/s")
	})
}

// syntheticWelcome returns an encoded MLSMessage Welcome for n new members
// with realistic sizes: 32-byte refs and X25519 KEM outputs, 100-byte
// encrypted GroupSecrets, and an encrypted GroupInfo carrying a ratchet
// tree of about 330 bytes per member.
func syntheticWelcome(tb testing.TB, n int) []byte {
	w := &Welcome{CipherSuite: 1, EncryptedGroupInfo: kpRandBytes(330*n + 200)}
	for range n {
		w.Secrets = append(w.Secrets, EncryptedGroupSecrets{
			NewMember:             kpRandBytes(32),
			EncryptedGroupSecrets: HPKECiphertext{KEMOutput: kpRandBytes(32), Ciphertext: kpRandBytes(100)},
		})
	}
	b, err := (&MLSMessage{Version: 1, WireFormat: WireFormatWelcome, Welcome: w}).Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func BenchmarkDecodeWelcome100(b *testing.B) {
	enc := syntheticWelcome(b, 100)
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		m, err := DecodeMLSMessage(enc)
		if err != nil {
			b.Fatal(err)
		}
		if len(m.Welcome.KeyPackageRefs()) != 100 {
			b.Fatal("refs")
		}
	}
}

// BenchmarkDecode decodes, and BenchmarkEncode encodes, the messages of
// messages.json's first case.
func BenchmarkDecode(b *testing.B) {
	for _, name := range []string{"mls_key_package", "mls_group_info", "public_message_commit", "ratchet_tree"} {
		data := validMessages(b)[name]
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := messageFields[name]().Unmarshal(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncode(b *testing.B) {
	for _, name := range []string{"mls_key_package", "mls_group_info", "public_message_commit", "ratchet_tree"} {
		data := validMessages(b)[name]
		v := messageFields[name]()
		if err := v.Unmarshal(data); err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Marshal(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkKeyPackageVerifyBound interleaves a suite-1 KeyPackage
// validation (decoding included) with two bare ed25519.Verify calls over
// content of the same size, timing each, so that load from other processes
// hits both alike. It reports validations/s, the two-verification bound and
// the validation rate as a percentage of that bound.
func BenchmarkKeyPackageVerifyBound(b *testing.B) {
	tk := newTestKeyPackage(b, 1, nil)
	enc, err := (&MLSMessage{Version: 1, WireFormat: WireFormatKeyPackage, KeyPackage: tk.kp}).Marshal()
	if err != nil {
		b.Fatal(err)
	}
	msg, _ := tk.kp.TBS()
	sk := ed25519.NewKeyFromSeed(tk.priv)
	sig := ed25519.Sign(sk, msg)
	pub := sk.Public().(ed25519.PublicKey)
	var tValidate, tVerify time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		kp, err := DecodeKeyPackageMessage(enc)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := ValidateKeyPackage(kp, testClock); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if !ed25519.Verify(pub, msg, sig) || !ed25519.Verify(pub, msg, sig) {
			b.Fatal("verify")
		}
		tVerify += time.Since(t1)
		tValidate += t1.Sub(t0)
	}
	n := float64(b.N)
	b.ReportMetric(n/tValidate.Seconds(), "validations/s")
	b.ReportMetric(n/tVerify.Seconds(), "2-verify-bound/s")
	b.ReportMetric(100*tVerify.Seconds()/tValidate.Seconds(), "%bound")
}
