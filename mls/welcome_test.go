package mls

import (
	"bytes"
	"errors"
	"testing"
)

func TestInspectWelcome(t *testing.T) {
	enc := syntheticWelcome(t, 100)
	info, err := InspectWelcome(enc)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := DecodeMLSMessage(enc)
	if info.CipherSuite != 1 || len(info.KeyPackageRefs) != 100 {
		t.Fatalf("info %v, %d refs", info.CipherSuite, len(info.KeyPackageRefs))
	}
	for i, ref := range info.KeyPackageRefs {
		if !bytes.Equal(ref, m.Welcome.Secrets[i].NewMember) {
			t.Fatalf("ref %d differs", i)
		}
	}
	// Refs are copies: changing the input does not change them.
	before := bytes.Clone(info.KeyPackageRefs[0])
	for i := range enc {
		enc[i] = 0
	}
	if !bytes.Equal(info.KeyPackageRefs[0], before) {
		t.Fatal("refs alias the input")
	}
}

func TestInspectWelcomeBad(t *testing.T) {
	ref := bytes.Repeat([]byte{1}, 32)
	mk := func(w *Welcome) []byte {
		b, err := (&MLSMessage{Version: 1, WireFormat: WireFormatWelcome, Welcome: w}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	secret := func(r []byte) EncryptedGroupSecrets { return EncryptedGroupSecrets{NewMember: r} }
	gi, _ := (&MLSMessage{Version: 1, WireFormat: WireFormatGroupInfo, GroupInfo: &GroupInfo{}}).Marshal()
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"not a welcome", gi, ErrNotWelcome},
		{"unknown suite", mk(&Welcome{CipherSuite: 0x0a0a, Secrets: []EncryptedGroupSecrets{secret(ref)}}), ErrUnsupportedCipherSuite},
		{"short ref", mk(&Welcome{CipherSuite: 1, Secrets: []EncryptedGroupSecrets{secret(ref[:31])}}), ErrBadKeyPackageRef},
		{"suite 4 ref of 32 bytes", mk(&Welcome{CipherSuite: 4, Secrets: []EncryptedGroupSecrets{secret(ref)}}), ErrBadKeyPackageRef},
		{"duplicate ref", mk(&Welcome{CipherSuite: 1, Secrets: []EncryptedGroupSecrets{secret(ref), secret(ref)}}), ErrDuplicateKeyPackageRef},
		{"truncated", mk(&Welcome{CipherSuite: 1, Secrets: []EncryptedGroupSecrets{secret(ref)}})[:20], ErrTruncated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := InspectWelcome(c.in); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}
