package ohttp

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func seedConfigs(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(unhex(f, v.KeyConfig))
	}
	for _, kem := range allKEMs {
		c, _ := newTestKey(f, 9, kem).Config().MarshalBinary()
		f.Add(c)
	}
	f.Add([]byte{})
}

// FuzzKeyConfig: the decoder never panics, and what it accepts re-encodes
// to the same bytes.
func FuzzKeyConfig(f *testing.F) {
	seedConfigs(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := UnmarshalKeyConfig(b)
		if err != nil {
			return
		}
		again, err := c.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding: %v\n%x\n%x", err, again, b)
		}
	})
}

// FuzzKeyConfigs: the list decoder never panics, returns only usable
// configurations, and they re-encode and decode alike.
func FuzzKeyConfigs(f *testing.F) {
	for _, v := range loadVectors(f) {
		c, _ := UnmarshalKeyConfig(unhex(f, v.KeyConfig))
		list, _ := MarshalKeyConfigs([]KeyConfig{*c, *c})
		f.Add(list)
	}
	ks := NewKeySet(time.Hour)
	_, _ = ks.Rotate(KEMP256HKDFSHA256, nil, time.Now())
	_, _ = ks.Rotate(KEMX25519HKDFSHA256, nil, time.Now().Add(-time.Hour))
	f.Add(ks.MarshalConfigs())
	ks2 := NewKeySet(time.Hour)
	_ = ks2.Add(newTestKey(f, 1, KEMX25519HKDFSHA256))
	_ = ks2.Add(newTestKey(f, 2, KEMP256HKDFSHA256))
	f.Add(ks2.MarshalConfigs())
	f.Add([]byte{0, 3, 1, 0, 0x99})
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := UnmarshalKeyConfigs(b)
		if err != nil {
			return
		}
		for _, c := range cs {
			if _, ok := c.Preferred(); !ok || !c.KEM.Supported() {
				t.Fatalf("unusable config returned: %+v", c)
			}
		}
		again, err := MarshalKeyConfigs(cs)
		if err != nil {
			t.Fatal(err)
		}
		cs2, err := UnmarshalKeyConfigs(again)
		if err != nil || len(cs2) != len(cs) {
			t.Fatalf("re-decoding: %v", err)
		}
	})
}

// FuzzEncapsulatedRequest feeds arbitrary bytes to the header parser and
// to decapsulation with a fixed key: no panic, and only typed errors.
func FuzzEncapsulatedRequest(f *testing.F) {
	k := newTestKey(f, 1, KEMX25519HKDFSHA256)
	p := newTestKey(f, 1, KEMP256HKDFSHA256)
	for _, v := range loadVectors(f) {
		f.Add(unhex(f, v.EncapsulatedRequest))
	}
	for _, key := range []*Key{k, p} {
		cfg := key.Config()
		for _, alg := range AllAlgorithms() {
			b, _, _ := EncapsulateRequest(&cfg, alg, []byte("seed"))
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		er, err := ParseEncapsulatedRequest(b)
		if err != nil {
			if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrUnsupportedSuite) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(er.Enc)+len(er.Ciphertext)+HeaderLen != len(b) {
			t.Fatal("parts do not add up")
		}
		for _, key := range []*Key{k, p} {
			_, rc, err := key.DecapsulateRequest(b)
			if err == nil {
				if _, err := rc.EncapsulateResponse(b); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrUnknownKeyID) && !errors.Is(err, ErrUnsupportedSuite) {
				t.Fatalf("untyped error %v", err)
			}
		}
	})
}

// FuzzUnmarshalKey: the stored key decoder never panics and what it
// accepts re-encodes to the same bytes.
func FuzzUnmarshalKey(f *testing.F) {
	for _, kem := range allKEMs {
		b, _ := newTestKey(f, 3, kem).MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := UnmarshalKey(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidKey) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		again, err := k.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := UnmarshalKey(again); err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
	})
}

// FuzzDecapsulateResponse feeds arbitrary bytes to the client's response
// decapsulation.
func FuzzDecapsulateResponse(f *testing.F) {
	k := newTestKey(f, 1, KEMX25519HKDFSHA256)
	cfg := k.Config()
	encReq, cc, _ := EncapsulateRequest(&cfg, cfg.Algorithms[0], []byte("r"))
	_, rc, _ := k.DecapsulateRequest(encReq)
	good, _ := rc.EncapsulateResponse([]byte{1, 0x40, 0xc8})
	f.Add(good)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		pt, err := cc.DecapsulateResponse(b)
		if err != nil {
			if !errors.Is(err, ErrDecrypt) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if !bytes.Equal(b, good) || pt == nil {
			t.Fatalf("forged response accepted: %x", b)
		}
	})
}
