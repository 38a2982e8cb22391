package mlstest

import (
	"fmt"
	"time"

	"github.com/mimids/mimids/mls"
)

// ExtensionTypeLastResort is the last_resort KeyPackage extension (RFC 9420 §17.3
// registry, 0x000A).
const ExtensionTypeLastResort mls.ExtensionType = 0x000A

// KeyPackageOptions shape a KeyPackage built by NewKeyPackage.
type KeyPackageOptions struct {
	// CipherSuite defaults to suite 1.
	CipherSuite mls.CipherSuite
	// Identity is the BasicCredential identity (a MIMI user URI).
	Identity string
	// Now centres the default lifetime [Now-1h, Now+30d]; zero: time.Now().
	Now time.Time
	// Lifetime, when set, replaces the default.
	Lifetime mls.Lifetime
	// LastResort adds the last_resort extension (and lists it in the capabilities).
	LastResort bool
	// Bare returns the KeyPackage itself instead of an MLSMessage carrying it.
	Bare bool
	// Mutate, if set, changes the KeyPackage before it is signed.
	Mutate func(*mls.KeyPackage)
}

// NewKeyPackage returns a signed KeyPackage (encoded) and the decoded value, with
// keys generated here.
func NewKeyPackage(o KeyPackageOptions) ([]byte, *mls.KeyPackage, error) {
	if o.CipherSuite == 0 {
		o.CipherSuite = mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519
	}
	s, err := o.CipherSuite.Suite()
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrOptions, err)
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Lifetime == (mls.Lifetime{}) {
		o.Lifetime = mls.Lifetime{NotBefore: uint64(o.Now.Add(-time.Hour).Unix()), NotAfter: uint64(o.Now.Add(30 * 24 * time.Hour).Unix())}
	}
	sigPriv, sigPub, err := s.GenerateSignatureKey()
	if err != nil {
		return nil, nil, fmt.Errorf("mlstest: signature key: %w", err)
	}
	_, initKey, err := hpkeKeyPair(o.CipherSuite)
	if err != nil {
		return nil, nil, err
	}
	_, encKey, err := hpkeKeyPair(o.CipherSuite)
	if err != nil {
		return nil, nil, err
	}
	kp := &mls.KeyPackage{
		Version: mls.ProtocolVersionMLS10, CipherSuite: o.CipherSuite, InitKey: initKey,
		LeafNode: mls.LeafNode{
			EncryptionKey: encKey, SignatureKey: sigPub,
			Credential: mls.Credential{CredentialType: mls.CredentialTypeBasic, Identity: []byte(o.Identity)},
			Capabilities: mls.Capabilities{Versions: []mls.ProtocolVersion{mls.ProtocolVersionMLS10},
				CipherSuites: []mls.CipherSuite{o.CipherSuite}, Credentials: []mls.CredentialType{mls.CredentialTypeBasic}},
			LeafNodeSource: mls.LeafNodeSourceKeyPackage,
			Lifetime:       o.Lifetime,
		},
	}
	if o.LastResort {
		kp.LeafNode.Capabilities.Extensions = []mls.ExtensionType{ExtensionTypeLastResort}
		kp.Extensions = mls.Extensions{{ExtensionType: ExtensionTypeLastResort}}
	}
	if o.Mutate != nil {
		o.Mutate(kp)
	}
	tbs, err := kp.LeafNode.TBS(nil, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("mlstest: LeafNodeTBS: %w", err)
	}
	if kp.LeafNode.Signature, err = s.SignWithLabel(sigPriv, mls.LeafNodeTBSLabel, tbs); err != nil {
		return nil, nil, fmt.Errorf("mlstest: sign LeafNode: %w", err)
	}
	if tbs, err = kp.TBS(); err != nil {
		return nil, nil, fmt.Errorf("mlstest: KeyPackageTBS: %w", err)
	}
	if kp.Signature, err = s.SignWithLabel(sigPriv, mls.KeyPackageTBSLabel, tbs); err != nil {
		return nil, nil, fmt.Errorf("mlstest: sign KeyPackage: %w", err)
	}
	var b []byte
	if o.Bare {
		b, err = kp.Marshal()
	} else {
		b, err = (&mls.MLSMessage{Version: mls.ProtocolVersionMLS10, WireFormat: mls.WireFormatKeyPackage, KeyPackage: kp}).Marshal()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("mlstest: encode KeyPackage: %w", err)
	}
	return b, kp, nil
}
