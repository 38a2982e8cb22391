package mlstool

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mimids/mimids/mls"
)

// mlsVectors reads an MLS vector file of the shared test data.
func mlsVectors(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "mls", name))
	if err != nil {
		t.Fatalf("vector file %s: %v", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

func runMLS(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = mlsCommand(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func messagesCase(t *testing.T) map[string]string {
	var cases []map[string]string
	mlsVectors(t, "messages.json", &cases)
	return cases[0]
}

func TestMLSDecodeInputs(t *testing.T) {
	c := messagesCase(t)
	commitHex := c["public_message_commit"]
	raw, _ := hex.DecodeString(commitHex)
	dir := t.TempDir()
	rawFile := filepath.Join(dir, "commit.bin")
	hexFile := filepath.Join(dir, "commit.hex")
	os.WriteFile(rawFile, raw, 0o600)
	os.WriteFile(hexFile, []byte(commitHex[:40]+"\n"+commitHex[40:]+"\n"), 0o600)
	cases := []struct {
		name  string
		stdin string
		args  []string
	}{
		{"hex argument", "", []string{"decode", commitHex}},
		{"hex argument with 0x", "", []string{"decode", "0x" + commitHex}},
		{"raw file", "", []string{"decode", "-f", rawFile}},
		{"hex file", "", []string{"decode", "-f", hexFile}},
		{"stdin hex", commitHex + "\n", []string{"decode", "-"}},
		{"stdin raw", string(raw), []string{"decode"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runMLS(t, tc.stdin, tc.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			var v struct {
				Version       string `json:"version"`
				WireFormat    string `json:"wire_format"`
				PublicMessage struct {
					Content struct {
						ContentType string `json:"content_type"`
						Sender      struct {
							SenderType string `json:"sender_type"`
						} `json:"sender"`
					} `json:"content"`
				} `json:"public_message"`
			}
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, out)
			}
			if v.Version != "mls10" || v.WireFormat != "mls_public_message" ||
				v.PublicMessage.Content.ContentType != "commit" || v.PublicMessage.Content.Sender.SenderType == "" {
				t.Fatalf("unexpected output %+v", v)
			}
		})
	}
}

func TestMLSDecodeTypes(t *testing.T) {
	c := messagesCase(t)
	for typ, field := range map[string]string{
		"ratchet_tree":  "ratchet_tree",
		"commit":        "commit",
		"group_secrets": "group_secrets",
		"message":       "mls_welcome",
	} {
		t.Run(typ, func(t *testing.T) {
			code, out, errs := runMLS(t, "", "decode", "-type", typ, c[field])
			if code != 0 || !json.Valid([]byte(out)) {
				t.Fatalf("exit %d: %s", code, errs)
			}
		})
	}
}

func TestMLSDecodeFailures(t *testing.T) {
	c := messagesCase(t)
	cases := []struct {
		name    string
		args    []string
		code    int
		stderrs string
	}{
		{"not hex", []string{"decode", "zz"}, 2, "not hex"},
		{"truncated", []string{"decode", c["public_message_commit"][:100]}, 1, "mls: decode"},
		{"trailing", []string{"decode", c["public_message_commit"] + "00"}, 1, "trailing data"},
		{"unknown wire format", []string{"decode", "00010009"}, 1, "unknown wire format (0x0009)"},
		{"unknown type", []string{"decode", "-type", "nope", "00"}, 2, "unknown -type"},
		{"two inputs", []string{"decode", "00", "00"}, 2, "one input"},
		{"missing file", []string{"decode", "-f", "/nonexistent/x"}, 1, "no such file"},
		{"unknown verb", []string{"frobnicate"}, 2, "unknown verb"},
		{"no verb", nil, 2, "usage"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runMLS(t, "", tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.stderrs) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errs, tc.code, tc.stderrs)
			}
			if out != "" {
				t.Fatalf("stdout %q on failure", out)
			}
		})
	}
}

type kpReport struct {
	Verdict      string `json:"verdict"`
	Error        string `json:"error"`
	Ref          string `json:"ref"`
	CipherSuite  string `json:"cipher_suite"`
	Identity     string `json:"identity"`
	IdentityText string `json:"identity_text"`
	Lifetime     struct {
		NotBefore uint64 `json:"not_before"`
		NotAfter  uint64 `json:"not_after"`
	} `json:"lifetime"`
}

