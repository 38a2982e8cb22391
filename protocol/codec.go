package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mimids/mimids/mls"
)

// The one TLS presentation language codec (RFC 9420 §2.1, with the §2.1.2
// variable-length integers for every <V> vector) behind every struct of this
// package: the draft's, the KeyPackage and discovery structs and the socket frames.

// MaxVarint is the largest length a variable-length integer can carry (RFC 9420 §2.1.2).
const MaxVarint = 1<<30 - 1

// Decoding errors. Every error a Reader reports wraps ErrMalformed and one of the
// more precise sentinels below, and names the field it met.
var (
	// ErrMalformed reports bytes that do not decode as the expected struct, or a
	// struct whose values break the protocol's rules.
	ErrMalformed = NewError(CodeMalformed, "protocol: malformed message")
	// ErrTruncated reports input that ends inside a field.
	ErrTruncated = errors.New("protocol: truncated")
	// ErrVarint reports a length prefix that is not a minimal, valid varint.
	ErrVarint = errors.New("protocol: invalid variable-length integer")
	// ErrTooLarge reports a field over its limit (decoding or encoding).
	ErrTooLarge = NewError(CodeTooLarge, "protocol: field too large")
	// ErrTrailing reports bytes left after a complete value.
	ErrTrailing = errors.New("protocol: trailing bytes")
	// ErrOptional reports an optional<T> presence octet that is neither 0 nor 1.
	ErrOptional = errors.New("protocol: optional presence octet not 0 or 1")
)

// Writer appends TLS presentation language values to a byte slice. A length over
// MaxVarint makes the writer fail: Err and Result report it (wrapping ErrTooLarge),
// and the bytes written so far are not a valid encoding.
type Writer struct {
	b   []byte
	err error
}

// NewWriter returns a Writer that appends to buf.
func NewWriter(buf []byte) *Writer { return &Writer{b: buf} }

// Bytes returns the encoded bytes. Callers whose lengths are not bounded by
// construction check Err (or use Result).
func (w *Writer) Bytes() []byte { return w.b }

// Err returns the first encoding error, or nil.
func (w *Writer) Err() error { return w.err }

// Result returns the encoded bytes, or the first encoding error.
func (w *Writer) Result() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	return w.b, nil
}

func (w *Writer) U8(v uint8)   { w.b = append(w.b, v) }
func (w *Writer) U16(v uint16) { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *Writer) U32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *Writer) U64(v uint64) { w.b = binary.BigEndian.AppendUint64(w.b, v) }

