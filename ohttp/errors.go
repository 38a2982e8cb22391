package ohttp

import (
	"errors"
	"fmt"
)

// Errors of the codecs and of encapsulation. Returned errors wrap one of them
// (use errors.Is); the gateway maps them to HTTP status codes and problem
// types.
var (
	// ErrTruncated reports an encapsulated message, key configuration or
	// stored key that is shorter than its format requires.
	ErrTruncated = errors.New("ohttp: truncated message")
	// ErrUnknownKeyID reports an encapsulated request whose key identifier
	// names no key the gateway holds for that KEM, or a key whose grace
	// period after retirement has ended.
	ErrUnknownKeyID = errors.New("ohttp: unknown key id")
	// ErrUnsupportedSuite reports a KEM, KDF or AEAD that is not
	// implemented, or a (KDF, AEAD) pair that the key does not offer.
	ErrUnsupportedSuite = errors.New("ohttp: unsupported HPKE suite")
	// ErrDecrypt reports an encapsulated key or ciphertext that does not
	// decrypt: tampering, a wrong key or garbage.
	ErrDecrypt = errors.New("ohttp: decryption failed")
	// ErrInvalidKeyConfig reports a malformed key configuration or
	// application/ohttp-keys list.
	ErrInvalidKeyConfig = errors.New("ohttp: invalid key configuration")
	// ErrNoUsableKey reports a key configuration list with no configuration
	// this package can use.
	ErrNoUsableKey = errors.New("ohttp: no usable key configuration")
	// ErrInvalidKey reports a malformed stored private key.
	ErrInvalidKey = errors.New("ohttp: invalid stored key")
	// ErrKeyIDInUse reports adding a key whose identifier the key set
	// already holds.
	ErrKeyIDInUse = errors.New("ohttp: key id in use")
	// ErrKeyIDsExhausted reports that all 256 key identifiers are held.
	ErrKeyIDsExhausted = errors.New("ohttp: no free key id")
	// ErrReplay reports an encapsulated request whose encapsulated key was
	// already accepted within the replay window.
	ErrReplay = errors.New("ohttp: replayed request")
	// ErrReplayCacheFull reports that the replay cache holds its maximum of
	// entries, all within the window; the request is refused rather than
	// weakening replay protection.
	ErrReplayCacheFull = errors.New("ohttp: replay cache full")
	// ErrReplaySourceFull reports that the source of the request holds its share
	// of the replay cache, all within the window; requests of other sources are
	// still accepted. It matches ErrReplayCacheFull with errors.Is.
	ErrReplaySourceFull = fmt.Errorf("%w for this source", ErrReplayCacheFull)
)
