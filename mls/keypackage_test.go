package mls

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
	"time"
)

// testClock is the "now" of KeyPackage tests.
var testClock = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// testKeyPackage is a KeyPackage built and signed in the test.
type testKeyPackage struct {
	kp   *KeyPackage
	priv []byte // signature private key
}

func kpRandBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// newTestKeyPackage builds a valid KeyPackage for suite cs. edit, if not
// nil, changes it before it is signed.
func newTestKeyPackage(t testing.TB, cs CipherSuite, edit func(*KeyPackage)) *testKeyPackage {
	t.Helper()
	s, err := cs.Suite()
	if err != nil {
		t.Fatal(err)
	}
	priv, pub, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	now := uint64(testClock.Unix())
	kp := &KeyPackage{
		Version:     ProtocolVersionMLS10,
		CipherSuite: cs,
		InitKey:     kpRandBytes(32),
		LeafNode: LeafNode{
			EncryptionKey: kpRandBytes(32),
			SignatureKey:  pub,
			Credential:    Credential{CredentialType: CredentialTypeBasic, Identity: []byte("mimi://example.com/u/alice")},
			Capabilities: Capabilities{
				Versions:     []ProtocolVersion{ProtocolVersionMLS10},
				CipherSuites: []CipherSuite{cs, 0x2a2a},
				Extensions:   []ExtensionType{0x3a3a, 0xf001},
				Proposals:    []ProposalType{0x4a4a},
				Credentials:  []CredentialType{CredentialTypeBasic, 0x5a5a},
			},
			LeafNodeSource: LeafNodeSourceKeyPackage,
			Lifetime:       Lifetime{NotBefore: now - 3600, NotAfter: now + 90*24*3600},
			Extensions:     Extensions{{ExtensionType: ExtensionTypeApplicationID, ExtensionData: []byte{3, 'a', 'p', 'p'}}},
		},
		Extensions: Extensions{{ExtensionType: 0xf001, ExtensionData: []byte{}}},
	}
	if edit != nil {
		edit(kp)
	}
	signTestKeyPackage(t, s, priv, kp)
	return &testKeyPackage{kp: kp, priv: priv}
}