func TestMLSKeyPackage(t *testing.T) {
	var cases []struct {
		CipherSuite int    `json:"cipher_suite"`
		KeyPackage  string `json:"key_package"`
		Welcome     string `json:"welcome"`
	}
	mlsVectors(t, "welcome.json", &cases)
	for _, c := range cases {
		t.Run(strconv.Itoa(c.CipherSuite), func(t *testing.T) {
			raw, _ := hex.DecodeString(c.KeyPackage)
			kp, err := mls.DecodeKeyPackageMessage(raw)
			if err != nil {
				t.Fatal(err)
			}
			nb := strconv.FormatUint(kp.LeafNode.Lifetime.NotBefore, 10)
			code, out, errs := runMLS(t, "", "keypackage", "-now", nb, c.KeyPackage)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			var rep kpReport
			if err := json.Unmarshal([]byte(out), &rep); err != nil {
				t.Fatal(err)
			}
			ref, _ := kp.Ref()
			if rep.Verdict != "valid" || rep.Ref != hex.EncodeToString(ref) ||
				rep.CipherSuite != kp.CipherSuite.String() ||
				rep.Identity != hex.EncodeToString(kp.LeafNode.Credential.Identity) ||
				rep.Lifetime.NotAfter != kp.LeafNode.Lifetime.NotAfter {
				t.Fatalf("report %+v", rep)
			}
			// The Welcome of the same case is for this KeyPackage.
			code, out, _ = runMLS(t, "", "decode", c.Welcome)
			if code != 0 || !strings.Contains(out, `"new_member": "`+rep.Ref+`"`) {
				t.Fatalf("welcome does not list ref %s", rep.Ref)
			}
		})
	}
}

// newMLSKeyPackage builds and signs a suite-1 KeyPackage valid for an
// hour around now, framed in an MLSMessage, as hex.
func newMLSKeyPackage(t *testing.T, now time.Time) string {
	t.Helper()
	s, _ := mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519.Suite()
	priv, pub, err := s.GenerateSignatureKey()
	if err != nil {
		t.Fatal(err)
	}
	kp := &mls.KeyPackage{Version: mls.ProtocolVersionMLS10, CipherSuite: s.ID(), InitKey: bytes.Repeat([]byte{1}, 32),
		LeafNode: mls.LeafNode{
			EncryptionKey: bytes.Repeat([]byte{2}, 32), SignatureKey: pub,
			Credential:     mls.Credential{CredentialType: mls.CredentialTypeBasic, Identity: []byte("mimi://example.com/u/bob")},
			Capabilities:   mls.Capabilities{Versions: []mls.ProtocolVersion{1}, CipherSuites: []mls.CipherSuite{1}, Credentials: []mls.CredentialType{1}},
			LeafNodeSource: mls.LeafNodeSourceKeyPackage,
			Lifetime:       mls.Lifetime{NotBefore: uint64(now.Unix() - 3600), NotAfter: uint64(now.Unix() + 3600)},
		}}
	tbs, _ := kp.LeafNode.TBS(nil, 0)
	kp.LeafNode.Signature, _ = s.SignWithLabel(priv, mls.LeafNodeTBSLabel, tbs)
	tbs, _ = kp.TBS()
	kp.Signature, _ = s.SignWithLabel(priv, mls.KeyPackageTBSLabel, tbs)
	b, err := (&mls.MLSMessage{Version: 1, WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func TestMLSKeyPackageLifetime(t *testing.T) {
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	kpHex := newMLSKeyPackage(t, now)
	code, out, errs := runMLS(t, "", "keypackage", "-now", now.Format(time.RFC3339), kpHex)
	var rep kpReport
	if code != 0 || json.Unmarshal([]byte(out), &rep) != nil || rep.Verdict != "valid" ||
		rep.IdentityText != "mimi://example.com/u/bob" {
		t.Fatalf("valid: exit %d, %q, %+v", code, errs, rep)
	}
	code, out, errs = runMLS(t, "", "keypackage", "-now", now.Add(2*time.Hour).Format(time.RFC3339), kpHex)
	if code != 1 || !strings.Contains(errs, "KeyPackage expired") {
		t.Fatalf("expired: exit %d, stderr %q", code, errs)
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Verdict != "invalid" || !strings.Contains(rep.Error, "expired") {
		t.Fatalf("expired report %+v (%v)", rep, err)
	}
	bad, _ := hex.DecodeString(kpHex)
	bad[len(bad)-1] ^= 1
	code, _, errs = runMLS(t, "", "keypackage", "-now", now.Format(time.RFC3339), hex.EncodeToString(bad))
	if code != 1 || !strings.Contains(errs, "bad KeyPackage signature") {
		t.Fatalf("bad signature: exit %d, stderr %q", code, errs)
	}
}

func TestMLSKeyPackageFailures(t *testing.T) {
	c := messagesCase(t)
	cases := []struct {
		name    string
		args    []string
		code    int
		stderrs string
	}{
		{"not a KeyPackage", []string{"keypackage", c["mls_welcome"]}, 1, "not a KeyPackage"},
		{"truncated", []string{"keypackage", c["mls_key_package"][:60]}, 1, "mls: decode"},
		{"bad -now", []string{"keypackage", "-now", "yesterday", c["mls_key_package"]}, 2, "-now"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runMLS(t, "", tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.stderrs) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errs, tc.code, tc.stderrs)
			}
		})
	}
}
