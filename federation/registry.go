package federation

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

var dnsName = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// checkDomain accepts a lower-case DNS name: what a certificate's DNS SAN can prove.
func checkDomain(d string) error {
	if len(d) > 253 || !dnsName.MatchString(d) {
		return fmt.Errorf("%q is not a lower-case DNS name", d)
	}
	return nil
}

// checkURL accepts wss://host:port with no path, query or user.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "wss" || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("URL %q must be wss://host:port", s)
	}
	return nil
}

// ParsePin reads a certificate's SHA-256 in hex (64 digits; colons allowed between
// bytes, as openssl prints it).
func ParsePin(s string) ([]byte, error) {
	b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(s), ":", ""))
	if err != nil || len(b) != 32 {
		return nil, fmt.Errorf("%w: pin %q is not a SHA-256 in hex (64 digits)", ErrBadPeer, s)
	}
	return b, nil
}

// ParseCA reads a PEM bundle of CA certificates.
func ParseCA(pemBytes []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := pemBytes; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: CA bundle: %v", ErrBadPeer, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: CA bundle holds no PEM certificate", ErrBadPeer)
	}
	return out, nil
}

// CheckPeer reports what makes p unusable as an allow-list entry of the provider
// self.
func CheckPeer(self string, p Peer) error {
	var errs []error
	if err := checkDomain(p.Domain); err != nil {
		errs = append(errs, err)
	} else if p.Domain == self {
		errs = append(errs, fmt.Errorf("%s is this provider's own domain", p.Domain))
	}
	if err := checkURL(p.URL); err != nil {
		errs = append(errs, err)
	}
	switch {
	case (p.CA == nil) == (p.Pin == nil):
		errs = append(errs, errors.New("exactly one of a CA bundle and a pin proves the domain"))
	case p.CA != nil:
		if _, err := ParseCA(p.CA); err != nil {
			errs = append(errs, err)
		}
	case len(p.Pin) != 32:
		errs = append(errs, errors.New("a pin is a SHA-256: 32 bytes"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w %s: %w", ErrBadPeer, p.Domain, err)
	}
	return nil
}

// AddPeer checks p and puts it on the allow-list of the provider self: a new peer
// gets a fresh outbound stream; a known one keeps its stream and queues and takes
// p's URL and trust. A running server picks the change up within
// Config.PeerRefresh (Links.Refresh at once, in process).
func AddPeer(ctx context.Context, s PeerStore, self string, p Peer) (Peer, error) {
	p.Domain = strings.ToLower(p.Domain)
	if err := CheckPeer(self, p); err != nil {
		return Peer{}, err
	}
	if old, err := s.Peer(ctx, p.Domain); err == nil {
		p.Stream, p.AddedAt = old.Stream, old.AddedAt
	} else if errors.Is(err, ErrUnknownPeer) {
		p.Stream, p.AddedAt = newStream(), time.Now()
	} else {
		return Peer{}, fmt.Errorf("federation: add peer: %w", err)
	}
	if err := s.PutPeer(ctx, p); err != nil {
		return Peer{}, fmt.Errorf("federation: add peer: %w", err)
	}
	return s.Peer(ctx, p.Domain)
}

// newStream returns a random stream id, never 0.
func newStream() uint64 {
	var b [8]byte
	for {
		rand.Read(b[:])
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}

func formatStream(s uint64) string { return fmt.Sprintf("%016x", s) }

func parseStream(s string) (uint64, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 8 || s != strings.ToLower(s) {
		return 0, fmt.Errorf("stream %q is not 16 lower-case hex digits", s)
	}
	v := binary.BigEndian.Uint64(b)
	if v == 0 {
		return 0, errors.New("stream 0")
	}
	return v, nil
}
