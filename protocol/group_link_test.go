package protocol

import (
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestGroupLinkBytes pins the encodings docs/protocol.md §5.10 and §4 describe.
func TestGroupLinkBytes(t *testing.T) {
	for _, c := range []struct {
		name string
		v    interface {
			MarshalBinary() ([]byte, error)
			UnmarshalBinary([]byte) error
		}
		empty any
		want  string
	}{
		{"group_request", &GroupRequest{Method: MethodSend, UserURI: "mimi://b/u/x", Body: []byte{0xab, 0xcd}},
			&GroupRequest{}, "0202" + "0c" + hex.EncodeToString([]byte("mimi://b/u/x")) + "02abcd"},
		{"hub_hinted", &HubHinted{Hub: "a.example", Body: []byte{0x01}}, &HubHinted{},
			"09" + hex.EncodeToString([]byte("a.example")) + "0101"},
	} {
		b, err := c.v.MarshalBinary()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := hex.EncodeToString(b); got != c.want {
			t.Errorf("%s = %s, want %s", c.name, got, c.want)
		}
		back := c.empty.(interface{ UnmarshalBinary([]byte) error })
		if err := back.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(back, c.v) {
			t.Errorf("%s: round trip = %+v, %v", c.name, back, err)
		}
	}
}

func TestGroupLinkRefused(t *testing.T) {
	long := strings.Repeat("a", MaxDomainSize+1)
	longURI := strings.Repeat("u", MaxUserURISize+1)
	gr, _ := (&GroupRequest{Method: MethodSend, UserURI: longURI}).MarshalBinary()
	hh := NewWriter(nil)
	hh.String(long)
	hh.Opaque(nil)
	empty := NewWriter(nil)
	empty.String("")
	empty.Opaque([]byte{1})
	for _, c := range []struct {
		name string
		v    interface{ UnmarshalBinary([]byte) error }
		b    []byte
	}{
		{"group_request long uri", &GroupRequest{}, gr},
		{"group_request truncated", &GroupRequest{}, []byte{0x02}},
		{"group_request trailing", &GroupRequest{}, []byte{0x02, 0x02, 0x00, 0x00, 0xff}},
		{"hint long domain", &HubHinted{}, hh.Bytes()},
		{"hint empty domain", &HubHinted{}, empty.Bytes()},
	} {
		if err := c.v.UnmarshalBinary(c.b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", c.name, err)
		}
	}
	if _, err := (&HubHinted{}).MarshalBinary(); err == nil {
		t.Error("a hint without a hub encodes")
	}
}
