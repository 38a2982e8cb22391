// The client socket: the frames a client and its provider exchange over the
// WebSocket at /v1/socket (subprotocol "mimids.v1"). docs/protocol.md §1 is the prose
// form of this file.
//
// Every frame is:
//
//	struct {
//	    FrameType frame_type;          // uint8
//	    select (frame_type) {
//	        case auth:     uint32 request_id; opaque token<V>;
//	        case auth_ok:  uint32 request_id; opaque client_id<V>; opaque user_id<V>;
//	                       uint64 pending; uint32 max_frame_size; opaque incarnation<V>;
//	        case request:  uint32 request_id; uint16 method; opaque body<V>;
//	        case response: uint32 request_id; opaque body<V>;
//	        case error:    uint32 request_id; uint16 code; opaque message<V>;
//	        case deliver:  uint64 seq; uint16 kind; uint64 enqueued_at_ms; opaque payload<V>;
//	        case ack:      uint64 seq;
//	        case push:     opaque masked_partition_key<V>; uint32 counter; opaque message<V>;
//	        case partition_event: opaque masked_partition_key<V>; uint8 event;
//	    };
//	} Frame;
//
// A WebSocket message carries one or more frames back to back: every frame is
// self-delimiting, and the server batches frames when a client is behind.

package protocol

import (
	"errors"
	"fmt"
)

// Subprotocol is the WebSocket subprotocol a client must offer.
const Subprotocol = "mimids.v1"

// FrameType is the first byte of every frame.
type FrameType uint8

const (
	TypeAuth     FrameType = 1 // client -> server: the first frame, carrying the device token
	TypeAuthOK   FrameType = 2 // server -> client: authentication accepted
	TypeRequest  FrameType = 3 // client -> server: a request, answered by response or error
	TypeResponse FrameType = 4 // server -> client: the answer to a request
	TypeError    FrameType = 5 // server -> client: a request failed (or request_id 0: the connection)
	TypeDeliver  FrameType = 6 // server -> client: a mailbox entry
	TypeAck      FrameType = 7 // client -> server: every mailbox entry up to seq is processed
	TypePush     FrameType = 8 // server -> client: a message sequenced to a subscribed partition
	// TypePartitionEvent tells a subscriber about a partition: terminated, or the
	// subscription was dropped and must be renewed.
	TypePartitionEvent FrameType = 9
)

func (t FrameType) String() string {
	switch t {
	case TypeAuth:
		return "auth"
	case TypeAuthOK:
		return "auth_ok"
	case TypeRequest:
		return "request"
	case TypeResponse:
		return "response"
	case TypeError:
		return "error"
	case TypeDeliver:
		return "deliver"
	case TypeAck:
		return "ack"
	case TypePush:
		return "push"
	case TypePartitionEvent:
		return "partition_event"
	}
	return fmt.Sprintf("frame_type(%d)", uint8(t))
}

// Frame is one decoded frame: *Auth, *AuthOK, *Request, *Response, *Error, *Deliver or *Ack.
type Frame interface {
	Type() FrameType
	encode(w *Writer)
}

// Auth is the first frame a client sends. Browsers cannot set headers on a WebSocket
// handshake, so the device token travels here.
type Auth struct {
	RequestID uint32
	Token     []byte
}

// AuthOK accepts an Auth. Pending counts the mailbox entries waiting for the client;
// they are delivered next, in order. Incarnation names the history of the
// provider's store: when it differs from the one a client saw before, the store lost
// committed writes or was restored, mailbox seqs and partition counters may have
// gone back, and the client must start its marks (the last seq it handled) over.
type AuthOK struct {
	RequestID    uint32
	ClientID     string
	UserID       string
	Pending      uint64
	MaxFrameSize uint32
	Incarnation  []byte // up to MaxIncarnation bytes (this server sends 16); empty: none named
}

// MaxIncarnation is the longest auth_ok incarnation a decoder accepts.
const MaxIncarnation = 64

// Request is a client request. RequestID is chosen by the client and echoed in the
// Response or Error; requests may be pipelined and answers may come in any order.
type Request struct {
	RequestID uint32
	Method    Method
	Body      []byte
}

// Response answers a Request.
type Response struct {
	RequestID uint32
	Body      []byte
}

// Error answers a Request that failed. RequestID 0 reports a connection-level problem
// and is followed by a close.
type Error struct {
	RequestID uint32
	Code      Code
	Message   string
}

// Deliver carries one mailbox entry. Seq increases by one for each entry of a client's
// mailbox; an entry stays in the mailbox until acknowledged.
type Deliver struct {
	Seq          uint64
	Kind         Kind
	EnqueuedAtMS uint64
	Payload      []byte
}

// Ack acknowledges every mailbox entry with a sequence number up to and including Seq.
type Ack struct {
	Seq uint64
}

// Push carries one message sequenced to a partition the client subscribed to. Message
// is the draft's Message struct (docs/protocol.md, groups). The bytes are identical
// for every subscriber, so the server encodes them once.
type Push struct {
	Masked  []byte
	Counter uint32
	Message []byte
}

// PartitionEventType says what happened to a subscribed partition.
type PartitionEventType uint8

const (
	// EventTerminated: the hub terminated the partition; sends to it are refused.
	EventTerminated PartitionEventType = 1
	// EventDropped: the server dropped the subscription (e.g. the partition was
	// removed from memory); subscribe again from the last counter.
	EventDropped PartitionEventType = 2
)

