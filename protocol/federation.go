// The federation link: the frames two providers exchange over their one WebSocket
// (docs/protocol.md §5 is the prose form of this file). Every WebSocket message
// carries one or more link frames back to back:
//
//	enum { envelope(1), ack(2), error(3), (255) } LinkFrameType;
//
//	struct {
//	    LinkFrameType frame_type;           // uint8
//	    select (frame_type) {
//	        case envelope: uint64 id; uint16 type; opaque body<V>;
//	        case ack:      uint64 id; opaque body<V>;
//	        case error:    uint64 id; uint16 code; opaque message<V>;
//	    };
//	} LinkFrame;
//
// An envelope's id is chosen by its sender: 1, 2, 3... per sender, per peer, for the
// life of the sender's outbound stream. An ack or error answers the envelope with the
// same id sent the other way; an error with id 0 is about the link and is followed by
// a close.

package protocol

import (
	"errors"
	"fmt"
)

// The federation socket's HTTP handshake (docs/protocol.md §5.1).
const (
	// FederationPath is the WebSocket endpoint on a provider's federation listener.
	FederationPath = "/v1/federation"
	// FederationSubprotocol is the WebSocket subprotocol both sides must speak.
	FederationSubprotocol = "mimids.federation.v1"
	// HeaderDomain carries the sender's own domain: in the dialer's request it names
	// the domain its certificate must prove; the acceptor echoes its own.
	HeaderDomain = "Mimids-Domain"
	// HeaderStream carries the sender's outbound stream toward the other side, 16
	// lower-case hex digits, not all zero. A new stream restarts envelope ids at 1.
	HeaderStream = "Mimids-Stream"
)

// Limits of the federation link (docs/protocol.md §5.4). They are protocol
// constants, so that every sender knows what every receiver accepts.
const (
	// MaxEnvelopeBody is the largest body of an envelope or ack.
	MaxEnvelopeBody = 8 << 20
	// MaxLinkMessage is the read limit of one WebSocket message on a link: one
	// envelope of MaxEnvelopeBody with its header, or several smaller frames.
	MaxLinkMessage = MaxEnvelopeBody + 1024
	// MaxEnvelopeMessage is the longest message of an error frame.
	MaxEnvelopeMessage = 4096
	// MaxWindow is how many envelopes a sender may have unanswered on one link.
	MaxWindow = 256
	// MaxWindowBytes bounds the bodies of the envelopes a sender has unanswered on
	// one link; one envelope may exceed it when it is the only one.
	MaxWindowBytes = 32 << 20
	// DedupRetention is how many of a peer's most recent envelope ids a receiver
	// keeps the answers of, at least. It is above MaxWindow, so every retry of an
	// unanswered envelope finds its answer.
	DedupRetention = 1024
)

// Close codes of the federation link, beside the client socket's 1001, 1009, 4000
// and 4008, which mean the same on a link (docs/protocol.md §5.6).
const (
	// CloseTryAgainLater (RFC 6455 1013): the receiver could not apply an envelope
	// (its store failed); the sender reconnects with backoff and resends it.
	CloseTryAgainLater = 1013
	// CloseDuplicateLink: another link between the same two providers won (§5.2).
	CloseDuplicateLink = 4020
	// ClosePeerRemoved: the peer was removed from the allow-list, or its entry changed.
	ClosePeerRemoved = 4021
)

// LinkCloseReason names a close code of a federation link for logs and metrics.
func LinkCloseReason(code int) string {
	switch code {
	case CloseTryAgainLater:
		return "try_again_later"
	case CloseDuplicateLink:
		return "duplicate_link"
	case ClosePeerRemoved:
		return "peer_removed"
	case 1006:
		return "connection_lost"
	case 1011:
		return "internal_error"
	}
	return CloseReason(code)
}

// EnvelopeType says what an envelope's body is. Ranges: 0x0001-0x00ff the link
// itself, 0x0100-0x01ff follower to hub, 0x0200-0x02ff hub to follower,
// 0xf000-0xffff private use (tests). 0 is not a type.
type EnvelopeType uint16

// LinkFrameType is the first byte of every link frame.
type LinkFrameType uint8

const (
	LinkTypeEnvelope LinkFrameType = 1 // work for the receiver, answered by ack or error
	LinkTypeAck      LinkFrameType = 2 // the envelope with this id was applied; body is its answer
	LinkTypeError    LinkFrameType = 3 // the envelope with this id was refused (id 0: the link)
)

func (t LinkFrameType) String() string {
	switch t {
	case LinkTypeEnvelope:
		return "envelope"
	case LinkTypeAck:
		return "ack"
	case LinkTypeError:
		return "error"
	}
	return fmt.Sprintf("link_frame_type(%d)", uint8(t))
}

// LinkFrame is one decoded link frame: *Envelope, *EnvelopeAck or *EnvelopeError.
type LinkFrame interface {
	LinkType() LinkFrameType
	encodeLink(w *Writer)
}

