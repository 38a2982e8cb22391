package protocol

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

func sampleLinkFrames() []LinkFrame {
	return []LinkFrame{
		&Envelope{ID: 1, Type: 0x0101, Body: []byte("hello")},
		&Envelope{ID: 1<<63 + 5, Type: 0xffff, Body: bytes.Repeat([]byte{9}, 20000)},
		&EnvelopeAck{ID: 7, Body: nil},
		&EnvelopeAck{ID: 7, Body: []byte{1, 2, 3}},
		&EnvelopeError{ID: 9, Code: CodeUnknownMethod, Message: "unknown envelope type 0x0999"},
		&EnvelopeError{ID: 0, Code: CodeMalformed, Message: "bad frame"},
	}
}

func TestLinkRoundTrip(t *testing.T) {
	for _, f := range sampleLinkFrames() {
		t.Run(f.LinkType().String(), func(t *testing.T) {
			b, err := EncodeLink(f)
			if err != nil {
				t.Fatal(err)
			}
			g, err := DecodeLink(b)
			if err != nil {
				t.Fatalf("DecodeLink: %v", err)
			}
			want := f
			if a, ok := f.(*EnvelopeAck); ok && a.Body == nil {
				want = &EnvelopeAck{ID: a.ID, Body: []byte{}}
			}
			if !reflect.DeepEqual(g, want) {
				t.Fatalf("got %#v, want %#v", g, want)
			}
		})
	}
}

// TestLinkBytes pins the encoding byte by byte, as docs/protocol.md §5.3 shows it.
func TestLinkBytes(t *testing.T) {
	tests := []struct {
		f    LinkFrame
		want string
	}{
		{&Envelope{ID: 1, Type: 0xf001, Body: []byte("hi")}, "01" + "0000000000000001" + "f001" + "02" + "6869"},
		{&EnvelopeAck{ID: 2, Body: []byte{}}, "02" + "0000000000000002" + "00"},
		{&EnvelopeError{ID: 3, Code: CodeUnknownMethod, Message: "x"}, "03" + "0000000000000003" + "0003" + "01" + "78"},
	}
	for _, tc := range tests {
		b, err := EncodeLink(tc.f)
		if err != nil || hex.EncodeToString(b) != tc.want {
			t.Errorf("%s: %x (%v), want %s", tc.f.LinkType(), b, err, tc.want)
		}
	}
}

func TestLinkRefused(t *testing.T) {
	big := NewWriter(nil)
	big.U8(uint8(LinkTypeEnvelope))
	big.U64(1)
	big.U16(1)
	big.Varint(MaxEnvelopeBody + 1)
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrEmpty},
		{"unknown type", []byte{0x7f, 0}, ErrUnknownLinkFrame},
		{"truncated", []byte{1, 0, 0, 0}, ErrTruncated},
		{"envelope id 0", mustLink(&Envelope{ID: 0, Type: 1}), ErrMalformed},
		{"envelope type 0", mustLink(&Envelope{ID: 1, Type: 0}), ErrMalformed},
		{"ack id 0", mustLink(&EnvelopeAck{ID: 0}), ErrMalformed},
		{"body over the limit", big.Bytes(), ErrTooLarge},
		{"non-minimal varint", []byte{2, 0, 0, 0, 0, 0, 0, 0, 1, 0x40, 0x01, 0}, ErrVarint},
		{"trailing", append(mustLink(&EnvelopeAck{ID: 1}), 0), ErrTrailing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeLink(tc.b)
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("DecodeLink(%x) = %v, want %v (and malformed)", tc.b, err, tc.want)
			}
		})
	}
}

func TestLinkBatch(t *testing.T) {
	var msg []byte
	for _, f := range sampleLinkFrames() {
		var err error
		if msg, err = AppendLink(msg, f); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for len(msg) > 0 {
		_, rest, err := NextLink(msg)
		if err != nil {
			t.Fatalf("frame %d: %v", n, err)
		}
		msg, n = rest, n+1
	}
	if n != len(sampleLinkFrames()) {
		t.Fatalf("%d frames", n)
	}
}

func TestEnvelopeErrorIsCoded(t *testing.T) {
	var err error = &EnvelopeError{ID: 4, Code: CodePolicy, Message: "no"}
	if c, ok := CodeOf(err); !ok || c != CodePolicy {
		t.Fatalf("CodeOf = %v %v", c, ok)
	}
	if LinkCloseReason(CloseDuplicateLink) != "duplicate_link" || LinkCloseReason(4000) != "protocol_error" {
		t.Fatal("close names")
	}
}

func mustLink(f LinkFrame) []byte {
	b, err := EncodeLink(f)
	if err != nil {
		panic(err)
	}
	return b
}

func FuzzLinkFrames(f *testing.F) {
	for _, fr := range sampleLinkFrames() {
		b := mustLink(fr)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		msg := b
		for i := 0; len(msg) > 0 && i < 1000; i++ {
			fr, rest, err := NextLink(msg)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("error %v does not wrap ErrMalformed", err)
				}
				return
			}
			enc, err := EncodeLink(fr)
			if err != nil {
				t.Fatalf("decoded frame does not encode: %v", err)
			}
			if !bytes.Equal(enc, msg[:len(msg)-len(rest)]) {
				t.Fatalf("accepted %x but re-encodes to %x", msg[:len(msg)-len(rest)], enc)
			}
			msg = rest
		}
	})
}
