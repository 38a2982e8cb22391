package ohttp

import (
	"bytes"
	"crypto/ecdh"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mimids/mimids/ohttp/bhttp"
)

type rfc9458Vector struct {
	Name                     string `json:"name"`
	KeyID                    uint8  `json:"key_id"`
	KEMID                    uint16 `json:"kem_id"`
	KDFID                    uint16 `json:"kdf_id"`
	AEADID                   uint16 `json:"aead_id"`
	ServerSecretKey          string `json:"server_secret_key"`
	ServerPublicKey          string `json:"server_public_key"`
	KeyConfig                string `json:"key_config"`
	Request                  string `json:"request"`
	ClientEphemeralSecretKey string `json:"client_ephemeral_secret_key"`
	ClientEphemeralPublicKey string `json:"client_ephemeral_public_key"`
	HPKEInfo                 string `json:"hpke_info"`
	EncapsulatedRequest      string `json:"encapsulated_request"`
	Response                 string `json:"response"`
	ResponseSecret           string `json:"response_secret"`
	ResponseNonce            string `json:"response_nonce"`
	ResponseSalt             string `json:"response_salt"`
	ResponsePRK              string `json:"response_prk"`
	ResponseAEADKey          string `json:"response_aead_key"`
	ResponseAEADNonce        string `json:"response_aead_nonce"`
	EncapsulatedResponse     string `json:"encapsulated_response"`
}

func loadVectors(t testing.TB) []rfc9458Vector {
	t.Helper()
	p := filepath.Join("..", "testdata", "ohttp", "rfc9458-vectors.json")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("vector file: %v", err)
	}
	var f struct {
		Vectors []rfc9458Vector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("vector file: %v", err)
	}
	if len(f.Vectors) == 0 {
		t.Fatalf("vector file %s has no vectors", p)
	}
	return f.Vectors
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\n got %x\nwant %x", what, got, want)
	}
}

// TestRFC9458Vector reproduces RFC 9458 Appendix A. crypto/hpke offers no
// way to fix the sender's ephemeral key, so the Encapsulated Request is
// checked from the gateway's side (it decapsulates to the request, with
// the vector's enc and exported secret), and the Encapsulated Response is
// reproduced byte for byte with the vector's response nonce, then opened
// from the client's side with the vector's secret.
func TestRFC9458Vector(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			testVectorConfig(t, v)
			testVectorExchange(t, v)
		})
	}
}

func vectorKey(t *testing.T, v rfc9458Vector) *Key {
	t.Helper()
	cfg, err := UnmarshalKeyConfig(unhex(t, v.KeyConfig))
	if err != nil {
		t.Fatalf("key config: %v", err)
	}
	k, err := NewKey(v.KeyID, KEMID(v.KEMID), cfg.Algorithms, time.Unix(0, 0), unhex(t, v.ServerSecretKey))
	if err != nil {
		t.Fatalf("key: %v", err)
	}
	return k
}

func testVectorConfig(t *testing.T, v rfc9458Vector) {
	raw := unhex(t, v.KeyConfig)
	cfg, err := UnmarshalKeyConfig(raw)
	if err != nil {
		t.Fatalf("key config: %v", err)
	}
	if cfg.KeyID != v.KeyID || cfg.KEM != KEMID(v.KEMID) {
		t.Errorf("config = %+v", cfg)
	}
	want := []SymmetricAlgorithm{{KDFHKDFSHA256, AEADAES128GCM}, {KDFHKDFSHA256, AEADChaCha20Poly1305}}
	if len(cfg.Algorithms) != 2 || cfg.Algorithms[0] != want[0] || cfg.Algorithms[1] != want[1] {
		t.Errorf("algorithms = %v, want %v", cfg.Algorithms, want)
	}
	checkBytes(t, "public key", cfg.PublicKey, unhex(t, v.ServerPublicKey))
	again, err := cfg.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "re-encoded key config", again, raw)
	// The key built from the secret key publishes the same configuration.
	kc := vectorKey(t, v).Config()
	fromKey, err := kc.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "key config of the secret key", fromKey, raw)
	// The ephemeral pair is consistent, and enc is its public key.
	skE, err := ecdh.X25519().NewPrivateKey(unhex(t, v.ClientEphemeralSecretKey))
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "ephemeral public key", skE.PublicKey().Bytes(), unhex(t, v.ClientEphemeralPublicKey))
	h := Header{KeyID: v.KeyID, KEM: KEMID(v.KEMID), KDF: KDFID(v.KDFID), AEAD: AEADID(v.AEADID)}
	checkBytes(t, "hpke info", h.info(), unhex(t, v.HPKEInfo))
}

func testVectorExchange(t *testing.T, v rfc9458Vector) {
	k := vectorKey(t, v)
	encReq := unhex(t, v.EncapsulatedRequest)
	er, err := ParseEncapsulatedRequest(encReq)
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "enc", er.Enc, unhex(t, v.ClientEphemeralPublicKey))
	req, rc, err := k.DecapsulateRequest(encReq)
	if err != nil {
		t.Fatalf("decapsulate: %v", err)
	}
	checkBytes(t, "request", req, unhex(t, v.Request))
	checkBytes(t, "response secret", rc.x.secret, unhex(t, v.ResponseSecret))
	if br, err := bhttp.UnmarshalRequest(req); err != nil || br.Method != "GET" || br.Authority != "example.com" || br.Path != "/" {
		t.Errorf("inner request = %+v, %v", br, err)
	}

	nonce := unhex(t, v.ResponseNonce)
	checkBytes(t, "response salt", append(bytes.Clone(rc.Enc()), nonce...), unhex(t, v.ResponseSalt))
	prk, key, aeadNonce, err := rc.x.responseKeys(nonce)
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "response prk", prk, unhex(t, v.ResponsePRK))
	checkBytes(t, "response aead key", key, unhex(t, v.ResponseAEADKey))
	checkBytes(t, "response aead nonce", aeadNonce, unhex(t, v.ResponseAEADNonce))

	rc.rand = bytes.NewReader(nonce)
	encResp, err := rc.EncapsulateResponse(unhex(t, v.Response))
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "encapsulated response", encResp, unhex(t, v.EncapsulatedResponse))

	// The client's side, given the secret it would have exported.
	cc := &ClientContext{x: exchange{hdr: er.Header, enc: er.Enc, secret: unhex(t, v.ResponseSecret),
		kdf: rc.x.kdf, aead: rc.x.aead}}
	resp, err := cc.DecapsulateResponse(unhex(t, v.EncapsulatedResponse))
	if err != nil {
		t.Fatalf("client decapsulate: %v", err)
	}
	checkBytes(t, "client response", resp, unhex(t, v.Response))

	// A fresh encapsulation of the vector's request to the vector's
	// config has the vector's header and length, and the key opens it.
	cfg := k.Config()
	ours, _, err := EncapsulateRequest(&cfg, er.Algorithm(), unhex(t, v.Request))
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "header", ours[:HeaderLen], encReq[:HeaderLen])
	if len(ours) != len(encReq) {
		t.Errorf("encapsulated request length %d, want %d", len(ours), len(encReq))
	}
	if got, _, err := k.DecapsulateRequest(ours); err != nil || !bytes.Equal(got, unhex(t, v.Request)) {
		t.Errorf("our encapsulation: %x, %v", got, err)
	}
}
