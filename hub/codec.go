package hub

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/mimids/mimids/mls"
)

// maxVarint is the largest length an RFC 9420 §2.1.2 varint can carry.
const maxVarint = 1<<30 - 1

// reader decodes the TLS presentation language of RFC 9420 §2.1. Errors are
// sticky: after the first failure every read returns a zero value and err
// keeps the first error, which wraps ErrMalformed and names the field.
// Lengths are checked against the remaining input before anything is
// sliced; results alias the input.
type reader struct {
	buf []byte
	off int
	err error
}

func (r *reader) fail(field string, err error) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s: %w", ErrMalformed, field, err)
	}
	r.off = len(r.buf)
}

var (
	errTruncated = errors.New("truncated")
	errVarint    = errors.New("invalid variable-length integer")
	errOptional  = errors.New("optional presence octet not 0 or 1")
	errTrailing  = errors.New("trailing bytes")
)

func (r *reader) take(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.buf)-r.off {
		r.fail(field, errTruncated)
		return nil
	}
	b := r.buf[r.off : r.off+n : r.off+n]
	r.off += n
	return b
}

func (r *reader) u8(field string) uint8 {
	if b := r.take(field, 1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u32(field string) uint32 {
	if b := r.take(field, 4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

// varint reads a minimally encoded §2.1.2 variable-length integer.
func (r *reader) varint(field string) int {
	b := r.take(field, 1)
	if b == nil {
		return 0
	}
	prefix := b[0] >> 6
	if prefix == 3 {
		r.fail(field, errVarint)
		return 0
	}
	n := 1 << prefix
	v := int(b[0] & 0x3f)
	rest := r.take(field, n-1)
	if r.err != nil {
		return 0
	}
	for _, c := range rest {
		v = v<<8 | int(c)
	}
	if prefix > 0 && v < 1<<(8*(n/2)-2) {
		r.fail(field, errVarint)
		return 0
	}
	return v
}

// opaque reads opaque<V> of at most max bytes.
func (r *reader) opaque(field string, max int) []byte {
	n := r.varint(field)
	if r.err == nil && n > max {
		r.fail(field, fmt.Errorf("%d bytes, limit %d", n, max))
		return nil
	}
	return r.take(field, n)
}

// vector reads a vector's length and returns a reader over its body.
func (r *reader) vector(field string) *reader {
	body := r.take(field, r.varint(field))
	sub := &reader{buf: body}
	if r.err != nil {
		sub.err = r.err
	}
	return sub
}

// done folds a sub-reader's error into r.
func (r *reader) absorb(sub *reader) {
	if sub.err != nil && r.err == nil {
		r.err = sub.err
		r.off = len(r.buf)
	}
}

func (r *reader) more() bool { return r.err == nil && r.off < len(r.buf) }

func (r *reader) optional(field string) bool {
	switch r.u8(field) {
	case 0:
		return false
	case 1:
		return true
	}
	if r.err == nil {
		r.fail(field, errOptional)
	}
	return false
}

// finish reports the first error, or trailing bytes.
func (r *reader) finish(what string) error {
	if r.err == nil && r.off != len(r.buf) {
		r.fail(what, fmt.Errorf("%w: %d", errTrailing, len(r.buf)-r.off))
	}
	return r.err
}

// partitionKey reads a PartitionKey: opaque<V> of exactly 16 bytes.
func (r *reader) partitionKey(field string) []byte {
	b := r.opaque(field, PartitionKeySize)
	if r.err == nil && len(b) != PartitionKeySize {
		r.fail(field, fmt.Errorf("%d bytes, want %d", len(b), PartitionKeySize))
		return nil
	}
	return b
}

// mlsMessage reads an MLSMessage embedded without a length prefix: it is
// self-delimiting, so the mls decoder finds its end (the offset of the
// bytes it reports as trailing). It returns the encoded message (aliasing
// the input) and the decoded one.
func (r *reader) mlsMessage(field string) ([]byte, *mls.MLSMessage) {
	if r.err != nil {
		return nil, nil
	}
	rest := r.buf[r.off:]
	m := new(mls.MLSMessage)
	err := m.Unmarshal(rest)
	n := len(rest)
	if err != nil {
		var de *mls.DecodeError
		if !errors.As(err, &de) || !errors.Is(de.Err, mls.ErrTrailingData) || de.Offset <= 0 || de.Offset >= len(rest) {
			r.fail(field, err)
			return nil, nil
		}
		n = de.Offset
		m = new(mls.MLSMessage)
		if err := m.Unmarshal(rest[:n]); err != nil {
			r.fail(field, err)
			return nil, nil
		}
	}
	b := rest[:n:n]
	r.off += n
	return b, m
}

// writer encodes the TLS presentation language. Its inputs are bounded by the
// decoders and the Hub's limits; a value over the varint range is an error.
type writer struct {
	buf []byte
	err error
}

func (w *writer) u8(v uint8)   { w.buf = append(w.buf, v) }
func (w *writer) u32(v uint32) { w.buf = binary.BigEndian.AppendUint32(w.buf, v) }

func (w *writer) varint(field string, n int) {
	switch {
	case n < 0 || n > maxVarint:
		if w.err == nil {
			w.err = fmt.Errorf("hub: encode %s: length %d over 2^30-1", field, n)
		}
	case n < 1<<6:
		w.buf = append(w.buf, byte(n))
	case n < 1<<14:
		w.buf = append(w.buf, 0x40|byte(n>>8), byte(n))
	default:
		w.buf = append(w.buf, 0x80|byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func (w *writer) opaque(field string, b []byte) {
	w.varint(field, len(b))
	w.buf = append(w.buf, b...)
}

// raw appends an already encoded value (an MLSMessage, a RatchetTree).
func (w *writer) raw(b []byte) { w.buf = append(w.buf, b...) }

func (w *writer) optional(present bool) {
	if present {
		w.u8(1)
	} else {
		w.u8(0)
	}
}

// vector writes the body that fn appends, prefixed with its minimal length:
// the body is written in place and shifted once the length is known.
func (w *writer) vector(field string, fn func(w *writer)) {
	start := len(w.buf)
	fn(w)
	n := len(w.buf) - start
	var hdr [4]byte
	h := writer{buf: hdr[:0]}
	h.varint(field, n)
	if h.err != nil {
		if w.err == nil {
			w.err = h.err
		}
		return
	}
	w.buf = append(w.buf, h.buf...)
	copy(w.buf[start+len(h.buf):], w.buf[start:start+n])
	copy(w.buf[start:], h.buf)
}

func (w *writer) result() ([]byte, error) {
	if w.err != nil {
		return nil, w.err
	}
	return w.buf, nil
}
