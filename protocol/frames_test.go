package protocol

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func sampleFrames() []Frame {
	return []Frame{
		&Auth{RequestID: 1, Token: []byte("mdt_secret")},
		&AuthOK{RequestID: 1, ClientID: "mimi://a.example/d/alice/phone", UserID: "mimi://a.example/u/alice", Pending: 3, MaxFrameSize: 1 << 20,
			Incarnation: bytes.Repeat([]byte{0x5e}, 16)},
		&AuthOK{RequestID: 2, ClientID: "mimi://a.example/d/bob/laptop", UserID: "mimi://a.example/u/bob"},
		&Request{RequestID: 7, Method: MethodPing, Body: []byte("hello")},
		&Response{RequestID: 7, Body: bytes.Repeat([]byte{0xab}, 300)},
		&Error{RequestID: 9, Code: CodeUnknownMethod, Message: "method(0x0999)"},
		&Deliver{Seq: 42, Kind: KindNotice, EnqueuedAtMS: 1700000000000, Payload: bytes.Repeat([]byte{1}, 20000)},
		&Ack{Seq: 42},
		&Push{Masked: bytes.Repeat([]byte{7}, 32), Counter: 3, Message: []byte("mls")},
		&PartitionEvent{Masked: bytes.Repeat([]byte{7}, 32), Event: EventTerminated},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, f := range sampleFrames() {
		t.Run(f.Type().String(), func(t *testing.T) {
			b := Encode(f)
			g, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(normalize(f), normalize(g)) {
				t.Fatalf("round trip: got %#v, want %#v", g, f)
			}
			if !bytes.Equal(Encode(g), b) {
				t.Fatal("re-encoding differs")
			}
		})
	}
}

// normalize turns empty byte slices into nil so DeepEqual compares meaning.
func normalize(f Frame) Frame {
	switch f := f.(type) {
	case *Request:
		if len(f.Body) == 0 {
			c := *f
			c.Body = nil
			return &c
		}
	case *Response:
		if len(f.Body) == 0 {
			c := *f
			c.Body = nil
			return &c
		}
	case *AuthOK:
		if len(f.Incarnation) == 0 {
			c := *f
			c.Incarnation = nil
			return &c
		}
	}
	return f
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrEmpty},
		{"unknown type", []byte{0x99, 0, 0}, ErrUnknownFrame},
		{"truncated ack", []byte{byte(TypeAck), 0, 0, 0}, ErrTruncated},
		{"trailing", append(Encode(&Ack{Seq: 1}), 0), ErrTrailing},
		{"length past end", []byte{byte(TypeResponse), 0, 0, 0, 1, 0x80, 0x10, 0, 0}, ErrTruncated},
		{"non-minimal varint", []byte{byte(TypeResponse), 0, 0, 0, 1, 0x40, 0x01, 0xaa}, ErrVarint},
		{"varint prefix 3", []byte{byte(TypeResponse), 0, 0, 0, 1, 0xc0, 0, 0, 0, 0, 0, 0, 1}, ErrVarint},
		{"token too long", Encode(&Auth{Token: make([]byte, 2000)}), ErrTooLarge},
		{"incarnation too long", Encode(&AuthOK{Incarnation: make([]byte, MaxIncarnation+1)}), ErrTooLarge},
		// auth_ok as servers sent it before the incarnation was added.
		{"auth_ok without incarnation", func() []byte { b := Encode(&AuthOK{}); return b[:len(b)-1] }(), ErrTruncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(tc.in)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Decode(%x) = %v, want %v", tc.in, err, tc.want)
			}
		})
	}
}

func TestNextBatch(t *testing.T) {
	var msg []byte
	frames := sampleFrames()
	for _, f := range frames {
		msg = Append(msg, f)
	}
	for i := 0; len(msg) > 0; i++ {
		f, rest, err := Next(msg)
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if f.Type() != frames[i].Type() {
			t.Fatalf("frame %d is %s, want %s", i, f.Type(), frames[i].Type())
		}
		msg = rest
	}
	if _, _, err := Next(append(Encode(&Ack{Seq: 1}), byte(TypeAck), 0)); err != nil {
		t.Fatalf("first of a truncated batch: %v", err)
	}
}

func TestVarint(t *testing.T) {
	for _, v := range []int{0, 1, 63, 64, 16383, 16384, MaxVarint} {
		w := NewWriter(nil)
		w.Varint(v)
		r := NewReader(w.Bytes())
		if got := r.Varint("v"); got != v || r.Done() != nil {
			t.Fatalf("varint %d: got %d, err %v", v, got, r.Done())
		}
	}
}

func TestPayloads(t *testing.T) {
	n := Notice{Text: "maintenance at 22:00"}
	b, _ := n.MarshalBinary()
	var m Notice
	if err := m.UnmarshalBinary(b); err != nil || m != n {
		t.Fatalf("notice round trip: %v %+v", err, m)
	}
	if err := m.UnmarshalBinary(append(b, 1)); !errors.Is(err, ErrTrailing) {
		t.Fatalf("notice trailing: %v", err)
	}
	s := MailboxStatus{Pending: 2, FirstSeq: 5, LastSeq: 6}
	b, _ = s.MarshalBinary()
	var s2 MailboxStatus
	if err := s2.UnmarshalBinary(b); err != nil || s2 != s {
		t.Fatalf("status round trip: %v %+v", err, s2)
	}
	if err := s2.UnmarshalBinary(b[:10]); !errors.Is(err, ErrTruncated) {
		t.Fatalf("status truncated: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, fr := range sampleFrames() {
		f.Add(Encode(fr))
	}
	f.Add([]byte{})
	f.Add([]byte{0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := Decode(b)
		if err != nil {
			return
		}
		if got := Encode(fr); !bytes.Equal(got, b) {
			t.Fatalf("accepted %x but re-encodes to %x", b, got)
		}
	})
}

func FuzzPayloads(f *testing.F) {
	b, _ := Notice{Text: "x"}.MarshalBinary()
	f.Add(b)
	b, _ = (&GroupRequest{Method: MethodSend, UserURI: "mimi://b.example/u/bob", Body: []byte{1, 2}}).MarshalBinary()
	f.Add(b)
	b, _ = (&HubHinted{Hub: "a.example", Body: []byte{1}}).MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var g GroupRequest
		if g.UnmarshalBinary(b) == nil {
			if e, _ := g.MarshalBinary(); !bytes.Equal(e, b) {
				t.Fatal("group_request does not round-trip")
			}
		}
		var h HubHinted
		if h.UnmarshalBinary(b) == nil {
			if e, _ := h.MarshalBinary(); !bytes.Equal(e, b) {
				t.Fatal("hub hint does not round-trip")
			}
		}
		var n Notice
		if n.UnmarshalBinary(b) == nil {
			if e, _ := n.MarshalBinary(); !bytes.Equal(e, b) {
				t.Fatal("notice does not round-trip")
			}
		}
		var s MailboxStatus
		if s.UnmarshalBinary(b) == nil {
			if e, _ := s.MarshalBinary(); !bytes.Equal(e, b) {
				t.Fatal("status does not round-trip")
			}
		}
	})
}

func BenchmarkDecodeDeliver(b *testing.B) {
	buf := Encode(&Deliver{Seq: 1, Kind: KindNotice, EnqueuedAtMS: 1, Payload: make([]byte, 256)})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(buf); err != nil {
			b.Fatal(err)
		}
	}
}