// Envelope is one unit of work a provider sends a peer. ID is 1 or more, Type 1 or
// more; Body is the type's struct, at most MaxEnvelopeBody bytes.
type Envelope struct {
	ID   uint64
	Type EnvelopeType
	Body []byte
}

// EnvelopeAck answers the envelope with the same ID: it was applied, and Body is the
// receiver's answer (empty for types that answer nothing). A retried envelope gets
// the same ack as the first time.
type EnvelopeAck struct {
	ID   uint64
	Body []byte
}

// EnvelopeError refuses the envelope with the same ID, for good: the sender does not
// send it again. ID 0 reports a problem with the link itself, and a close follows.
// It is also the Go error a sender sees for a refused envelope: errors.As finds it,
// and CodeOf reports its code.
type EnvelopeError struct {
	ID      uint64
	Code    Code
	Message string
}

func (*Envelope) LinkType() LinkFrameType      { return LinkTypeEnvelope }
func (*EnvelopeAck) LinkType() LinkFrameType   { return LinkTypeAck }
func (*EnvelopeError) LinkType() LinkFrameType { return LinkTypeError }

func (f *Envelope) encodeLink(w *Writer)    { w.U64(f.ID); w.U16(uint16(f.Type)); w.Opaque(f.Body) }
func (f *EnvelopeAck) encodeLink(w *Writer) { w.U64(f.ID); w.Opaque(f.Body) }
func (f *EnvelopeError) encodeLink(w *Writer) {
	w.U64(f.ID)
	w.U16(uint16(f.Code))
	w.String(f.Message)
}

// Error makes *EnvelopeError a Go error.
func (e *EnvelopeError) Error() string {
	return fmt.Sprintf("federation: envelope %d refused: %s: %s", e.ID, e.Code, e.Message)
}

// WireCode lets CodeOf find the refusal's code.
func (e *EnvelopeError) WireCode() Code { return e.Code }

// AppendLink appends the encoding of f to buf. It fails (wrapping ErrTooLarge) only
// for a body or message over the varint limit; callers bound bodies by
// MaxEnvelopeBody before.
func AppendLink(buf []byte, f LinkFrame) ([]byte, error) {
	w := NewWriter(buf)
	w.U8(uint8(f.LinkType()))
	f.encodeLink(w)
	return w.Result()
}

// EncodeLink returns the encoding of f.
func EncodeLink(f LinkFrame) ([]byte, error) { return AppendLink(nil, f) }

// ErrUnknownLinkFrame reports a link frame type this version does not define.
var ErrUnknownLinkFrame = errors.New("protocol: unknown link frame type")

// DecodeLink parses a message that holds exactly one link frame.
func DecodeLink(b []byte) (LinkFrame, error) {
	f, rest, err := NextLink(b)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("protocol: decode link %s: %w: %w: %d", f.LinkType(), ErrMalformed, ErrTrailing, len(rest))
	}
	return f, nil
}

// NextLink parses the first link frame of b and returns it with the bytes after it;
// call it until rest is empty. Byte slices in the result alias b. Every error wraps
// ErrMalformed, and ErrTooLarge for a body or message over its limit.
func NextLink(b []byte) (f LinkFrame, rest []byte, err error) {
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("protocol: decode link: %w: %w", ErrMalformed, ErrEmpty)
	}
	r := NewReader(b[1:])
	switch t := LinkFrameType(b[0]); t {
	case LinkTypeEnvelope:
		e := &Envelope{ID: r.U64("envelope.id"), Type: EnvelopeType(r.U16("envelope.type"))}
		e.Body = r.OpaqueMax("envelope.body", MaxEnvelopeBody)
		if r.err == nil && e.ID == 0 {
			r.Fail("envelope.id", errors.New("id 0"))
		}
		if r.err == nil && e.Type == 0 {
			r.Fail("envelope.type", errors.New("type 0"))
		}
		f = e
	case LinkTypeAck:
		a := &EnvelopeAck{ID: r.U64("ack.id"), Body: r.OpaqueMax("ack.body", MaxEnvelopeBody)}
		if r.err == nil && a.ID == 0 {
			r.Fail("ack.id", errors.New("id 0"))
		}
		f = a
	case LinkTypeError:
		f = &EnvelopeError{ID: r.U64("error.id"), Code: Code(r.U16("error.code")),
			Message: string(r.OpaqueMax("error.message", MaxEnvelopeMessage))}
	default:
		return nil, nil, fmt.Errorf("protocol: decode link: %w: %w: %d", ErrMalformed, ErrUnknownLinkFrame, uint8(t))
	}
	if err := r.Err(); err != nil {
		return nil, nil, fmt.Errorf("protocol: decode link %s: %w", LinkFrameType(b[0]), err)
	}
	return f, r.b, nil
}
