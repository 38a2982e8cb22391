package federation

import (
	"errors"
	"strings"
	"testing"

	"github.com/mimids/mimids/federation/fedcert"
)

func TestCheckPeer(t *testing.T) {
	ca, err := fedcert.NewCA("t", fedcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pin := make([]byte, 32)
	tests := []struct {
		name string
		p    Peer
		want string // "" for valid
	}{
		{"ca", Peer{Domain: "b.example", URL: "wss://b.example:8443", CA: ca.CertPEM()}, ""},
		{"pin", Peer{Domain: "b.example", URL: "wss://127.0.0.1:8443/", Pin: pin}, ""},
		{"own domain", Peer{Domain: "a.example", URL: "wss://a:1", Pin: pin}, "own domain"},
		{"upper case", Peer{Domain: "B.example", URL: "wss://b:1", Pin: pin}, "DNS name"},
		{"port in domain", Peer{Domain: "b.example:1", URL: "wss://b:1", Pin: pin}, "DNS name"},
		{"https URL", Peer{Domain: "b.example", URL: "https://b:1", Pin: pin}, "wss://host:port"},
		{"no port", Peer{Domain: "b.example", URL: "wss://b", Pin: pin}, "wss://host:port"},
		{"path", Peer{Domain: "b.example", URL: "wss://b:1/x", Pin: pin}, "wss://host:port"},
		{"both", Peer{Domain: "b.example", URL: "wss://b:1", Pin: pin, CA: ca.CertPEM()}, "exactly one"},
		{"neither", Peer{Domain: "b.example", URL: "wss://b:1"}, "exactly one"},
		{"bad CA", Peer{Domain: "b.example", URL: "wss://b:1", CA: []byte("not pem")}, "no PEM"},
		{"short pin", Peer{Domain: "b.example", URL: "wss://b:1", Pin: pin[:31]}, "32 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckPeer("a.example", tc.p)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrBadPeer) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckPeer = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestParsePinAndStream(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	for _, s := range []string{hex, strings.ToUpper(hex), strings.TrimSuffix(strings.Repeat("ab:", 32), ":")} {
		if p, err := ParsePin(s); err != nil || len(p) != 32 {
			t.Fatalf("ParsePin(%q) = %x, %v", s, p, err)
		}
	}
	for _, s := range []string{"", hex[:62], hex + "00", "zz" + hex[2:]} {
		if _, err := ParsePin(s); !errors.Is(err, ErrBadPeer) {
			t.Fatalf("ParsePin(%q) accepted", s)
		}
	}
	v := newStream()
	if got, err := parseStream(formatStream(v)); err != nil || got != v {
		t.Fatalf("stream round trip %x: %x %v", v, got, err)
	}
	for _, s := range []string{"", "0000000000000000", "00000000000000AB", "123", "000000000000000g"} {
		if _, err := parseStream(s); err == nil {
			t.Fatalf("parseStream(%q) accepted", s)
		}
	}
}
