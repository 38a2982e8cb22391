package protocol

import (
	"fmt"

	"github.com/mimids/mimids/mls"
)

// Bodies of the client socket's KeyPackage methods (client -> its own provider):
//
//	struct { opaque key_packages<V><V>; } KeyPackageUpload;  // MLSMessage(KeyPackage) or KeyPackage each
//	struct { opaque refs<V><V>; } KeyPackageUploadResult;    // KeyPackageRefs, in upload order
//	struct { CipherSuite cipher_suite; uint32 available; uint8 last_resort; } KeyPackageCount;

// MaxUploadKeyPackages bounds the KeyPackages one KeyPackageUpload may carry; the
// service's configured limit (KeyPackageConfig.MaxPerUpload) is at most this.
const MaxUploadKeyPackages = 1000

// KeyPackageUpload carries KeyPackages a client uploads.
type KeyPackageUpload struct {
	KeyPackages [][]byte
}

// MarshalBinary encodes u.
func (u KeyPackageUpload) MarshalBinary() ([]byte, error) {
	return marshalOpaqueList(u.KeyPackages, MaxUploadKeyPackages, MaxKeyPackageSize+4, "key_packages")
}

// UnmarshalBinary decodes exactly one KeyPackageUpload; elements alias b.
func (u *KeyPackageUpload) UnmarshalBinary(b []byte) error {
	l, err := unmarshalOpaqueList(b, MaxUploadKeyPackages, MaxKeyPackageSize+4, "KeyPackageUpload.key_packages")
	u.KeyPackages = l
	return err
}

// KeyPackageUploadResult answers a KeyPackageUpload with the refs stored.
type KeyPackageUploadResult struct {
	Refs [][]byte
}

// MarshalBinary encodes u.
func (u KeyPackageUploadResult) MarshalBinary() ([]byte, error) {
	return marshalOpaqueList(u.Refs, MaxUploadKeyPackages, MaxRefLen, "refs")
}

// UnmarshalBinary decodes exactly one KeyPackageUploadResult; refs alias b.
func (u *KeyPackageUploadResult) UnmarshalBinary(b []byte) error {
	l, err := unmarshalOpaqueList(b, MaxUploadKeyPackages, MaxRefLen, "KeyPackageUploadResult.refs")
	u.Refs = l
	return err
}

func marshalOpaqueList(l [][]byte, maxItems, maxItem int, field string) ([]byte, error) {
	if len(l) > maxItems {
		return nil, fmt.Errorf("%w: %d %s, limit %d", ErrTooLarge, len(l), field, maxItems)
	}
	size := 0
	for i, e := range l {
		if len(e) > maxItem {
			return nil, fmt.Errorf("%w: %s[%d] of %d bytes, limit %d", ErrTooLarge, field, i, len(e), maxItem)
		}
		size += 4 + len(e)
	}
	body := NewWriter(make([]byte, 0, size))
	for _, e := range l {
		body.Opaque(e)
	}
	w := NewWriter(make([]byte, 0, len(body.Bytes())+4))
	w.Opaque(body.Bytes())
	return w.Bytes(), nil
}

func unmarshalOpaqueList(b []byte, maxItems, maxItem int, field string) ([][]byte, error) {
	r := NewReader(b)
	body := r.Opaque(field)
	if err := done(r, field); err != nil {
		return nil, err
	}
	var l [][]byte
	br := NewReader(body)
	for br.Len() > 0 && br.Err() == nil {
		if len(l) == maxItems {
			return nil, fmt.Errorf("%w: more than %d in %s", ErrBundleTooLarge, maxItems, field)
		}
		l = append(l, br.OpaqueMax(field, maxItem))
	}
	if err := done(br, field); err != nil {
		return nil, err
	}
	return l, nil
}

// MarshalBinary encodes s as a KeyPackageCount.
func (s KeyPackageStock) MarshalBinary() ([]byte, error) {
	if s.Available < 0 || int64(s.Available) > 1<<32-1 {
		return nil, fmt.Errorf("%w: available %d", ErrTooLarge, s.Available)
	}
	w := NewWriter(make([]byte, 0, 7))
	w.U16(uint16(s.CipherSuite))
	w.U32(uint32(s.Available))
	if s.LastResort {
		w.U8(1)
	} else {
		w.U8(0)
	}
	return w.Bytes(), nil
}

// UnmarshalBinary decodes a KeyPackageCount into s.
func (s *KeyPackageStock) UnmarshalBinary(b []byte) error {
	r := NewReader(b)
	suite := mls.CipherSuite(r.U16("KeyPackageCount.cipher_suite"))
	avail := r.U32("KeyPackageCount.available")
	lr := r.U8("KeyPackageCount.last_resort")
	if err := done(r, "KeyPackageCount"); err != nil {
		return err
	}
	if lr > 1 {
		return fmt.Errorf("%w: KeyPackageCount.last_resort %d, want 0 or 1", ErrMalformed, lr)
	}
	*s = KeyPackageStock{CipherSuite: suite, Available: int(avail), LastResort: lr == 1}
	return nil
}
