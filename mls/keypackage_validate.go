package mls

import (
	"errors"
	"fmt"
	"time"
)

// Errors of KeyPackage validation (RFC 9420 §10.1). ValidateKeyPackage wraps
// them with details; test with errors.Is.
var (
	ErrKeyPackageVersion       = errors.New("mls: KeyPackage version is not mls10")
	ErrInitKeyIsEncryptionKey  = errors.New("mls: KeyPackage init_key equals the leaf encryption_key")
	ErrLeafNodeSource          = errors.New("mls: wrong leaf_node_source")
	ErrKeyPackageExpired       = errors.New("mls: KeyPackage expired")
	ErrKeyPackageNotYetValid   = errors.New("mls: KeyPackage not yet valid")
	ErrCredentialNotSupported  = errors.New("mls: capabilities do not list the credential type")
	ErrExtensionNotSupported   = errors.New("mls: capabilities do not list an extension in use")
	ErrKeyPackageSignature     = errors.New("mls: bad KeyPackage signature")
	ErrLeafNodeSignature       = errors.New("mls: bad LeafNode signature")
	ErrNotKeyPackage           = errors.New("mls: message is not a KeyPackage")
	ErrKeyPackageVersionFramed = errors.New("mls: KeyPackage version differs from its MLSMessage version")
)

// KeyPackageInfo is what a Delivery Service keeps of a valid KeyPackage.
// Its slices alias the KeyPackage, except Ref.
type KeyPackageInfo struct {
	Ref          []byte // KeyPackageRef
	Version      ProtocolVersion
	CipherSuite  CipherSuite
	Credential   Credential
	Identity     []byte // the basic credential's identity; nil for other types
	SignatureKey []byte
	Lifetime     Lifetime
}

// NotBefore returns the start of the lifetime.
func (i *KeyPackageInfo) NotBefore() time.Time { return unixTime(i.Lifetime.NotBefore) }

// NotAfter returns the end of the lifetime.
func (i *KeyPackageInfo) NotAfter() time.Time { return unixTime(i.Lifetime.NotAfter) }

func unixTime(s uint64) time.Time {
	if s > 1<<62 {
		s = 1 << 62
	}
	return time.Unix(int64(s), 0).UTC()
}

// DecodeKeyPackageMessage decodes a KeyPackage given either as an MLSMessage
// (wire format mls_key_package, whose version must equal the KeyPackage's)
// or as a bare KeyPackage. b must hold exactly one of them.
func DecodeKeyPackageMessage(b []byte) (*KeyPackage, error) {
	m, err := DecodeMLSMessage(b)
	if err == nil {
		if m.WireFormat != WireFormatKeyPackage {
			return nil, fmt.Errorf("%w: wire format %s", ErrNotKeyPackage, m.WireFormat)
		}
		if m.KeyPackage.Version != m.Version {
			return nil, ErrKeyPackageVersionFramed
		}
		return m.KeyPackage, nil
	}
	kp, kerr := DecodeKeyPackage(b)
	if kerr != nil {
		// Report the MLSMessage error when the input looks framed.
		if len(b) >= 4 && b[0] == 0 && b[1] == 1 && b[2] == 0 && b[3] == byte(WireFormatKeyPackage) {
			return nil, err
		}
		return nil, kerr
	}
	return kp, nil
}

