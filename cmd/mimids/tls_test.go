package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mimids/mimids/client"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns a pool
// that trusts it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "a.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"a.example"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServeTLS runs mimids serve with a certificate made here and connects a client
// over wss, trusting only that certificate.
func TestServeTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	cfg := map[string]any{"domain": "a.example", "tls": map[string]string{"cert_file": certFile, "key_file": keyFile}}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(dir, "mimids.json")
	os.WriteFile(cfgFile, b, 0o600)
	addr := freeAddr(t)
	startServer(t, filepath.Join(dir, "data"), addr, "-config", cfgFile)

	out, err := runCLI(t, "client", "add", "-data", filepath.Join(dir, "data"), "-domain", "a.example", "-create-user", "alice", "phone")
	if err != nil {
		t.Fatalf("client add: %v\n%s", err, out)
	}
	token := ""
	for _, line := range splitLines(out) {
		if len(line) > 8 && line[:7] == "token: " {
			token = line[8:]
		}
	}
	if token == "" {
		t.Fatalf("no token in %q", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{URL: "wss://" + addr + "/v1/socket", Token: token,
		TLSConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatalf("dial wss: %v", err)
	}
	defer c.Close(ctx)
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("ping over wss: %v", err)
	}
	// A client that does not trust the certificate is refused.
	if _, err := client.Dial(ctx, client.Config{URL: "wss://" + addr + "/v1/socket", Token: token, MaxReconnectAttempts: 1,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}}); err == nil {
		t.Fatal("an untrusted certificate was accepted")
	}
}

// runCLI runs the mimids binary with args and returns its combined output.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(mimidsBinary(t), args...).CombinedOutput()
	return string(out), err
}

func splitLines(s string) []string { return strings.Split(strings.TrimSpace(s), "\n") }