// PartitionEvent reports an event on a subscribed partition.
type PartitionEvent struct {
	Masked []byte
	Event  PartitionEventType
}

func (*Push) Type() FrameType           { return TypePush }
func (*PartitionEvent) Type() FrameType { return TypePartitionEvent }

func (f *Push) encode(w *Writer) { w.Opaque(f.Masked); w.U32(f.Counter); w.Opaque(f.Message) }
func (f *PartitionEvent) encode(w *Writer) {
	w.Opaque(f.Masked)
	w.U8(uint8(f.Event))
}

func (*Auth) Type() FrameType     { return TypeAuth }
func (*AuthOK) Type() FrameType   { return TypeAuthOK }
func (*Request) Type() FrameType  { return TypeRequest }
func (*Response) Type() FrameType { return TypeResponse }
func (*Error) Type() FrameType    { return TypeError }
func (*Deliver) Type() FrameType  { return TypeDeliver }
func (*Ack) Type() FrameType      { return TypeAck }

func (f *Auth) encode(w *Writer) { w.U32(f.RequestID); w.Opaque(f.Token) }
func (f *AuthOK) encode(w *Writer) {
	w.U32(f.RequestID)
	w.String(f.ClientID)
	w.String(f.UserID)
	w.U64(f.Pending)
	w.U32(f.MaxFrameSize)
	w.Opaque(f.Incarnation)
}
func (f *Request) encode(w *Writer)  { w.U32(f.RequestID); w.U16(uint16(f.Method)); w.Opaque(f.Body) }
func (f *Response) encode(w *Writer) { w.U32(f.RequestID); w.Opaque(f.Body) }
func (f *Error) encode(w *Writer)    { w.U32(f.RequestID); w.U16(uint16(f.Code)); w.String(f.Message) }
func (f *Deliver) encode(w *Writer) {
	w.U64(f.Seq)
	w.U16(uint16(f.Kind))
	w.U64(f.EnqueuedAtMS)
	w.Opaque(f.Payload)
}
func (f *Ack) encode(w *Writer) { w.U64(f.Seq) }

// Append appends the encoding of f to buf.
func Append(buf []byte, f Frame) []byte {
	w := NewWriter(buf)
	w.U8(uint8(f.Type()))
	f.encode(w)
	return w.Bytes()
}

// Encode returns the encoding of f.
func Encode(f Frame) []byte { return Append(nil, f) }

// ErrUnknownFrame reports a frame type this version does not define.
var ErrUnknownFrame = errors.New("wire: unknown frame type")

// ErrEmpty reports an empty WebSocket message.
var ErrEmpty = errors.New("wire: empty frame")

// Decode parses a message that holds exactly one frame. Byte slices in the result
// alias b.
func Decode(b []byte) (Frame, error) {
	f, rest, err := Next(b)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("wire: decode %s: %w: %d", f.Type(), ErrTrailing, len(rest))
	}
	return f, nil
}

// Next parses the first frame of b and returns it with the bytes after it. A
// WebSocket message may carry several frames back to back (the server batches frames
// for a client that is behind); call Next until rest is empty.
func Next(b []byte) (f Frame, rest []byte, err error) {
	if len(b) == 0 {
		return nil, nil, ErrEmpty
	}
	r := NewReader(b[1:])
	switch t := FrameType(b[0]); t {
	case TypeAuth:
		f = &Auth{RequestID: r.U32("auth.request_id"), Token: r.OpaqueMax("auth.token", 1024)}
	case TypeAuthOK:
		f = &AuthOK{
			RequestID:    r.U32("auth_ok.request_id"),
			ClientID:     string(r.Opaque("auth_ok.client_id")),
			UserID:       string(r.Opaque("auth_ok.user_id")),
			Pending:      r.U64("auth_ok.pending"),
			MaxFrameSize: r.U32("auth_ok.max_frame_size"),
			Incarnation:  r.OpaqueMax("auth_ok.incarnation", MaxIncarnation),
		}
	case TypeRequest:
		f = &Request{RequestID: r.U32("request.request_id"), Method: Method(r.U16("request.method")), Body: r.Opaque("request.body")}
	case TypeResponse:
		f = &Response{RequestID: r.U32("response.request_id"), Body: r.Opaque("response.body")}
	case TypeError:
		f = &Error{RequestID: r.U32("error.request_id"), Code: Code(r.U16("error.code")), Message: string(r.Opaque("error.message"))}
	case TypeDeliver:
		f = &Deliver{Seq: r.U64("deliver.seq"), Kind: Kind(r.U16("deliver.kind")), EnqueuedAtMS: r.U64("deliver.enqueued_at_ms"), Payload: r.Opaque("deliver.payload")}
	case TypeAck:
		f = &Ack{Seq: r.U64("ack.seq")}
	case TypePush:
		f = &Push{Masked: r.Opaque("push.masked_partition_key"), Counter: r.U32("push.counter"), Message: r.Opaque("push.message")}
	case TypePartitionEvent:
		f = &PartitionEvent{Masked: r.Opaque("partition_event.masked_partition_key"), Event: PartitionEventType(r.U8("partition_event.event"))}
	default:
		return nil, nil, fmt.Errorf("%w: %d", ErrUnknownFrame, uint8(t))
	}
	if err := r.Err(); err != nil {
		return nil, nil, fmt.Errorf("wire: decode %s: %w", FrameType(b[0]), err)
	}
	return f, r.b, nil
}
