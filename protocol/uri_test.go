package protocol_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/mimids/mimids/protocol"
)

func TestUserOf(t *testing.T) {
	for in, want := range map[string]string{
		"mimi://a.example/d/alice/phone": "mimi://a.example/u/alice",
		"mimi://a.example/u/alice":       "mimi://a.example/u/alice",
		"mimi://a.example/d/alice":       "mimi://a.example/d/alice",
		"mimi://a.example/d//x":          "mimi://a.example/d//x",
		"alice":                          "alice",
		"mimi://a.example":               "mimi://a.example",
		"mimi://a.example/d/Alice/phone": "mimi://a.example/d/Alice/phone", // not a valid name
	} {
		if got := protocol.UserOf(in); got != want {
			t.Errorf("UserOf(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseURI(t *testing.T) {
	for _, tc := range []struct{ in, domain, user, client string }{
		{"mimi://a.example/u/alice", "a.example", "alice", ""},
		{"mimi://a.example/d/alice/phone", "a.example", "alice", "phone"},
	} {
		d, u, c, err := protocol.ParseURI(tc.in)
		if err != nil || d != tc.domain || u != tc.user || c != tc.client {
			t.Errorf("ParseURI(%q) = %q %q %q %v", tc.in, d, u, c, err)
		}
		if back := protocol.UserURI(d, u); c == "" && back != tc.in {
			t.Errorf("UserURI round trip %q", back)
		}
		if back := protocol.ClientURI(d, u, c); c != "" && back != tc.in {
			t.Errorf("ClientURI round trip %q", back)
		}
	}
	for _, bad := range []string{"", "alice", "mimi://", "mimi://a.example/u/", "mimi://a.example/x/alice",
		"mimi://a.example/u/Alice", "mimi:///u/alice", "mimi://a.example/d/alice", "mimi://a.example/u/alice/x", "https://a.example/u/alice"} {
		if _, _, _, err := protocol.ParseURI(bad); !errors.Is(err, protocol.ErrBadURI) {
			t.Errorf("ParseURI(%q): %v, want ErrBadURI", bad, err)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "alice", "0day", "a.b_c-d", strings.Repeat("x", 64)} {
		if err := protocol.ValidName(ok); err != nil {
			t.Errorf("ValidName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".a", "_a", "-a", "Alice", "a b", "a/b", "é", strings.Repeat("x", 65)} {
		if err := protocol.ValidName(bad); !errors.Is(err, protocol.ErrInvalidName) {
			t.Errorf("ValidName(%q): %v, want ErrInvalidName", bad, err)
		}
	}
}

func BenchmarkUserOf(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		protocol.UserOf("mimi://a.example/u/alice")
	}
}
