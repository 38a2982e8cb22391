package protocol

import "fmt"

// Partition subscriptions across providers (docs/protocol.md §5.12): a follower
// subscribes at a partition's hub, and the hub pushes the partition's log to it.
const (
	// EnvelopeSubscribe (follower to hub) asks the hub to push a partition it hosts
	// from a counter on: body PartitionSubscribe, ack body the masked partition key
	// (opaque<V>).
	EnvelopeSubscribe EnvelopeType = 0x0102
	// EnvelopeUnsubscribe (follower to hub) ends the follower's subscription to a
	// partition: body PartitionUnsubscribe, empty ack (also when there was none).
	EnvelopeUnsubscribe EnvelopeType = 0x0103
	// EnvelopePush (hub to follower) carries consecutive entries of one partition:
	// body PartitionPush, ack body PushAnswer.
	EnvelopePush EnvelopeType = 0x0203
)

// MaxPushEntries bounds the entries of one PartitionPush.
const MaxPushEntries = 4096

// PartitionSubscribe is the body of a subscribe envelope.
//
//	struct {
//	  PartitionKey partition_key;
//	  uint32 from;    // the first counter the follower does not hold
//	} PartitionSubscribe;
type PartitionSubscribe struct {
	PartitionKey []byte
	From         uint32
}

// MarshalBinary encodes s.
func (s *PartitionSubscribe) MarshalBinary() ([]byte, error) {
	w := NewWriter(make([]byte, 0, 4+len(s.PartitionKey)+4))
	w.Opaque(s.PartitionKey)
	w.U32(s.From)
	return w.Result()
}

// UnmarshalBinary decodes s.
func (s *PartitionSubscribe) UnmarshalBinary(b []byte) error {
	*s = PartitionSubscribe{}
	r := NewReader(b)
	s.PartitionKey = r.PartitionKey("PartitionSubscribe.partition_key")
	s.From = r.U32("PartitionSubscribe.from")
	return r.Done()
}

// PartitionUnsubscribe is the body of an unsubscribe envelope.
//
//	struct {
//	  opaque masked_partition_key<V>;   // 1..MaxMaskedLen bytes
//	} PartitionUnsubscribe;
type PartitionUnsubscribe struct {
	Masked []byte
}

// MarshalBinary encodes u.
func (u *PartitionUnsubscribe) MarshalBinary() ([]byte, error) {
	w := NewWriter(make([]byte, 0, 2+len(u.Masked)))
	w.Opaque(u.Masked)
	return w.Result()
}

// UnmarshalBinary decodes u.
func (u *PartitionUnsubscribe) UnmarshalBinary(b []byte) error {
	*u = PartitionUnsubscribe{}
	r := NewReader(b)
	u.Masked = r.OpaqueMax("PartitionUnsubscribe.masked_partition_key", MaxMaskedLen)
	if err := r.Done(); err != nil {
		return err
	}
	if len(u.Masked) == 0 {
		return fmt.Errorf("%w: PartitionUnsubscribe: empty masked key", ErrMalformed)
	}
	return nil
}

// PushEntry is one entry of a PartitionPush: a message (the encoded Message, as
// in a client push frame) or the partition's terminated event.
//
//	struct {
//	  uint32 counter;
//	  uint8 terminated;   // 0 or 1; 1: no message follows
//	  opaque message<V>;  // empty when terminated
//	} PushEntry;
type PushEntry struct {
	Counter    uint32
	Terminated bool
	Message    []byte
}

// PartitionPush is the body of a push envelope: consecutive entries of the
// partition with masked key Masked, in counter order.
//
//	struct {
//	  opaque masked_partition_key<V>;
//	  PushEntry entries<V>;   // 1..MaxPushEntries
//	} PartitionPush;
type PartitionPush struct {
	Masked  []byte
	Entries []PushEntry
}

// MarshalBinary encodes p.
func (p *PartitionPush) MarshalBinary() ([]byte, error) {
	n := 4 + len(p.Masked) + 4
	for _, e := range p.Entries {
		n += 9 + len(e.Message)
	}
	w := NewWriter(make([]byte, 0, n))
	w.Opaque(p.Masked)
	w.Vector(func(w *Writer) {
		for _, e := range p.Entries {
			w.U32(e.Counter)
			if e.Terminated {
				w.U8(1)
			} else {
				w.U8(0)
			}
			w.Opaque(e.Message)
		}
	})
	return w.Result()
}

// UnmarshalBinary decodes p: entries must be consecutive, and a terminated event
// only last.
func (p *PartitionPush) UnmarshalBinary(b []byte) error {
	*p = PartitionPush{}
	r := NewReader(b)
	p.Masked = r.OpaqueMax("PartitionPush.masked_partition_key", MaxMaskedLen)
	v := r.Vector("PartitionPush.entries")
	for v.More() {
		if len(p.Entries) == MaxPushEntries {
			return fmt.Errorf("%w: PartitionPush: more than %d entries", ErrMalformed, MaxPushEntries)
		}
		e := PushEntry{Counter: v.U32("PushEntry.counter")}
		switch v.U8("PushEntry.terminated") {
		case 0:
		case 1:
			e.Terminated = true
		default:
			v.Fail("PushEntry.terminated", ErrOptional)
		}
		e.Message = v.Opaque("PushEntry.message")
		p.Entries = append(p.Entries, e)
	}
	if err := r.Done(); err != nil {
		return err
	}
	if len(p.Masked) == 0 || len(p.Entries) == 0 {
		return fmt.Errorf("%w: PartitionPush: empty key or no entries", ErrMalformed)
	}
	for i, e := range p.Entries {
		if i > 0 && e.Counter != p.Entries[i-1].Counter+1 {
			return fmt.Errorf("%w: PartitionPush: counters not consecutive", ErrMalformed)
		}
		if e.Terminated && (i != len(p.Entries)-1 || len(e.Message) != 0) {
			return fmt.Errorf("%w: PartitionPush: terminated event not last or with a message", ErrMalformed)
		}
	}
	return nil
}

// PushAnswer is the ack body of a push envelope: where the follower's copy of the
// partition stands after applying it. The hub pushes from Next on, and stops once
// Done (the copy holds the terminated event).
//
//	struct {
//	  uint32 next;
//	  uint8 done;
//	} PushAnswer;
type PushAnswer struct {
	Next uint32
	Done bool
}

// MarshalBinary encodes a.
func (a *PushAnswer) MarshalBinary() ([]byte, error) {
	w := NewWriter(make([]byte, 0, 5))
	w.U32(a.Next)
	if a.Done {
		w.U8(1)
	} else {
		w.U8(0)
	}
	return w.Result()
}

// UnmarshalBinary decodes a.
func (a *PushAnswer) UnmarshalBinary(b []byte) error {
	*a = PushAnswer{}
	r := NewReader(b)
	a.Next = r.U32("PushAnswer.next")
	switch r.U8("PushAnswer.done") {
	case 0:
	case 1:
		a.Done = true
	default:
		r.Fail("PushAnswer.done", ErrOptional)
	}
	return r.Done()
}
