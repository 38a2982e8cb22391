package directory

// Discovery bearer tokens are MACed (docs/protocol.md §3.2): everything a fetch needs to
// check one is in the token, signed with a provider secret kept once in the store, so
// discovery stores nothing per token issued.
//
//	token = "mbt_" base64url-nopad(body || HMAC-SHA256(secret, tokenMACLabel || body))
//	body  = version(1) || secret_id(uint32) || policy(1) || token_id(uint64)
//	        || user_id(uint64) || issued_at(int64 ms) || expires_at(int64 ms, 0: never)

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"time"
)

const (
	tokenPrefix   = "mbt_"
	tokenVersion  = 1
	tokenBodyLen  = 1 + 4 + 1 + 8 + 8 + 8 + 8
	tokenMACLen   = sha256.Size
	tokenMACLabel = "mimids discovery token v1\x00"
	// SecretSize is the length of a discovery-token secret.
	SecretSize = 32
)

var tokenB64 = base64.RawURLEncoding.Strict() // one encoding per token: no trailing bits set

// tokenLen is the length of every token this provider issues (98 bytes).
var tokenLen = len(tokenPrefix) + tokenB64.EncodedLen(tokenBodyLen+tokenMACLen)

// DiscoverySecret is one secret that signs discovery tokens.
type DiscoverySecret struct {
	ID        int64
	Secret    []byte
	CreatedAt time.Time
	RetiredAt time.Time // zero: it still verifies the tokens it signed
}

// Retired reports whether the secret was retired: its tokens are no longer valid.
func (s DiscoverySecret) Retired() bool { return !s.RetiredAt.IsZero() }

// NewDiscoverySecret returns a fresh random secret.
func NewDiscoverySecret() []byte {
	b := make([]byte, SecretSize)
	_, _ = rand.Read(b)
	return b
}

// newTokenID returns a random token ID: 63 bits, never 0.
func newTokenID() int64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:])
		if id := int64(binary.BigEndian.Uint64(b[:]) >> 1); id != 0 {
			return id
		}
	}
}

func policyByte(p TokenPolicy) byte {
	if p == TokenShared {
		return 1
	}
	return 2
}

// mintToken encodes and signs t with secret.
func mintToken(secret []byte, t DiscoveryToken) string {
	body := make([]byte, 0, tokenBodyLen+tokenMACLen)
	body = append(body, tokenVersion)
	body = binary.BigEndian.AppendUint32(body, uint32(t.SecretID))
	body = append(body, policyByte(t.Policy))
	body = binary.BigEndian.AppendUint64(body, uint64(t.ID))
	body = binary.BigEndian.AppendUint64(body, uint64(t.UserID))
	body = binary.BigEndian.AppendUint64(body, uint64(t.IssuedAt.UnixMilli()))
	var exp int64
	if !t.ExpiresAt.IsZero() {
		exp = t.ExpiresAt.UnixMilli()
	}
	body = binary.BigEndian.AppendUint64(body, uint64(exp))
	body = append(body, tokenMAC(secret, body)...)
	return tokenPrefix + tokenB64.EncodeToString(body)
}

func tokenMAC(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(tokenMACLabel))
	m.Write(body)
	return m.Sum(nil)
}

// parseToken decodes a token without checking its MAC; it returns the fields, the
// signed body and the MAC. Anything that is not a token of this format is
// ErrTokenInvalid.
func parseToken(s string) (t DiscoveryToken, body, mac []byte, err error) {
	raw, ok := strings.CutPrefix(s, tokenPrefix)
	if !ok || len(s) != tokenLen {
		return t, nil, nil, ErrTokenInvalid
	}
	b, derr := tokenB64.DecodeString(raw)
	if derr != nil || len(b) != tokenBodyLen+tokenMACLen || b[0] != tokenVersion {
		return t, nil, nil, ErrTokenInvalid
	}
	body, mac = b[:tokenBodyLen], b[tokenBodyLen:]
	t.SecretID = int64(binary.BigEndian.Uint32(body[1:]))
	switch body[5] {
	case 1:
		t.Policy = TokenShared
	case 2:
		t.Policy = TokenPerRequester
	default:
		return t, nil, nil, ErrTokenInvalid
	}
	t.ID = int64(binary.BigEndian.Uint64(body[6:]))
	t.UserID = int64(binary.BigEndian.Uint64(body[14:]))
	t.IssuedAt = time.UnixMilli(int64(binary.BigEndian.Uint64(body[22:]))).UTC()
	if exp := int64(binary.BigEndian.Uint64(body[30:])); exp != 0 {
		t.ExpiresAt = time.UnixMilli(exp).UTC()
	}
	if t.ID <= 0 || t.UserID < 0 || (t.Policy == TokenShared) != (t.UserID == 0) {
		return t, nil, nil, ErrTokenInvalid
	}
	return t, body, mac, nil
}

// verifyToken checks a token's MAC against the secrets: a token that does not verify
// is ErrTokenInvalid, one signed by a retired secret ErrTokenRevoked.
func verifyToken(s string, secrets map[int64]DiscoverySecret) (DiscoveryToken, error) {
	t, body, mac, err := parseToken(s)
	if err != nil {
		return t, err
	}
	sec, ok := secrets[t.SecretID]
	if !ok || !hmac.Equal(mac, tokenMAC(sec.Secret, body)) {
		return DiscoveryToken{}, fmt.Errorf("%w: signature", ErrTokenInvalid)
	}
	if sec.Retired() {
		return DiscoveryToken{}, fmt.Errorf("%w: its secret was retired", ErrTokenRevoked)
	}
	return t, nil
}
