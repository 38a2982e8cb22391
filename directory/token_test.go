package directory

import (
	"errors"
	"testing"
	"time"
)

// FuzzVerifyToken: no input makes the token decoder panic, and a token it accepts is
// exactly the one the fields and the secret mint.
func FuzzVerifyToken(f *testing.F) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	secrets := map[int64]DiscoverySecret{1: {ID: 1, Secret: secret}}
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	f.Add(mintToken(secret, DiscoveryToken{ID: 7, SecretID: 1, Policy: TokenPerRequester, UserID: 3, IssuedAt: at, ExpiresAt: at.Add(time.Hour)}))
	f.Add(mintToken(secret, DiscoveryToken{ID: 9, SecretID: 1, Policy: TokenShared, IssuedAt: at}))
	f.Add("mbt_")
	f.Add("mbt_" + string(make([]byte, 94)))
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := verifyToken(s, secrets)
		if err != nil {
			return
		}
		if again := mintToken(secret, tok); again != s {
			t.Fatalf("accepted %q, which mints as %q", s, again)
		}
	})
}

func TestTokenRoundTrip(t *testing.T) {
	secret := NewDiscoverySecret()
	at := time.Date(2026, 11, 27, 12, 0, 0, 123e6, time.UTC)
	want := DiscoveryToken{ID: newTokenID(), SecretID: 42, Policy: TokenPerRequester, UserID: 1 << 40, IssuedAt: at, ExpiresAt: at.Add(720 * time.Hour)}
	s := mintToken(secret, want)
	if len(s) != tokenLen || tokenLen != 98 {
		t.Fatalf("token of %d bytes (tokenLen %d)", len(s), tokenLen)
	}
	got, err := verifyToken(s, map[int64]DiscoverySecret{42: {ID: 42, Secret: secret}})
	if err != nil || got != want {
		t.Fatalf("verifyToken = %+v, %v; want %+v", got, err, want)
	}
	if _, err := verifyToken(s, map[int64]DiscoverySecret{42: {ID: 42, Secret: secret, RetiredAt: at}}); !errors.Is(err, ErrTokenRevoked) {
		t.Fatalf("retired secret: %v", err)
	}
}
