package mls

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// loadTSMLS reads a ts-mls fixture of testdata/tsmls; a missing file fails.
func loadTSMLS(t testing.TB, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "tsmls", name))
	if err != nil {
		t.Fatalf("ts-mls fixture %s: %v", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("ts-mls fixture %s: %v", name, err)
	}
}

// tsKeyPackage is a KeyPackage entry of the ts-mls fixtures.
type tsKeyPackage struct {
	Identity       string   `json:"identity"`
	CipherSuite    uint16   `json:"cipher_suite"`
	KeyPackage     hexBytes `json:"key_package"`
	KeyPackageBare hexBytes `json:"key_package_bare"`
	KeyPackageRef  hexBytes `json:"key_package_ref"`
	Lifetime       struct {
		NotBefore uint64 `json:"not_before"`
		NotAfter  uint64 `json:"not_after"`
	} `json:"lifetime"`
	Reason string `json:"reason"`
}

// checkTSKeyPackage validates a ts-mls KeyPackage, framed and bare, at
// time at and compares ref, identity, suite and lifetime with the fixture.
func checkTSKeyPackage(t *testing.T, k *tsKeyPackage, at uint64) {
	t.Helper()
	for _, b := range [][]byte{k.KeyPackage, k.KeyPackageBare} {
		kp, err := DecodeKeyPackageMessage(b)
		if err != nil {
			t.Fatalf("%s: %v", k.Identity, err)
		}
		info, err := ValidateKeyPackage(kp, unixTime(at))
		if err != nil {
			t.Fatalf("%s: %v", k.Identity, err)
		}
		if !bytes.Equal(info.Ref, k.KeyPackageRef) || string(info.Identity) != k.Identity ||
			uint16(info.CipherSuite) != k.CipherSuite ||
			(k.Lifetime.NotAfter != 0 && info.Lifetime != Lifetime(k.Lifetime)) {
			t.Fatalf("%s: info %+v differs from the fixture", k.Identity, info)
		}
	}
}

// TestTSMLSKeyPackages validates the KeyPackages ts-mls made (GREASE in
// capabilities and extensions included), and checks that each invalid one
// fails for its stated reason.
func TestTSMLSKeyPackages(t *testing.T) {
	var f struct {
		ValidationTime uint64         `json:"validation_time"`
		KeyPackages    []tsKeyPackage `json:"key_packages"`
		Invalid        []tsKeyPackage `json:"invalid_key_packages"`
	}
	loadTSMLS(t, "keypackages.json", &f)
	if len(f.KeyPackages) == 0 || len(f.Invalid) == 0 {
		t.Fatal("keypackages.json: no KeyPackages")
	}
	for i := range f.KeyPackages {
		checkTSKeyPackage(t, &f.KeyPackages[i], f.ValidationTime)
	}
	reasons := map[string]error{
		"expired":                             ErrKeyPackageExpired,
		"not_yet_valid":                       ErrKeyPackageNotYetValid,
		"bad_key_package_signature":           ErrKeyPackageSignature,
		"bad_leaf_node_signature":             ErrLeafNodeSignature,
		"init_key_equals_encryption_key":      ErrInitKeyIsEncryptionKey,
		"credential_type_not_in_capabilities": ErrCredentialNotSupported,
		"leaf_extension_not_in_capabilities":  ErrExtensionNotSupported,
	}
	for _, k := range f.Invalid {
		t.Run(k.Reason, func(t *testing.T) {
			want, ok := reasons[k.Reason]
			if !ok {
				t.Fatalf("unsupported reason %q", k.Reason)
			}
			kp, err := DecodeKeyPackageMessage(k.KeyPackage)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ValidateKeyPackage(kp, unixTime(f.ValidationTime)); !errors.Is(err, want) {
				t.Fatalf("got %v, want %v", err, want)
			}
		})
	}
	t.Logf("keypackages.json: %d valid, %d invalid", len(f.KeyPackages), len(f.Invalid))
}

// TestTSMLSSuiteKeyPackages validates ts-mls's KeyPackages of suites 1-7.
func TestTSMLSSuiteKeyPackages(t *testing.T) {
	var f struct {
		GeneratedAt uint64 `json:"generated_at"`
		Suites      []struct {
			CipherSuite CipherSuite    `json:"cipher_suite"`
			KeyPackages []tsKeyPackage `json:"key_packages"`
		} `json:"suites"`
	}
	loadTSMLS(t, "suites.json", &f)
	seen := map[CipherSuite]bool{}
	for _, s := range f.Suites {
		t.Run(s.CipherSuite.String(), func(t *testing.T) {
			if len(s.KeyPackages) == 0 {
				t.Fatal("no KeyPackages")
			}
			for i := range s.KeyPackages {
				checkTSKeyPackage(t, &s.KeyPackages[i], f.GeneratedAt)
			}
			seen[s.CipherSuite] = true
		})
	}
	for cs := CipherSuite(1); cs <= 7; cs++ {
		if !seen[cs] {
			t.Errorf("suites.json lacks suite %d", cs)
		}
	}
}
