// Package fedcert makes the certificates of a test federation with the standard
// library's crypto/x509: a CA, and for each provider a certificate whose DNS SAN is
// its domain, good for both sides of a mutually authenticated TLS link. It is what
// `mimids cert ca` and `mimids cert issue` run, and what tests use to build
// federations on loopback. Keys are ECDSA P-256 (the default) or Ed25519.
package fedcert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"
)

// KeyType names a key algorithm.
type KeyType string

const (
	P256    KeyType = "p256"    // ECDSA on P-256 with SHA-256
	Ed25519 KeyType = "ed25519" // Ed25519
)

// File names in a CA directory and in an issue directory.
const (
	CACertFile = "ca.pem"
	CAKeyFile  = "ca-key.pem"
)

// CertFile and KeyFile are the files `Write` makes for a domain's certificate.
func CertFile(domain string) string { return domain + ".pem" }
func KeyFile(domain string) string  { return domain + "-key.pem" }

// Options tune a certificate. The zero value is a P-256 key valid from an hour ago
// for a year (a CA: ten years).
type Options struct {
	Key       KeyType
	NotBefore time.Time
	NotAfter  time.Time
}

func (o Options) window(def time.Duration) (time.Time, time.Time) {
	nb, na := o.NotBefore, o.NotAfter
	if nb.IsZero() {
		nb = time.Now().Add(-time.Hour).Truncate(time.Second)
	}
	if na.IsZero() {
		na = nb.Add(def)
	}
	return nb, na
}

// CA is a certificate authority of a test federation.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Issued is a certificate with its private key, PEM-encoded.
type Issued struct {
	CertPEM []byte
	KeyPEM  []byte
	DER     []byte // the certificate
}

// TLS returns the certificate for a tls.Config.
func (i Issued) TLS() (tls.Certificate, error) { return tls.X509KeyPair(i.CertPEM, i.KeyPEM) }

// Pin is the hex SHA-256 of the certificate: what `mimids peer add -pin` takes.
func (i Issued) Pin() string { return Pin(i.DER) }

// Pin is the lower-case hex SHA-256 of a DER certificate.
func Pin(der []byte) string {
	h := sha256.Sum256(der)
	return hex.EncodeToString(h[:])
}

// NewCA makes a CA named name.
func NewCA(name string, o Options) (*CA, error) {
	key, err := newKey(o.Key)
	if err != nil {
		return nil, err
	}
	nb, na := o.window(10 * 365 * 24 * time.Hour)
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name, Organization: []string{"mimids test federation"}},
		NotBefore:             nb,
		NotAfter:              na,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	issued, err := sign(tmpl, tmpl, key.Public(), key, key)
	if err != nil {
		return nil, fmt.Errorf("fedcert: new CA: %w", err)
	}
	cert, err := x509.ParseCertificate(issued.DER)
	if err != nil {
		return nil, fmt.Errorf("fedcert: new CA: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// CertPEM is the CA's certificate: the bundle a peer's `-ca` file holds.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// Issue makes a certificate for domain (its one DNS SAN and common name), good for
// TLS servers and clients, signed by ca.
func (ca *CA) Issue(domain string, o Options) (Issued, error) {
	key, err := newKey(o.Key)
	if err != nil {
		return Issued{}, err
	}
	nb, na := o.window(365 * 24 * time.Hour)
	tmpl := leafTemplate(domain, nb, na)
	out, err := sign(tmpl, ca.Cert, key.Public(), ca.Key, key)
	if err != nil {
		return Issued{}, fmt.Errorf("fedcert: issue %s: %w", domain, err)
	}
	return out, nil
}

// SelfSigned makes a self-signed certificate for domain, for a peer that is pinned
// (`peer add -pin`) rather than proven by a CA.
func SelfSigned(domain string, o Options) (Issued, error) {
	key, err := newKey(o.Key)
	if err != nil {
		return Issued{}, err
	}
	nb, na := o.window(365 * 24 * time.Hour)
	tmpl := leafTemplate(domain, nb, na)
	out, err := sign(tmpl, tmpl, key.Public(), key, key)
	if err != nil {
		return Issued{}, fmt.Errorf("fedcert: self-signed %s: %w", domain, err)
	}
	return out, nil
}

func leafTemplate(domain string, nb, na time.Time) *x509.Certificate {
	return &x509.Certificate{
		Subject:     pkix.Name{CommonName: domain},
		DNSNames:    []string{domain},
		NotBefore:   nb,
		NotAfter:    na,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
}

func newKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case "", P256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("fedcert: key type %q is not p256 or ed25519", t)
}

// sign makes the certificate tmpl for pub, signed by signer as parent, and encodes
// it with key (the new certificate's own private key).
func sign(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer, key crypto.Signer) (Issued, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return Issued{}, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return Issued{}, err
	}
	pk, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Issued{}, err
	}
	return Issued{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}),
		DER:     der,
	}, nil
}

// WriteCA writes the CA's certificate and key into dir (ca.pem, ca-key.pem; the key
// readable by the owner only). It refuses to overwrite an existing CA.
func (ca *CA) WriteCA(dir string) error {
	pk, err := x509.MarshalPKCS8PrivateKey(ca.Key)
	if err != nil {
		return fmt.Errorf("fedcert: write CA: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk})
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("fedcert: write CA: %w", err)
	}
	for _, f := range []struct {
		name string
		b    []byte
		mode os.FileMode
	}{{CAKeyFile, keyPEM, 0o600}, {CACertFile, ca.CertPEM(), 0o644}} {
		if err := writeNew(filepath.Join(dir, f.name), f.b, f.mode); err != nil {
			return fmt.Errorf("fedcert: write CA: %w", err)
		}
	}
	return nil
}

// LoadCA reads a CA written by WriteCA.
func LoadCA(dir string) (*CA, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("fedcert: load CA: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("fedcert: load CA: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("fedcert: load CA: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("fedcert: load CA: %w", err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || !cert.IsCA {
		return nil, errors.New("fedcert: load CA: not a CA certificate with a signing key")
	}
	return &CA{Cert: cert, Key: signer}, nil
}

// Write writes an issued certificate and its key into dir as DOMAIN.pem and
// DOMAIN-key.pem (the key readable by the owner only), refusing to overwrite.
func (i Issued) Write(dir, domain string) (certPath, keyPath string, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("fedcert: write %s: %w", domain, err)
	}
	certPath, keyPath = filepath.Join(dir, CertFile(domain)), filepath.Join(dir, KeyFile(domain))
	if err := writeNew(keyPath, i.KeyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("fedcert: write %s: %w", domain, err)
	}
	if err := writeNew(certPath, i.CertPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("fedcert: write %s: %w", domain, err)
	}
	return certPath, keyPath, nil
}

func writeNew(path string, b []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
