package mls

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

type roundTripper interface {
	Marshal() ([]byte, error)
	Unmarshal([]byte) error
}

// TestVectorsMessages decodes and re-encodes every field of every case of
// messages.json.
func TestVectorsMessages(t *testing.T) {
	var cases []map[string]hexBytes
	loadCodecVectors(t, "messages.json", &cases)
	if len(cases) == 0 {
		t.Fatal("messages.json: no cases")
	}
	fields := messageFields
	checked := 0
	for i, c := range cases {
		if len(c) != len(fields) {
			t.Errorf("case %d: %d fields, want %d", i, len(c), len(fields))
		}
		for name, data := range c {
			mk, ok := fields[name]
			if !ok {
				t.Errorf("case %d: unsupported field %q", i, name)
				continue
			}
			v := mk()
			if err := v.Unmarshal(data); err != nil {
				t.Errorf("case %d %s: decode: %v", i, name, err)
				continue
			}
			out, err := v.Marshal()
			if err != nil {
				t.Errorf("case %d %s: encode: %v", i, name, err)
				continue
			}
			if !bytes.Equal(out, data) {
				t.Errorf("case %d %s: re-encoding differs\n got %s\nwant %s", i, name,
					hex.EncodeToString(out), hex.EncodeToString(data))
				continue
			}
			checked++
		}
	}
	t.Logf("messages.json: %d cases, %d values round-tripped", len(cases), checked)
}

// codecVectorPath returns the path of a shared MLS test vector file.
func codecVectorPath(name string) string {
	return filepath.Join("..", "testdata", "mls", name)
}

// loadCodecVectors reads a vector file into v; a missing file fails the test.
func loadCodecVectors(t testing.TB, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(codecVectorPath(name))
	if err != nil {
		t.Fatalf("vector file %s: %v", name, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("vector file %s: %v", name, err)
	}
}

// hexBytes is a JSON hex string.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = d
	return nil
}

// TestVectorsDeserialization decodes every vlbytes header of
// deserialization.json and re-encodes it minimally.
func TestVectorsDeserialization(t *testing.T) {
	var cases []struct {
		Header hexBytes `json:"vlbytes_header"`
		Length *int     `json:"length"`
	}
	loadCodecVectors(t, "deserialization.json", &cases)
	if len(cases) == 0 {
		t.Fatal("deserialization.json: no cases")
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%d_%x", i, []byte(c.Header)), func(t *testing.T) {
			if c.Length == nil {
				t.Fatal("case without length")
			}
			r := newReader(c.Header)
			n := r.varint("vlbytes_header")
			if err := r.finish("vlbytes_header"); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if n != *c.Length {
				t.Fatalf("length %d, want %d", n, *c.Length)
			}
			if got := appendVarint(nil, n); !bytes.Equal(got, c.Header) {
				t.Fatalf("re-encoded %x, want %x", got, []byte(c.Header))
			}
		})
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