// signTestKeyPackage signs kp's LeafNode and then kp.
func signTestKeyPackage(t testing.TB, s *Suite, priv []byte, kp *KeyPackage) {
	t.Helper()
	tbs, err := kp.LeafNode.TBS(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if kp.LeafNode.Signature, err = s.SignWithLabel(priv, LeafNodeTBSLabel, tbs); err != nil {
		t.Fatal(err)
	}
	if tbs, err = kp.TBS(); err != nil {
		t.Fatal(err)
	}
	if kp.Signature, err = s.SignWithLabel(priv, KeyPackageTBSLabel, tbs); err != nil {
		t.Fatal(err)
	}
}

// reparse round-trips kp through its encoding, as a DS receives it.
func reparse(t testing.TB, kp *KeyPackage) *KeyPackage {
	t.Helper()
	b, err := kp.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeKeyPackage(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestValidateKeyPackageAllSuites(t *testing.T) {
	for cs := CipherSuite(1); cs <= 7; cs++ {
		t.Run(cs.String(), func(t *testing.T) {
			tk := newTestKeyPackage(t, cs, nil)
			kp := reparse(t, tk.kp)
			info, err := ValidateKeyPackage(kp, testClock)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := kp.Ref()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(info.Ref, ref) {
				t.Errorf("info ref %x, Ref() %x", info.Ref, ref)
			}
			s, _ := cs.Suite()
			if len(ref) != s.HashSize() {
				t.Errorf("ref of %d bytes, want %d", len(ref), s.HashSize())
			}
			if string(info.Identity) != "mimi://example.com/u/alice" || info.CipherSuite != cs {
				t.Errorf("info %+v", info)
			}
			if !info.NotAfter().After(testClock) || info.NotBefore().After(testClock) {
				t.Errorf("lifetime %v..%v", info.NotBefore(), info.NotAfter())
			}
		})
	}
}

// TestValidateKeyPackageBad gives each §10.1 failure its own case.
func TestValidateKeyPackageBad(t *testing.T) {
	cases := []struct {
		name string
		edit func(*KeyPackage)     // before signing
		post func(*testKeyPackage) // after signing
		now  time.Time             // zero: testClock
		want error
	}{
		{name: "bad KeyPackage signature", post: func(tk *testKeyPackage) { tk.kp.Signature[5] ^= 1 },
			want: ErrKeyPackageSignature},
		{name: "bad LeafNode signature", post: func(tk *testKeyPackage) { tk.kp.LeafNode.Signature[5] ^= 1 },
			want: ErrLeafNodeSignature},
		{name: "KeyPackage signed by another key", post: func(tk *testKeyPackage) {
			s, _ := tk.kp.CipherSuite.Suite()
			other, _, _ := s.GenerateSignatureKey()
			tbs, _ := tk.kp.TBS()
			tk.kp.Signature, _ = s.SignWithLabel(other, KeyPackageTBSLabel, tbs)
		}, want: ErrKeyPackageSignature},
		{name: "signature with the wrong label", post: func(tk *testKeyPackage) {
			s, _ := tk.kp.CipherSuite.Suite()
			tbs, _ := tk.kp.TBS()
			tk.kp.Signature, _ = s.SignWithLabel(tk.priv, LeafNodeTBSLabel, tbs)
		}, want: ErrKeyPackageSignature},
		{name: "expired", now: testClock.Add(91 * 24 * time.Hour), want: ErrKeyPackageExpired},
		{name: "not yet valid", now: testClock.Add(-2 * time.Hour), want: ErrKeyPackageNotYetValid},
		{name: "init_key equals encryption_key",
			edit: func(kp *KeyPackage) { kp.InitKey = kp.LeafNode.EncryptionKey }, want: ErrInitKeyIsEncryptionKey},
		{name: "leaf_node_source update",
			edit: func(kp *KeyPackage) { kp.LeafNode.LeafNodeSource = LeafNodeSourceUpdate }, want: ErrLeafNodeSource},
		{name: "leaf_node_source commit", edit: func(kp *KeyPackage) {
			kp.LeafNode.LeafNodeSource = LeafNodeSourceCommit
			kp.LeafNode.ParentHash = kpRandBytes(32)
		}, want: ErrLeafNodeSource},
		{name: "capabilities without the credential type",
			edit: func(kp *KeyPackage) { kp.LeafNode.Capabilities.Credentials = []CredentialType{CredentialTypeX509} },
			want: ErrCredentialNotSupported},
		{name: "leaf extension not in capabilities", edit: func(kp *KeyPackage) {
			kp.LeafNode.Extensions = append(kp.LeafNode.Extensions, Extension{ExtensionType: 0xf0f0})
		}, want: ErrExtensionNotSupported},
		{name: "KeyPackage extension not in capabilities",
			edit: func(kp *KeyPackage) { kp.Extensions = Extensions{{ExtensionType: 0xf002}} },
			want: ErrExtensionNotSupported},
		{name: "version not mls10", edit: func(kp *KeyPackage) { kp.Version = 2 }, want: ErrKeyPackageVersion},
		{name: "unknown cipher suite", post: func(tk *testKeyPackage) { tk.kp.CipherSuite = 0x0a0a },
			want: ErrUnsupportedCipherSuite},
		{name: "malformed signature key", post: func(tk *testKeyPackage) {
			tk.kp.LeafNode.SignatureKey = tk.kp.LeafNode.SignatureKey[:5]
		}, want: ErrBadSignatureKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tk := newTestKeyPackage(t, MLS128DHKEMX25519AES128GCMSHA256Ed25519, c.edit)
			if c.post != nil {
				c.post(tk)
			}
			now := c.now
			if now.IsZero() {
				now = testClock
			}
			info, err := ValidateKeyPackage(reparse(t, tk.kp), now)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
			if info != nil {
				t.Fatal("info returned with an error")
			}
			t.Log(err)
		})
	}
}

// TestValidateKeyPackageECDSABadSignature covers a non-EdDSA suite's failure.
func TestValidateKeyPackageECDSABadSignature(t *testing.T) {
	tk := newTestKeyPackage(t, MLS128DHKEMP256AES128GCMSHA256P256, nil)
	tk.kp.Signature[len(tk.kp.Signature)-3] ^= 0x40
	if _, err := ValidateKeyPackage(reparse(t, tk.kp), testClock); !errors.Is(err, ErrKeyPackageSignature) {
		t.Fatalf("got %v", err)
	}
}

// TestValidateKeyPackageVectors validates the KeyPackages of the working
// group's welcome and passive-client vectors, which real implementations
// generated, at the start of their lifetime.
func TestValidateKeyPackageVectors(t *testing.T) {
	for _, file := range []string{"welcome.json", "passive-client-welcome.json",
		"passive-client-handling-commit.json", "passive-client-random.json"} {
		var cases []struct {
			CipherSuite CipherSuite `json:"cipher_suite"`
			KeyPackage  hexBytes    `json:"key_package"`
			Welcome     hexBytes    `json:"welcome"`
		}
		loadCodecVectors(t, file, &cases)
		if len(cases) == 0 {
			t.Fatalf("%s: no cases", file)
		}
		suites := map[CipherSuite]int{}
		for i, c := range cases {
			kp, err := DecodeKeyPackageMessage(c.KeyPackage)
			if err != nil {
				t.Fatalf("%s %d: %v", file, i, err)
			}
			if kp.CipherSuite != c.CipherSuite {
				t.Errorf("%s %d: suite %s, want %s", file, i, kp.CipherSuite, c.CipherSuite)
			}
			info, err := ValidateKeyPackage(kp, unixTime(kp.LeafNode.Lifetime.NotBefore))
			if err != nil {
				t.Errorf("%s %d (%s): %v", file, i, c.CipherSuite, err)
				continue
			}
			suites[c.CipherSuite]++
			m, err := DecodeMLSMessage(c.Welcome)
			if err != nil || m.Welcome == nil {
				t.Errorf("%s %d: welcome: %v", file, i, err)
				continue
			}
			if m.Welcome.CipherSuite != kp.CipherSuite {
				t.Errorf("%s %d: welcome suite %s", file, i, m.Welcome.CipherSuite)
			}
			wi, err := InspectWelcome(c.Welcome)
			if err != nil {
				t.Errorf("%s %d: inspect welcome: %v", file, i, err)
				continue
			}
			found := false
			for _, ref := range wi.KeyPackageRefs {
				found = found || bytes.Equal(ref, info.Ref)
			}
			if !found {
				t.Errorf("%s %d: welcome is not for the KeyPackage %x", file, i, info.Ref)
			}
		}
		t.Logf("%s: %d KeyPackages valid and found in their Welcome, by suite %v", file, len(cases), suites)
	}
}

func TestDecodeKeyPackageMessage(t *testing.T) {
	tk := newTestKeyPackage(t, MLS256DHKEMP521AES256GCMSHA512P521, nil)
	bare, err := tk.kp.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	framed, err := (&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatKeyPackage, KeyPackage: tk.kp}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"bare": bare, "framed": framed} {
		kp, err := DecodeKeyPackageMessage(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := ValidateKeyPackage(kp, testClock); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	wrongVersion := bytes.Clone(framed)
	wrongVersion[5] = 2 // KeyPackage.version
	if _, err := DecodeKeyPackageMessage(wrongVersion); err == nil {
		t.Fatal("accepted a KeyPackage whose version differs from the MLSMessage's")
	}
	gi, _ := (&MLSMessage{Version: ProtocolVersionMLS10, WireFormat: WireFormatGroupInfo, GroupInfo: &GroupInfo{}}).Marshal()
	if _, err := DecodeKeyPackageMessage(gi); !errors.Is(err, ErrNotKeyPackage) {
		t.Fatalf("GroupInfo: got %v, want ErrNotKeyPackage", err)
	}
}
