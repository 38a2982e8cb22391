package mls

import (
	"encoding/binary"
	"fmt"
)

// maxVarint is the largest value a §2.1.2 variable-length integer can hold.
const maxVarint = 1<<30 - 1

// reader decodes the TLS presentation language of RFC 9420 §2.1 from a byte
// slice. Errors are sticky: after the first failure every read returns a zero
// value and err keeps the first *DecodeError, so decoders check err once at
// the end (and in every loop condition, through more).
//
// end bounds every read: entering a vector lowers it to the vector's end, so
// an element can never read past its vector, and lengths are always checked
// against end before any slice is taken or allocated.
type reader struct {
	buf []byte
	off int
	end int
	err error
}

func newReader(b []byte) *reader { return &reader{buf: b, end: len(b)} }

// fail records the first error.
func (r *reader) fail(field string, off int, err error, detail string) {
	if r.err == nil {
		r.err = &DecodeError{Field: field, Offset: off, Err: err, Detail: detail}
	}
	r.off = r.end
}

// failValue records the first error with the offending value in hex.
func (r *reader) failValue(field string, off int, err error, v uint64, width int) {
	if r.err == nil {
		r.fail(field, off, err, fmt.Sprintf("0x%0*x", width, v))
	}
}

func (r *reader) take(field string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > r.end-r.off {
		r.fail(field, r.off, ErrTruncated, "")
		return nil
	}
	b := r.buf[r.off : r.off+n : r.off+n]
	r.off += n
	return b
}

func (r *reader) u8(field string) uint8 {
	b := r.take(field, 1)
	if b == nil {
		return 0
	}
	return b[0]
}

func (r *reader) u16(field string) uint16 {
	b := r.take(field, 2)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint16(b)
}

func (r *reader) u32(field string) uint32 {
	b := r.take(field, 4)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}

