package fedcert

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestIssueAndLoad(t *testing.T) {
	for _, key := range []KeyType{P256, Ed25519} {
		t.Run(string(key), func(t *testing.T) {
			dir := t.TempDir()
			ca, err := NewCA("test", Options{Key: key})
			if err != nil {
				t.Fatal(err)
			}
			if err := ca.WriteCA(dir); err != nil {
				t.Fatal(err)
			}
			if err := ca.WriteCA(dir); err == nil {
				t.Fatal("WriteCA overwrote an existing CA")
			}
			if fi, _ := os.Stat(filepath.Join(dir, CAKeyFile)); fi.Mode().Perm() != 0o600 {
				t.Fatalf("CA key mode %v", fi.Mode())
			}
			loaded, err := LoadCA(dir)
			if err != nil {
				t.Fatal(err)
			}
			iss, err := loaded.Issue("b.example", Options{Key: key})
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := iss.Write(dir, "b.example"); err != nil {
				t.Fatal(err)
			}
			if _, err := iss.TLS(); err != nil {
				t.Fatal(err)
			}
			cert, _ := x509.ParseCertificate(iss.DER)
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(ca.CertPEM())
			for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
				if _, err := cert.Verify(x509.VerifyOptions{DNSName: "b.example", Roots: roots, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
					t.Fatalf("verify for %v: %v", usage, err)
				}
			}
			if _, err := cert.Verify(x509.VerifyOptions{DNSName: "c.example", Roots: roots}); err == nil {
				t.Fatal("verified for another domain")
			}
			b, _ := pem.Decode(iss.CertPEM)
			if Pin(b.Bytes) != iss.Pin() || len(iss.Pin()) != 64 {
				t.Fatal("pin")
			}
		})
	}
}

func TestSelfSignedAndWindow(t *testing.T) {
	nb := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, err := SelfSigned("a.example", Options{NotBefore: nb, NotAfter: nb.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(s.DER)
	if !c.NotBefore.Equal(nb) || !c.NotAfter.Equal(nb.Add(time.Hour)) || c.DNSNames[0] != "a.example" || c.IsCA {
		t.Fatalf("self-signed %v %v %v", c.NotBefore, c.NotAfter, c.DNSNames)
	}
	if _, err := NewCA("x", Options{Key: "rsa"}); err == nil {
		t.Fatal("unknown key type accepted")
	}
}
