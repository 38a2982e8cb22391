package protocol

import (
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestTermsBytes pins the encodings docs/protocol.md §5.11 describes, and refuses
// terms over the limits.
func TestTermsBytes(t *testing.T) {
	terms := &Terms{RateMilli: 2500, Burst: 3, Banned: []string{"ab", "c"}}
	b, err := terms.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(b), "000009c4"+"00000003"+"05"+"026162"+"0163"; got != want {
		t.Fatalf("terms: %s, want %s", got, want)
	}
	var back Terms
	if err := back.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(&back, terms) || back.Rate() != 2.5 {
		t.Fatalf("terms round trip: %+v, %v", back, err)
	}
	a := &TermsApplied{RateMilli: 1, Burst: 2, Banned: 3, Ignored: 4}
	ab, _ := a.MarshalBinary()
	if got := hex.EncodeToString(ab); got != "00000001000000020000000300000004" {
		t.Fatalf("terms_applied: %s", got)
	}
	var aback TermsApplied
	if err := aback.UnmarshalBinary(ab); err != nil || aback != *a {
		t.Fatalf("terms_applied round trip: %+v, %v", aback, err)
	}

	many := make([]string, MaxTermsBans+1)
	for i := range many {
		many[i] = "u"
	}
	for _, c := range []struct {
		name string
		t    Terms
	}{
		{"too many bans", Terms{Banned: many}},
		{"rate without burst", Terms{RateMilli: 1}},
		{"empty URI", Terms{Banned: []string{""}}},
		{"long URI", Terms{Banned: []string{strings.Repeat("x", MaxUserURISize+1)}}},
	} {
		if _, err := c.t.MarshalBinary(); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: marshal %v, want malformed", c.name, err)
		}
	}
	// A hostile hub's oversized list is refused by the decoder too.
	w := NewWriter(nil)
	w.U32(0)
	w.U32(0)
	w.Vector(func(w *Writer) {
		for range MaxTermsBans + 1 {
			w.String("u")
		}
	})
	if err := back.UnmarshalBinary(w.Bytes()); !errors.Is(err, ErrMalformed) {
		t.Errorf("decode of %d bans: %v, want malformed", MaxTermsBans+1, err)
	}
}
