package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
)

func TestPartitionPushRoundTrip(t *testing.T) {
	p := PartitionPush{Masked: []byte("masked"), Entries: []PushEntry{
		{Counter: 4, Message: []byte("a")}, {Counter: 5, Message: []byte("bc")}, {Counter: 6, Terminated: true, Message: []byte{}}}}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var q PartitionPush
	if err := q.UnmarshalBinary(b); err != nil || len(q.Entries) != 3 || !q.Entries[2].Terminated ||
		!bytes.Equal(q.Entries[1].Message, []byte("bc")) || q.Entries[0].Counter != 4 {
		t.Fatalf("round trip: %+v %v", q, err)
	}
	s := PartitionSubscribe{PartitionKey: bytes.Repeat([]byte{1}, PartitionKeySize), From: 9}
	b, _ = s.MarshalBinary()
	var s2 PartitionSubscribe
	if err := s2.UnmarshalBinary(b); err != nil || s2.From != 9 || !bytes.Equal(s2.PartitionKey, s.PartitionKey) {
		t.Fatalf("subscribe round trip: %+v %v", s2, err)
	}
	a := PushAnswer{Next: 7, Done: true}
	b, _ = a.MarshalBinary()
	var a2 PushAnswer
	if err := a2.UnmarshalBinary(b); err != nil || a2 != a {
		t.Fatalf("answer round trip: %+v %v", a2, err)
	}
}

func TestPartitionPushMalformed(t *testing.T) {
	many := make([]PushEntry, MaxPushEntries+1)
	for i := range many {
		many[i].Counter = uint32(i)
	}
	for _, c := range []struct {
		name string
		p    PartitionPush
	}{
		{"no entries", PartitionPush{Masked: []byte("m")}},
		{"no key", PartitionPush{Entries: []PushEntry{{Counter: 1}}}},
		{"gap", PartitionPush{Masked: []byte("m"), Entries: []PushEntry{{Counter: 1}, {Counter: 3}}}},
		{"terminated not last", PartitionPush{Masked: []byte("m"), Entries: []PushEntry{{Counter: 1, Terminated: true}, {Counter: 2}}}},
		{"terminated with a message", PartitionPush{Masked: []byte("m"), Entries: []PushEntry{{Counter: 1, Terminated: true, Message: []byte("x")}}}},
		{"too many", PartitionPush{Masked: []byte("m"), Entries: many}},
	} {
		b, err := c.p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var q PartitionPush
		if err := q.UnmarshalBinary(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want malformed", c.name, err)
		}
	}
}

// The byte-by-byte examples of docs/protocol.md §5.12.
func TestPartitionPushDocExample(t *testing.T) {
	b, _ := (&PartitionPush{Masked: []byte{0xaa, 0xbb}, Entries: []PushEntry{{Counter: 5, Message: []byte{1}}}}).MarshalBinary()
	if got := fmt.Sprintf("%x", b); got != "02aabb07000000050001"+"01" {
		t.Errorf("PartitionPush: %s", got)
	}
	b, _ = (&PushAnswer{Next: 6}).MarshalBinary()
	if got := fmt.Sprintf("%x", b); got != "0000000600" {
		t.Errorf("PushAnswer: %s", got)
	}
}

// PartitionUnsubscribe round-trips, refuses an empty or over-long key, and encodes
// as docs/protocol.md §5.14 shows.
func TestPartitionUnsubscribe(t *testing.T) {
	b, err := (&PartitionUnsubscribe{Masked: []byte{0xaa, 0xbb}}).MarshalBinary()
	if err != nil || fmt.Sprintf("%x", b) != "02aabb" {
		t.Fatalf("encoding %x, %v", b, err)
	}
	var u PartitionUnsubscribe
	if err := u.UnmarshalBinary(b); err != nil || string(u.Masked) != "\xaa\xbb" {
		t.Fatalf("decode: %+v %v", u, err)
	}
	long, _ := (&PartitionUnsubscribe{Masked: make([]byte, MaxMaskedLen+1)}).MarshalBinary()
	for _, bad := range [][]byte{{0x00}, long, append(b, 0), {}} {
		if err := u.UnmarshalBinary(bad); err == nil {
			t.Errorf("%x accepted", bad)
		}
	}
}