func (r *reader) u64(field string) uint64 {
	b := r.take(field, 8)
	if b == nil {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

// varint reads an RFC 9420 §2.1.2 variable-length integer, enforcing the
// minimal encoding and rejecting the 0b11 prefix.
func (r *reader) varint(field string) int {
	if r.err != nil {
		return 0
	}
	start := r.off
	if r.off >= r.end {
		r.fail(field, start, ErrTruncated, "")
		return 0
	}
	first := r.buf[r.off]
	prefix := first >> 6
	if prefix == 3 {
		r.failValue(field, start, ErrVarintPrefix, uint64(first), 2)
		return 0
	}
	n := 1 << prefix
	b := r.take(field, n)
	if b == nil {
		return 0
	}
	v := uint32(first & 0x3f)
	for _, c := range b[1:] {
		v = v<<8 | uint32(c)
	}
	if prefix >= 1 && v < 1<<(8*(n/2)-2) {
		r.fail(field, start, ErrVarintNotMinimal, fmt.Sprintf("%x encodes %d", b, v))
		return 0
	}
	return int(v)
}

// opaque reads opaque<V>. The result aliases the input. A length beyond
// the remaining input is reported at the length's offset.
func (r *reader) opaque(field string) []byte {
	start := r.off
	n := r.varint(field)
	if r.err == nil && n > r.end-r.off {
		r.fail(field, start, ErrTruncated, "")
		return nil
	}
	return r.take(field, n)
}

// enterVec reads a vector's length header and bounds further reads to the
// vector. It returns the previous bound for leaveVec.
func (r *reader) enterVec(field string) int {
	saved := r.end
	start := r.off
	n := r.varint(field)
	if r.err != nil {
		return saved
	}
	if n > r.end-r.off {
		r.fail(field, start, ErrTruncated, "")
		return saved
	}
	r.end = r.off + n
	return saved
}

// more reports whether the current vector has bytes left and no error
// occurred.
func (r *reader) more() bool { return r.err == nil && r.off < r.end }

// leaveVec restores the bound saved by enterVec.
func (r *reader) leaveVec(saved int) {
	if r.err != nil {
		r.end = saved
		r.off = saved
		return
	}
	r.end = saved
}

// countOpaqueTuples counts the elements left in the current vector when
// each element is k consecutive opaque<V> (EncryptedGroupSecrets is three).
// It reads nothing: it scans a copy of r, and returns 0 if the vector is not
// made of such elements (the decoder then reports the error itself).
func countOpaqueTuples(r *reader, k int) int {
	s := *r
	n := 0
	for s.more() {
		for range k {
			s.opaque("")
		}
		n++
	}
	if s.err != nil {
		return 0
	}
	return n
}

// remaining returns how many bytes are left before the current bound.
func (r *reader) remaining() int { return r.end - r.off }

// optional reads an optional<T> presence octet.
func (r *reader) optional(field string) bool {
	off := r.off
	switch v := r.u8(field); v {
	case 0:
		return false
	case 1:
		return true
	default:
		r.failValue(field, off, ErrInvalidOptional, uint64(v), 2)
		return false
	}
}

// u16Vec reads a vector of uint16-sized values.
func u16Vec[T ~uint16](r *reader, field string) []T {
	n := r.varint(field)
	if r.err != nil {
		return nil
	}
	if n%2 != 0 {
		r.fail(field, r.off, ErrVectorElement, fmt.Sprintf("%d bytes", n))
		return nil
	}
	b := r.take(field, n)
	if b == nil || n == 0 {
		return nil
	}
	out := make([]T, n/2)
	for i := range out {
		out[i] = T(binary.BigEndian.Uint16(b[2*i:]))
	}
	return out
}

// u32Vec reads a vector of uint32 values.
func u32Vec(r *reader, field string) []uint32 {
	n := r.varint(field)
	if r.err != nil {
		return nil
	}
	if n%4 != 0 {
		r.fail(field, r.off, ErrVectorElement, fmt.Sprintf("%d bytes", n))
		return nil
	}
	b := r.take(field, n)
	if b == nil || n == 0 {
		return nil
	}
	out := make([]uint32, n/4)
	for i := range out {
		out[i] = binary.BigEndian.Uint32(b[4*i:])
	}
	return out
}

// finish checks that the whole input was consumed and returns the error.
func (r *reader) finish(field string) error {
	if r.err == nil && r.off != len(r.buf) {
		r.fail(field, r.off, ErrTrailingData, fmt.Sprintf("%d bytes", len(r.buf)-r.off))
	}
	return r.err
}

// writer encodes the TLS presentation language. Like reader its error is
// sticky; encode methods never fail half-way silently.
type writer struct {
	buf []byte
	err error
}

func (w *writer) fail(field string, err error) {
	if w.err == nil {
		w.err = &EncodeError{Field: field, Err: err}
	}
}

func (w *writer) u8(v uint8)   { w.buf = append(w.buf, v) }
func (w *writer) u16(v uint16) { w.buf = binary.BigEndian.AppendUint16(w.buf, v) }
func (w *writer) u32(v uint32) { w.buf = binary.BigEndian.AppendUint32(w.buf, v) }
func (w *writer) u64(v uint64) { w.buf = binary.BigEndian.AppendUint64(w.buf, v) }

func (w *writer) bytes(b []byte) { w.buf = append(w.buf, b...) }

// appendVarint appends the minimal §2.1.2 encoding of n (n ≤ maxVarint).
func appendVarint(b []byte, n int) []byte {
	switch {
	case n < 1<<6:
		return append(b, byte(n))
	case n < 1<<14:
		return append(b, 0x40|byte(n>>8), byte(n))
	default:
		return append(b, 0x80|byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func varintLen(n int) int {
	switch {
	case n < 1<<6:
		return 1
	case n < 1<<14:
		return 2
	default:
		return 4
	}
}

// varint writes a vector length header.
func (w *writer) varint(field string, n int) {
	if n > maxVarint {
		w.fail(field, ErrVectorTooLong)
		return
	}
	w.buf = appendVarint(w.buf, n)
}

// opaque writes opaque<V>.
func (w *writer) opaque(field string, b []byte) {
	w.varint(field, len(b))
	w.buf = append(w.buf, b...)
}

// beginVec starts a vector whose length is not known yet. The header is
// inserted by endVec once the body is written.
func (w *writer) beginVec() int { return len(w.buf) }

// endVec inserts the minimal length header in front of the body written
// since beginVec returned start.
func (w *writer) endVec(field string, start int) {
	n := len(w.buf) - start
	if n > maxVarint {
		w.fail(field, ErrVectorTooLong)
		return
	}
	h := varintLen(n)
	w.buf = append(w.buf, make([]byte, h)...)
	copy(w.buf[start+h:], w.buf[start:start+n])
	appendVarint(w.buf[start:start], n)
}

func (w *writer) optional(present bool) {
	if present {
		w.u8(1)
	} else {
		w.u8(0)
	}
}

func putU16Vec[T ~uint16](w *writer, field string, v []T) {
	w.varint(field, 2*len(v))
	for _, x := range v {
		w.u16(uint16(x))
	}
}

func putU32Vec(w *writer, field string, v []uint32) {
	w.varint(field, 4*len(v))
	for _, x := range v {
		w.u32(x)
	}
}

// codec is implemented by every structure of the package.
type codec interface {
	encode(w *writer)
	decode(r *reader)
}

// unmarshal decodes data as exactly one value.
func unmarshal(v codec, data []byte, name string) error {
	r := newReader(data)
	v.decode(r)
	return r.finish(name)
}

// marshal encodes v.
func marshal(v codec) ([]byte, error) {
	w := writer{}
	v.encode(&w)
	if w.err != nil {
		return nil, w.err
	}
	return w.buf, nil
}

// appendEncoded appends v's encoding to b.
func appendEncoded(b []byte, v codec) ([]byte, error) {
	w := writer{buf: b}
	v.encode(&w)
	if w.err != nil {
		return b, w.err
	}
	return w.buf, nil
}