// ValidateKeyPackage checks kp as RFC 9420 §10.1 asks of a Delivery
// Service, at time now: version mls10, a supported cipher suite, init_key
// different from the leaf's encryption_key, leaf_node_source key_package,
// now within the lifetime, capabilities listing the credential type and every
// non-default extension used in the LeafNode and the KeyPackage (GREASE and
// unknown values in capabilities are accepted), and both signatures: the
// KeyPackage's (label "KeyPackageTBS") and the LeafNode's ("LeafNodeTBS"),
// each under the leaf's signature_key.
//
// The credential itself is not validated: that is the Authentication
// Service's job (the caller checks Info.Identity against the uploader).
func ValidateKeyPackage(kp *KeyPackage, now time.Time) (*KeyPackageInfo, error) {
	s, err := validateKeyPackageFields(kp, now)
	if err != nil {
		return nil, fmt.Errorf("mls: validate KeyPackage: %w", err)
	}
	// One encoding serves the ref and both signed contents: KeyPackageTBS is
	// the KeyPackage without its signature, and LeafNodeTBS (key_package
	// source) is the LeafNode without its signature.
	w := writer{buf: make([]byte, 0, 1024)}
	w.u16(uint16(kp.Version))
	w.u16(uint16(kp.CipherSuite))
	w.opaque("KeyPackage.init_key", kp.InitKey)
	leafStart := len(w.buf)
	kp.LeafNode.encodeTBSFields(&w)
	leafEnd := len(w.buf)
	w.opaque("LeafNode.signature", kp.LeafNode.Signature)
	kp.Extensions.encode(&w, "KeyPackage.extensions")
	tbsEnd := len(w.buf)
	w.opaque("KeyPackage.signature", kp.Signature)
	if w.err != nil {
		return nil, fmt.Errorf("mls: validate KeyPackage: %w", w.err)
	}
	key := kp.LeafNode.SignatureKey
	if err := s.VerifyWithLabel(key, LeafNodeTBSLabel, w.buf[leafStart:leafEnd], kp.LeafNode.Signature); err != nil {
		return nil, fmt.Errorf("mls: validate KeyPackage: %w: %w", ErrLeafNodeSignature, err)
	}
	if err := s.VerifyWithLabel(key, KeyPackageTBSLabel, w.buf[:tbsEnd], kp.Signature); err != nil {
		return nil, fmt.Errorf("mls: validate KeyPackage: %w: %w", ErrKeyPackageSignature, err)
	}
	info := &KeyPackageInfo{
		Ref:          MakeKeyPackageRef(s, w.buf),
		Version:      kp.Version,
		CipherSuite:  kp.CipherSuite,
		Credential:   kp.LeafNode.Credential,
		SignatureKey: key,
		Lifetime:     kp.LeafNode.Lifetime,
	}
	if kp.LeafNode.Credential.CredentialType == CredentialTypeBasic {
		info.Identity = kp.LeafNode.Credential.Identity
	}
	return info, nil
}

// validateKeyPackageFields runs the checks that need no signature.
func validateKeyPackageFields(kp *KeyPackage, now time.Time) (*Suite, error) {
	if kp.Version != ProtocolVersionMLS10 {
		return nil, fmt.Errorf("%w: %s", ErrKeyPackageVersion, kp.Version)
	}
	s, err := kp.CipherSuite.Suite()
	if err != nil {
		return nil, err
	}
	ln := &kp.LeafNode
	if string(kp.InitKey) == string(ln.EncryptionKey) {
		return nil, ErrInitKeyIsEncryptionKey
	}
	if ln.LeafNodeSource != LeafNodeSourceKeyPackage {
		return nil, fmt.Errorf("%w: %s, want key_package", ErrLeafNodeSource, ln.LeafNodeSource)
	}
	if err := checkLifetime(ln.Lifetime, now); err != nil {
		return nil, err
	}
	if err := ln.checkCapabilities(kp.Extensions); err != nil {
		return nil, err
	}
	return s, nil
}

func checkLifetime(l Lifetime, now time.Time) error {
	t := now.Unix()
	if t < 0 {
		t = 0
	}
	switch {
	case uint64(t) < l.NotBefore:
		return fmt.Errorf("%w: not_before %s, now %s", ErrKeyPackageNotYetValid,
			unixTime(l.NotBefore).Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	case uint64(t) > l.NotAfter:
		return fmt.Errorf("%w: not_after %s, now %s", ErrKeyPackageExpired,
			unixTime(l.NotAfter).Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	return nil
}

// checkCapabilities checks that the leaf's capabilities list its credential
// type and every non-default extension type in its extensions and in extra
// (§7.3, §10.1).
func (ln *LeafNode) checkCapabilities(extra Extensions) error {
	c := &ln.Capabilities
	if !c.SupportsCredential(ln.Credential.CredentialType) {
		return fmt.Errorf("%w: %s not in %v", ErrCredentialNotSupported,
			ln.Credential.CredentialType, c.Credentials)
	}
	for _, l := range [2]Extensions{ln.Extensions, extra} {
		for i := range l {
			if t := l[i].ExtensionType; !c.SupportsExtension(t) {
				return fmt.Errorf("%w: %s", ErrExtensionNotSupported, t)
			}
		}
	}
	return nil
}

// VerifySignature checks ln's signature (label "LeafNodeTBS") under its own
// signature_key. groupID and leafIndex are used for the update and commit
// sources only (§7.2).
func (ln *LeafNode) VerifySignature(s *Suite, groupID []byte, leafIndex uint32) error {
	tbs, err := ln.TBS(groupID, leafIndex)
	if err != nil {
		return err
	}
	if err := s.VerifyWithLabel(ln.SignatureKey, LeafNodeTBSLabel, tbs, ln.Signature); err != nil {
		return fmt.Errorf("%w: %w", ErrLeafNodeSignature, err)
	}
	return nil
}
