// Package ohttp implements Oblivious HTTP (RFC 9458) for mimids: key
// configurations, request and response encapsulation, a gateway key set
// that rotates keys without failing requests in flight, and the two HTTP
// roles, the Gateway (the provider that answers, at
// /.well-known/ohttp-gateway as RFC 9540 places it) and the Relay (the
// client's own provider, which forwards opaque bytes). The plaintext
// messages are Binary HTTP, package ohttp/bhttp. The package does no
// logging and keeps no global state; HPKE is the standard library's
// crypto/hpke.
//
// # Suites
//
// KEMs DHKEM(X25519, HKDF-SHA256) and DHKEM(P-256, HKDF-SHA256); KDFs
// HKDF-SHA256/384/512; AEADs AES-128-GCM, AES-256-GCM and
// ChaCha20-Poly1305, in any combination.
//
// # Wire formats
//
// All integers are big-endian. A key configuration (RFC 9458 Section 3.1):
//
//	Key Config { Key Identifier (8), HPKE KEM ID (16), HPKE Public Key (Npk*8),
//	             HPKE Symmetric Algorithms Length (16) = 4..65532,
//	             { HPKE KDF ID (16), HPKE AEAD ID (16) } ... }
//
// The application/ohttp-keys media type (Section 3.2) is a list of Key
// Configs, each preceded by its length as a 16-bit integer. Npk is 32
// for X25519 and 65 for P-256.
//
// An Encapsulated Request (message/ohttp-req, Section 4.1):
//
//	hdr = Key Identifier (8), KEM ID (16), KDF ID (16), AEAD ID (16)
//	Encapsulated Request { hdr, enc (Nenc*8), HPKE-Protected Request (..) }
//
// where enc and the ciphertext come from HPKE base mode with info =
// "message/bhttp request" || 0x00 || hdr and empty aad. An Encapsulated
// Response (message/ohttp-res, Section 4.2):
//
//	Encapsulated Response { Nonce (max(Nn, Nk)*8), AEAD-Protected Response (..) }
//
// with secret = Export("message/bhttp response", max(Nn, Nk)),
// prk = Extract(enc || nonce, secret), key = Expand(prk, "key", Nk),
// nonce = Expand(prk, "nonce", Nn), sealed with empty aad.
//
// # Keys and rotation
//
// A Key is one HPKE private key with its key id, accepted (KDF, AEAD)
// pairs and creation time; Key.MarshalBinary and UnmarshalKey store it. A
// KeySet holds up to 256 keys: active keys are published; a retired key is
// not published but still decapsulates for the set's grace period, after
// which requests to it fail with ErrUnknownKeyID.
//
// # Replay window
//
// The Gateway records the enc of every request it decrypts in a
// ReplayCache for GatewayConfig.ReplayWindow (default 2 minutes, at most
// ReplayCapacity entries, default 262144) and refuses a request whose enc
// is recorded. The inner request must carry a Date within
// GatewayConfig.MaxClockSkew (default 1 minute) of the gateway's clock;
// since the window is at least twice the skew, a request replayed after its
// enc was forgotten carries a Date that is refused. A full cache refuses
// new requests (503) instead of forgetting early. Each source of requests
// (WithSource, else the client's address) holds at most
// GatewayConfig.ReplayPerSource entries (default a sixteenth of the
// capacity), so that one source flooding the gateway is refused (503) before
// it fills the cache for the others.
package ohttp
