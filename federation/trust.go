package federation

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrNotProven reports a certificate that proves no allowed peer domain (or not the
// one expected). It ends the TLS handshake.
var ErrNotProven = errors.New("federation: certificate proves no allowed peer domain")

// trustSet is what proves each allowed peer's domain, built from the allow-list.
// It is immutable: a refresh of the allow-list builds a new one.
type trustSet struct {
	byDomain map[string]*trusted
}

type trusted struct {
	peer  Peer
	roots *x509.CertPool // nil when pinned
}

func newTrustSet(self string, peers []Peer) (*trustSet, []error) {
	t := &trustSet{byDomain: make(map[string]*trusted, len(peers))}
	var errs []error
	for _, p := range peers {
		if err := CheckPeer(self, p); err != nil {
			errs = append(errs, err)
			continue
		}
		tr := &trusted{peer: p}
		if p.CA != nil {
			cas, _ := ParseCA(p.CA)
			tr.roots = x509.NewCertPool()
			for _, c := range cas {
				tr.roots.AddCert(c)
			}
		}
		t.byDomain[p.Domain] = tr
	}
	return t, errs
}

// proves reports whether certs (leaf first, as TLS presents them) prove domain, an
// allowed peer, for usage at now: the leaf's SHA-256 is the peer's pin and the leaf
// is within its validity period; or the leaf chains to the peer's CA bundle, names
// domain as a DNS SAN and allows usage.
func (t *trustSet) proves(certs []*x509.Certificate, domain string, usage x509.ExtKeyUsage, now time.Time) error {
	tr := t.byDomain[domain]
	if tr == nil {
		return fmt.Errorf("%w: %s is not on the allow-list", ErrNotProven, domain)
	}
	if len(certs) == 0 {
		return fmt.Errorf("%w: no certificate", ErrNotProven)
	}
	leaf := certs[0]
	if tr.roots == nil {
		sum := sha256.Sum256(leaf.Raw)
		if !bytes.Equal(sum[:], tr.peer.Pin) {
			return fmt.Errorf("%w: the certificate is not the one pinned for %s", ErrNotProven, domain)
		}
		if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
			return fmt.Errorf("%w: the pinned certificate of %s is not valid now", ErrNotProven, domain)
		}
		return nil
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{DNSName: domain, Roots: tr.roots, Intermediates: inter,
		CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrNotProven, domain, err)
	}
	return nil
}

// prove returns the allowed peer domains certs prove for usage: the pinned peers
// whose pin is the leaf's, and the peers with a CA that the leaf names.
func (t *trustSet) prove(certs []*x509.Certificate, usage x509.ExtKeyUsage, now time.Time) []string {
	if len(certs) == 0 {
		return nil
	}
	var out []string
	for d, tr := range t.byDomain {
		if tr.roots != nil && !slices.Contains(certs[0].DNSNames, d) {
			continue
		}
		if t.proves(certs, d, usage, now) == nil {
			out = append(out, d)
		}
	}
	slices.Sort(out)
	return out
}

// serverTLS is the listener's configuration: TLS 1.3 only, a client certificate
// required, and the handshake refused unless that certificate proves an allowed
// peer domain. refused is told why, with the remote address.
func (l *Links) serverTLS() *tls.Config {
	base := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{l.cfg.Certificate},
		ClientAuth:   tls.RequireAnyClientCert,
		NextProtos:   []string{"http/1.1"},
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
			c := base.Clone()
			remote := hello.Conn.RemoteAddr().String()
			c.VerifyConnection = func(cs tls.ConnectionState) error {
				if len(l.trust().prove(cs.PeerCertificates, x509.ExtKeyUsageClientAuth, time.Now())) > 0 {
					return nil
				}
				l.refused(remote, cs.PeerCertificates)
				return ErrNotProven
			}
			return c, nil
		},
	}
}

// clientTLS is a dial's configuration for peer: TLS 1.3 only, our certificate
// offered, and the handshake refused unless the server's certificate proves the
// peer's domain (the URL's host is not what is checked: the allow-list is).
func (l *Links) clientTLS(domain string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{l.cfg.Certificate},
		ServerName:         domain,
		NextProtos:         []string{"http/1.1"},
		InsecureSkipVerify: true, // verified below, against the allow-list
		VerifyConnection: func(cs tls.ConnectionState) error {
			return l.trust().proves(cs.PeerCertificates, domain, x509.ExtKeyUsageServerAuth, time.Now())
		},
	}
}