// Varint appends v in the minimal RFC 9420 §2.1.2 encoding; v over MaxVarint (or
// negative) fails the writer.
func (w *Writer) Varint(v int) {
	switch {
	case v < 0 || v > MaxVarint:
		if w.err == nil {
			w.err = fmt.Errorf("%w: length %d outside [0, 2^30-1]", ErrTooLarge, v)
		}
	case v < 1<<6:
		w.b = append(w.b, byte(v))
	case v < 1<<14:
		w.b = append(w.b, 0x40|byte(v>>8), byte(v))
	default:
		w.b = append(w.b, 0x80|byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
}

// VarintSize is the length of v's minimal varint encoding.
func VarintSize(v int) int {
	switch {
	case v < 1<<6:
		return 1
	case v < 1<<14:
		return 2
	}
	return 4
}

// Opaque appends opaque data<V>.
func (w *Writer) Opaque(p []byte) {
	w.Varint(len(p))
	w.b = append(w.b, p...)
}

// String appends a UTF-8 string as opaque data<V>.
func (w *Writer) String(s string) {
	w.Varint(len(s))
	w.b = append(w.b, s...)
}

// Raw appends an already encoded value (an MLSMessage, a RatchetTree).
func (w *Writer) Raw(b []byte) { w.b = append(w.b, b...) }

// Optional appends an optional<T> presence octet.
func (w *Writer) Optional(present bool) {
	if present {
		w.U8(1)
	} else {
		w.U8(0)
	}
}

// Vector appends the body that fn writes, prefixed with its minimal length: the
// body is written in place and shifted once its length is known.
func (w *Writer) Vector(fn func(w *Writer)) {
	start := len(w.b)
	fn(w)
	n := len(w.b) - start
	var hdr [4]byte
	h := Writer{b: hdr[:0]}
	h.Varint(n)
	if h.err != nil {
		if w.err == nil {
			w.err = h.err
		}
		return
	}
	w.b = append(w.b, h.b...)
	copy(w.b[start+len(h.b):], w.b[start:start+n])
	copy(w.b[start:], h.b)
}

// Reader consumes TLS presentation language values. The first error sticks: later
// reads return zero values, and Err reports the first failure with the field it hit.
// Lengths are checked against the remaining input before anything is sliced, so a
// hostile prefix cannot make the reader allocate; results alias the input.
type Reader struct {
	b      []byte
	err    error
	parent *Reader // a Vector's reader reports its failure to the enclosing one too
}

// NewReader returns a Reader over b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err returns the first error met, or nil.
func (r *Reader) Err() error { return r.err }

// Len reports the bytes not yet consumed.
func (r *Reader) Len() int { return len(r.b) }

// More reports whether input remains and no error was met.
func (r *Reader) More() bool { return r.err == nil && len(r.b) > 0 }

// Fail records err for field unless an error is already recorded; later reads
// return zero values. It lets a decoder report a value that parsed but breaks a
// rule of the struct.
func (r *Reader) Fail(field string, err error) {
	if r.err != nil {
		return
	}
	r.err = fmt.Errorf("%w: %s: %w", ErrMalformed, field, err)
	r.b = nil
	for p := r.parent; p != nil; p = p.parent {
		if p.err == nil {
			p.err = r.err
			p.b = nil
		}
	}
}

// Raw reads n bytes.
func (r *Reader) Raw(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.Fail(field, ErrTruncated)
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *Reader) U8(field string) uint8 {
	if p := r.Raw(field, 1); p != nil {
		return p[0]
	}
	return 0
}

func (r *Reader) U16(field string) uint16 {
	if p := r.Raw(field, 2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *Reader) U32(field string) uint32 {
	if p := r.Raw(field, 4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *Reader) U64(field string) uint64 {
	if p := r.Raw(field, 8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// Varint reads a minimally encoded RFC 9420 §2.1.2 variable-length integer.
func (r *Reader) Varint(field string) int {
	p := r.Raw(field, 1)
	if p == nil {
		return 0
	}
	prefix := p[0] >> 6
	if prefix == 3 {
		r.Fail(field, ErrVarint)
		return 0
	}
	n := 1 << prefix
	v := int(p[0] & 0x3f)
	for _, c := range r.Raw(field, n-1) {
		v = v<<8 | int(c)
	}
	if r.err != nil {
		return 0
	}
	if prefix > 0 && v < 1<<(8*(n/2)-2) {
		r.Fail(field, ErrVarint)
		return 0
	}
	return v
}

// Opaque reads opaque data<V>.
func (r *Reader) Opaque(field string) []byte {
	return r.Raw(field, r.Varint(field))
}

// OpaqueMax reads opaque data<V> of at most max bytes; the limit is checked before
// the body is read.
func (r *Reader) OpaqueMax(field string, max int) []byte {
	n := r.Varint(field)
	if r.err == nil && n > max {
		r.Fail(field, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, n, max))
		return nil
	}
	return r.Raw(field, n)
}

// Vector reads a vector's length and returns a reader over its body. A failure
// inside the body is also the enclosing reader's.
func (r *Reader) Vector(field string) *Reader {
	body := r.Raw(field, r.Varint(field))
	return &Reader{b: body, err: r.err, parent: r}
}

// Optional reads an optional<T> presence octet.
func (r *Reader) Optional(field string) bool {
	switch r.U8(field) {
	case 0:
		return false
	case 1:
		return true
	}
	r.Fail(field, ErrOptional)
	return false
}

// Done reports the first error, or trailing bytes after a complete value.
func (r *Reader) Done() error {
	if r.err == nil && len(r.b) != 0 {
		r.Fail("end", fmt.Errorf("%w: %d", ErrTrailing, len(r.b)))
	}
	return r.err
}

// PartitionKey reads a PartitionKey: opaque<V> of exactly PartitionKeySize bytes.
func (r *Reader) PartitionKey(field string) []byte {
	b := r.OpaqueMax(field, PartitionKeySize)
	if r.err == nil && len(b) != PartitionKeySize {
		r.Fail(field, fmt.Errorf("%d bytes, want %d", len(b), PartitionKeySize))
		return nil
	}
	return b
}

// MLSMessage reads an MLSMessage embedded without a length prefix: it is
// self-delimiting, so the mls decoder finds its end (the offset of the bytes it
// reports as trailing). It returns the encoded message (aliasing the input) and the
// decoded one.
func (r *Reader) MLSMessage(field string) ([]byte, *mls.MLSMessage) {
	if r.err != nil {
		return nil, nil
	}
	rest := r.b
	m := new(mls.MLSMessage)
	err := m.Unmarshal(rest)
	n := len(rest)
	if err != nil {
		var de *mls.DecodeError
		if !errors.As(err, &de) || !errors.Is(de.Err, mls.ErrTrailingData) || de.Offset <= 0 || de.Offset >= len(rest) {
			r.Fail(field, err)
			return nil, nil
		}
		n = de.Offset
		m = new(mls.MLSMessage)
		if err := m.Unmarshal(rest[:n]); err != nil {
			r.Fail(field, err)
			return nil, nil
		}
	}
	b := rest[:n:n]
	r.b = rest[n:]
	return b, m
}

// RatchetTree reads a RatchetTree vector whole and decodes it; it returns the
// encoding with its length prefix (aliasing the input) and the decoded tree.
func (r *Reader) RatchetTree(field string) ([]byte, mls.RatchetTree) {
	start := r.b
	r.Raw(field, r.Varint(field))
	if r.err != nil {
		return nil, nil
	}
	n := len(start) - len(r.b)
	raw := start[:n:n]
	t, err := mls.DecodeRatchetTree(raw)
	if err != nil {
		r.Fail(field, err)
		return nil, nil
	}
	return raw, t
}
