package bhttp

import (
	"bytes"
	"testing"
)

func seedExamples(f *testing.F) {
	ex := loadExamples(f)
	for _, e := range ex.Examples {
		f.Add(mustHex(f, e.Hex))
	}
	for _, v := range ex.DerivedVariants {
		f.Add(mustHex(f, v.Hex))
	}
	f.Add([]byte{})
	f.Add([]byte{0x02, 0x03, 'G', 'E', 'T', 0, 0, 1, '/', 0, 0x05, 'h', 'e', 'l', 'l', 'o', 0, 0})
}

// FuzzRequest checks that the request decoder never panics and that what
// it accepts re-encodes to a message that decodes to the same request.
func FuzzRequest(f *testing.F) {
	seedExamples(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalRequest(b)
		if err != nil {
			return
		}
		enc, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode of a decoded request: %v", err)
		}
		r2, err := UnmarshalRequest(enc)
		if err != nil || !r2.Equal(r) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, r, r2)
		}
		if enc2, _ := r2.MarshalBinary(); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable")
		}
	})
}

// FuzzResponse is FuzzRequest for responses.
func FuzzResponse(f *testing.F) {
	seedExamples(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalResponse(b)
		if err != nil {
			return
		}
		enc, err := r.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode of a decoded response: %v", err)
		}
		r2, err := UnmarshalResponse(enc)
		if err != nil || !r2.Equal(r) {
			t.Fatalf("round trip: %v\n%+v\n%+v", err, r, r2)
		}
		if enc2, _ := r2.MarshalBinary(); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable")
		}
	})
}
