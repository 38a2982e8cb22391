package protocol

import (
	"github.com/mimids/mimids/mls"
)

// ReceiveRequest is the draft's ReceiveRequest: counter is the number of
// messages of the partition the receiver already has.
//
//	struct {
//	  PartitionKey partition_key;
//	  uint32 counter;
//	} ReceiveRequest;
type ReceiveRequest struct {
	PartitionKey []byte
	Counter      uint32
}

// MarshalBinary encodes q.
func (q *ReceiveRequest) MarshalBinary() ([]byte, error) {
	w := NewWriter(make([]byte, 0, 1+PartitionKeySize+4))
	w.Opaque(q.PartitionKey)
	w.U32(q.Counter)
	return w.Result()
}

// UnmarshalBinary decodes q.
func (q *ReceiveRequest) UnmarshalBinary(b []byte) error {
	r := NewReader(b)
	q.PartitionKey = r.PartitionKey("ReceiveRequest.partition_key")
	q.Counter = r.U32("ReceiveRequest.counter")
	return r.Done()
}

// Message is the draft's Message. Only commits carry the masked key of the
// partition they open and their GroupInfo:
//
//	struct {
//	  MLSMessage message; // PublicMessage or PrivateMessage
//	  select (Message.message.content_type) {
//	    case application:
//	    case proposal:
//	    case commit:
//	      MaskedPartitionKey next_partition_key;
//	      optional<MLSMessage> group_info; // GroupInfo
//	  }
//	} Message;
//
// ContentType is not on the wire (it is in the message); the encoder trusts
// it and the decoder sets it.
type Message struct {
	Message          []byte // encoded MLSMessage
	ContentType      mls.ContentType
	NextPartitionKey []byte // masked; commits only
	GroupInfo        []byte // encoded MLSMessage(GroupInfo); commits only, nil when absent
}

func (m *Message) size() int {
	n := len(m.Message)
	if m.ContentType == mls.ContentTypeCommit {
		n += VarintSize(len(m.NextPartitionKey)) + len(m.NextPartitionKey) + 1 + len(m.GroupInfo)
	}
	return n
}

func (m *Message) encode(w *Writer) {
	w.Raw(m.Message)
	if m.ContentType == mls.ContentTypeCommit {
		w.Opaque(m.NextPartitionKey)
		w.Optional(m.GroupInfo != nil)
		w.Raw(m.GroupInfo)
	}
}

func (m *Message) decode(r *Reader) {
	var msg *mls.MLSMessage
	m.Message, msg = r.MLSMessage("Message.message")
	m.ContentType = decodeContentType(r, msg, "Message.message")
	if m.ContentType != mls.ContentTypeCommit {
		return
	}
	m.NextPartitionKey = r.OpaqueMax("Message.next_partition_key", MaxMaskedLen)
	if r.Optional("Message.group_info") {
		var gi *mls.MLSMessage
		m.GroupInfo, gi = r.MLSMessage("Message.group_info")
		if r.err == nil && gi.WireFormat != mls.WireFormatGroupInfo {
			r.Fail("Message.group_info", ErrNotGroupInfo)
		}
	}
}

// Epoch is the draft's Epoch: messages in processing order.
//
//	struct { Message messages<V>; } Epoch;
type Epoch struct {
	Messages []Message
}

func (e *Epoch) encode(w *Writer) {
	w.Vector(func(w *Writer) {
		for i := range e.Messages {
			e.Messages[i].encode(w)
		}
	})
}

func (e *Epoch) decode(r *Reader) {
	v := r.Vector("Epoch.messages")
	for v.More() {
		var m Message
		m.decode(v)
		e.Messages = append(e.Messages, m)
	}
}

// HintedEpoch is the draft's HintedEpoch: the messages of another partition,
// from its start.
//
//	struct {
//	  MaskedPartitionKey masked_partition_key;
//	  Epoch epoch;
//	} HintedEpoch;
type HintedEpoch struct {
	MaskedPartitionKey []byte
	Epoch              Epoch
}

// ReceiveResponse is the draft's ReceiveResponse:
//
//	struct {
//	  Epoch epoch;
//	  HintedEpoch hints<V>;
//	} ReceiveResponse;
type ReceiveResponse struct {
	Epoch Epoch
	Hints []HintedEpoch
}

// MarshalBinary encodes q.
func (q *ReceiveResponse) MarshalBinary() ([]byte, error) {
	n := 16
	for i := range q.Epoch.Messages {
		n += q.Epoch.Messages[i].size()
	}
	for i := range q.Hints {
		n += 8 + len(q.Hints[i].MaskedPartitionKey)
		for j := range q.Hints[i].Epoch.Messages {
			n += q.Hints[i].Epoch.Messages[j].size()
		}
	}
	w := NewWriter(make([]byte, 0, n))
	q.Epoch.encode(w)
	w.Vector(func(w *Writer) {
		for i := range q.Hints {
			w.Opaque(q.Hints[i].MaskedPartitionKey)
			q.Hints[i].Epoch.encode(w)
		}
	})
	return w.Result()
}

// UnmarshalBinary decodes q; the fields alias b.
func (q *ReceiveResponse) UnmarshalBinary(b []byte) error {
	*q = ReceiveResponse{}
	r := NewReader(b)
	q.Epoch.decode(r)
	v := r.Vector("ReceiveResponse.hints")
	for v.More() {
		var h HintedEpoch
		h.MaskedPartitionKey = v.OpaqueMax("HintedEpoch.masked_partition_key", MaxMaskedLen)
		h.Epoch.decode(v)
		q.Hints = append(q.Hints, h)
	}
	return r.Done()
}

// MarshalBinary encodes m alone (the body of a push frame on the client socket).
func (m *Message) MarshalBinary() ([]byte, error) {
	w := NewWriter(make([]byte, 0, m.size()+8))
	m.encode(w)
	return w.Result()
}

// UnmarshalBinary decodes m alone.
func (m *Message) UnmarshalBinary(b []byte) error {
	r := NewReader(b)
	m.decode(r)
	return r.Done()
}
