package bhttp

// Variable-length integers as defined in RFC 9000 Section 16: the two most
// significant bits of the first byte give the length (1, 2, 4 or 8 bytes) and
// the remaining bits hold the value in network byte order.

// maxVarint is the largest value a variable-length integer can hold.
const maxVarint = 1<<62 - 1

// appendVarint appends v in its shortest encoding. v must not exceed maxVarint.
func appendVarint(b []byte, v uint64) []byte {
	switch {
	case v < 1<<6:
		return append(b, byte(v))
	case v < 1<<14:
		return append(b, byte(v>>8)|0x40, byte(v))
	case v < 1<<30:
		return append(b, byte(v>>24)|0x80, byte(v>>16), byte(v>>8), byte(v))
	default:
		return append(b, byte(v>>56)|0xc0, byte(v>>48), byte(v>>40), byte(v>>32),
			byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
}

// varintLen returns the length of the shortest encoding of v.
func varintLen(v uint64) int {
	switch {
	case v < 1<<6:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<30:
		return 4
	default:
		return 8
	}
}

// readVarint decodes one variable-length integer from the front of b. It
// returns the value and the number of bytes read, or n == 0 when b is too
// short. Non-minimal encodings are accepted, as RFC 9292 Section 3 allows.
func readVarint(b []byte) (v uint64, n int) {
	if len(b) == 0 {
		return 0, 0
	}
	n = 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, 0
	}
	v = uint64(b[0] & 0x3f)
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n
}
