package mls

// KeyPackage is RFC 9420's KeyPackage (§10).
type KeyPackage struct {
	Version     ProtocolVersion
	CipherSuite CipherSuite
	InitKey     []byte // HPKEPublicKey
	LeafNode    LeafNode
	Extensions  Extensions
	Signature   []byte
}

func (kp *KeyPackage) encodeTBS(w *writer) {
	w.u16(uint16(kp.Version))
	w.u16(uint16(kp.CipherSuite))
	w.opaque("KeyPackage.init_key", kp.InitKey)
	kp.LeafNode.encode(w)
	kp.Extensions.encode(w, "KeyPackage.extensions")
}

func (kp *KeyPackage) encode(w *writer) {
	kp.encodeTBS(w)
	w.opaque("KeyPackage.signature", kp.Signature)
}

func (kp *KeyPackage) decode(r *reader) {
	kp.Version = ProtocolVersion(r.u16("KeyPackage.version"))
	kp.CipherSuite = CipherSuite(r.u16("KeyPackage.cipher_suite"))
	kp.InitKey = r.opaque("KeyPackage.init_key")
	kp.LeafNode.decode(r)
	kp.Extensions = decodeExtensions(r, "KeyPackage.extensions")
	kp.Signature = r.opaque("KeyPackage.signature")
}

// Marshal encodes kp.
func (kp *KeyPackage) Marshal() ([]byte, error) { return marshal(kp) }

// Unmarshal decodes kp from exactly b.
func (kp *KeyPackage) Unmarshal(b []byte) error { return unmarshal(kp, b, "KeyPackage") }

// DecodeKeyPackage decodes a bare KeyPackage that is the whole of b.
func DecodeKeyPackage(b []byte) (*KeyPackage, error) {
	kp := new(KeyPackage)
	if err := kp.Unmarshal(b); err != nil {
		return nil, err
	}
	return kp, nil
}

// TBS returns the encoded KeyPackageTBS (§10).
func (kp *KeyPackage) TBS() ([]byte, error) {
	w := writer{buf: make([]byte, 0, 512)}
	kp.encodeTBS(&w)
	if w.err != nil {
		return nil, w.err
	}
	return w.buf, nil
}
