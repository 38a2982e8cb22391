package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrTruncated reports input that ends inside a field.
var ErrTruncated = errors.New("wire: truncated")

// MaxVarint is the largest length a variable-length integer can carry (RFC 9420 §2.1.2).
const MaxVarint = 1<<30 - 1

// Writer appends TLS presentation language values to a byte slice.
type Writer struct{ b []byte }

// NewWriter returns a Writer that appends to buf.
func NewWriter(buf []byte) *Writer { return &Writer{b: buf} }

// Bytes returns the encoded bytes.
func (w *Writer) Bytes() []byte { return w.b }

func (w *Writer) U8(v uint8)   { w.b = append(w.b, v) }
func (w *Writer) U16(v uint16) { w.b = binary.BigEndian.AppendUint16(w.b, v) }
func (w *Writer) U32(v uint32) { w.b = binary.BigEndian.AppendUint32(w.b, v) }
func (w *Writer) U64(v uint64) { w.b = binary.BigEndian.AppendUint64(w.b, v) }

// Varint appends v in the minimal RFC 9420 §2.1.2 encoding. v must be at most MaxVarint.
func (w *Writer) Varint(v int) {
	switch {
	case v < 0 || v > MaxVarint:
		panic(fmt.Sprintf("wire: varint %d out of range", v))
	case v < 1<<6:
		w.b = append(w.b, byte(v))
	case v < 1<<14:
		w.b = append(w.b, 0x40|byte(v>>8), byte(v))
	default:
		w.b = append(w.b, 0x80|byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
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

// Reader consumes TLS presentation language values. The first error sticks: later
// reads return zero values, and Err reports the first failure with the field it hit.
type Reader struct {
	b   []byte
	err error
}

// NewReader returns a Reader over b. Opaque values alias b.
func NewReader(b []byte) *Reader { return &Reader{b: b} }

// Err returns the first error met, or nil.
func (r *Reader) Err() error { return r.err }

// Len reports the bytes not yet consumed.
func (r *Reader) Len() int { return len(r.b) }

func (r *Reader) fail(field string, err error) {
	if r.err == nil {
		r.err = fmt.Errorf("%s: %w", field, err)
	}
}

func (r *Reader) take(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.fail(field, ErrTruncated)
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *Reader) U8(field string) uint8 {
	if p := r.take(field, 1); p != nil {
		return p[0]
	}
	return 0
}

func (r *Reader) U16(field string) uint16 {
	if p := r.take(field, 2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *Reader) U32(field string) uint32 {
	if p := r.take(field, 4); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *Reader) U64(field string) uint64 {
	if p := r.take(field, 8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// ErrVarint reports a length prefix that is not a minimal, valid RFC 9420 varint.
var ErrVarint = errors.New("wire: invalid variable-length integer")

// Varint reads a minimally encoded RFC 9420 §2.1.2 variable-length integer.
func (r *Reader) Varint(field string) int {
	p := r.take(field, 1)
	if p == nil {
		return 0
	}
	prefix := p[0] >> 6
	v := int(p[0] & 0x3f)
	switch prefix {
	case 0:
		return v
	case 1:
		q := r.take(field, 1)
		if q == nil {
			return 0
		}
		v = v<<8 | int(q[0])
		if v < 1<<6 {
			r.fail(field, ErrVarint)
			return 0
		}
		return v
	case 2:
		q := r.take(field, 3)
		if q == nil {
			return 0
		}
		v = v<<24 | int(q[0])<<16 | int(q[1])<<8 | int(q[2])
		if v < 1<<14 {
			r.fail(field, ErrVarint)
			return 0
		}
		return v
	default:
		r.fail(field, ErrVarint)
		return 0
	}
}

// Opaque reads opaque data<V>; the result aliases the input. The length is checked
// against the remaining input before anything is sliced, so a hostile prefix cannot
// make the reader allocate.
func (r *Reader) Opaque(field string) []byte {
	n := r.Varint(field)
	return r.take(field, n)
}

// OpaqueMax reads opaque data<V> of at most max bytes.
func (r *Reader) OpaqueMax(field string, max int) []byte {
	p := r.Opaque(field)
	if r.err == nil && len(p) > max {
		r.fail(field, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(p), max))
		return nil
	}
	return p
}

// ErrTooLarge reports a field over its limit.
var ErrTooLarge = errors.New("wire: field too large")

// ErrTrailing reports bytes left after a complete value.
var ErrTrailing = errors.New("wire: trailing bytes")

// Done reports the first error, or ErrTrailing if input remains.
func (r *Reader) Done() error {
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d", ErrTrailing, len(r.b))
	}
	return nil
}
