package bhttp

import (
	"fmt"
	"slices"
)

// MarshalBinary encodes r as laid out by r.Layout (known-length framing
// unless r.Layout.Indeterminate is set).
func (r *Request) MarshalBinary() ([]byte, error) {
	return r.AppendBinary(make([]byte, 0, r.size()))
}

// AppendBinary appends the encoding of r to b.
func (r *Request) AppendBinary(b []byte) ([]byte, error) {
	if msg := checkRequestControl(r.Method, r.Scheme, r.Authority, r.Path); msg != "" {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, msg)
	}
	if err := checkBody(r.Header, r.Trailer, r.Layout); err != nil {
		return nil, err
	}
	fi := uint64(framingKnownRequest)
	if r.Layout.Indeterminate {
		fi = framingIndeterminateRequest
	}
	b = appendVarint(b, fi)
	for _, s := range [4]string{r.Method, r.Scheme, r.Authority, r.Path} {
		b = appendString(b, s)
	}
	return appendBody(b, r.Header, r.Content, r.Trailer, r.Layout), nil
}

// MarshalBinary encodes r as laid out by r.Layout (known-length framing
// unless r.Layout.Indeterminate is set).
func (r *Response) MarshalBinary() ([]byte, error) {
	return r.AppendBinary(make([]byte, 0, r.size()))
}

// AppendBinary appends the encoding of r to b.
func (r *Response) AppendBinary(b []byte) ([]byte, error) {
	for _, in := range r.Informational {
		if in.Status < 100 || in.Status > 199 {
			return nil, fmt.Errorf("%w: informational status %d", ErrInvalid, in.Status)
		}
		if msg := checkSection(in.Header, false); msg != "" {
			return nil, fmt.Errorf("%w: informational header section: %s", ErrInvalid, msg)
		}
	}
	if r.Status < 200 || r.Status > 599 {
		return nil, fmt.Errorf("%w: final status %d", ErrInvalid, r.Status)
	}
	if err := checkBody(r.Header, r.Trailer, r.Layout); err != nil {
		return nil, err
	}
	fi := uint64(framingKnownResponse)
	if r.Layout.Indeterminate {
		fi = framingIndeterminateResponse
	}
	b = appendVarint(b, fi)
	for _, in := range r.Informational {
		b = appendVarint(b, uint64(in.Status))
		b = appendSection(b, in.Header, r.Layout.Indeterminate)
	}
	b = appendVarint(b, uint64(r.Status))
	return appendBody(b, r.Header, r.Content, r.Trailer, r.Layout), nil
}

func checkBody(header, trailer Fields, l Layout) error {
	if msg := checkSection(header, false); msg != "" {
		return fmt.Errorf("%w: header section: %s", ErrInvalid, msg)
	}
	if msg := checkSection(trailer, true); msg != "" {
		return fmt.Errorf("%w: trailer section: %s", ErrInvalid, msg)
	}
	if l.Padding < 0 {
		return fmt.Errorf("%w: negative padding", ErrInvalid)
	}
	return nil
}

// sections returns how many of header, content and trailer are written:
// with truncation, trailing empty parts are left out.
func sections(header Fields, content []byte, trailer Fields, truncate bool) int {
	n := 3
	if !truncate {
		return n
	}
	if len(trailer) == 0 {
		n--
		if len(content) == 0 {
			n--
			if len(header) == 0 {
				n--
			}
		}
	}
	return n
}

func appendBody(b []byte, header Fields, content []byte, trailer Fields, l Layout) []byte {
	n := sections(header, content, trailer, l.Truncate)
	if n > 0 {
		b = appendSection(b, header, l.Indeterminate)
	}
	if n > 1 {
		switch {
		case !l.Indeterminate:
			b = appendVarint(b, uint64(len(content)))
			b = append(b, content...)
		case len(content) > 0:
			b = appendVarint(b, uint64(len(content)))
			b = append(b, content...)
			b = append(b, 0)
		default:
			b = append(b, 0)
		}
	}
	if n > 2 {
		b = appendSection(b, trailer, l.Indeterminate)
	}
	return append(b, make([]byte, l.Padding)...)
}

func appendString(b []byte, s string) []byte {
	b = appendVarint(b, uint64(len(s)))
	return append(b, s...)
}

func sectionLen(fs Fields) int {
	n := 0
	for _, f := range fs {
		n += varintLen(uint64(len(f.Name))) + len(f.Name) + varintLen(uint64(len(f.Value))) + len(f.Value)
	}
	return n
}

func appendSection(b []byte, fs Fields, indeterminate bool) []byte {
	if !indeterminate {
		b = appendVarint(b, uint64(sectionLen(fs)))
	}
	for _, f := range fs {
		b = appendString(b, f.Name)
		b = appendString(b, f.Value)
	}
	if indeterminate {
		b = append(b, 0)
	}
	return b
}

// bodySize is an upper bound of the encoded size of the body parts.
func bodySize(header Fields, content []byte, trailer Fields, l Layout) int {
	return 3*8 + sectionLen(header) + len(content) + sectionLen(trailer) + max(l.Padding, 0) + 2
}

func (r *Request) size() int {
	n := 8 + bodySize(r.Header, r.Content, r.Trailer, r.Layout)
	for _, s := range [4]string{r.Method, r.Scheme, r.Authority, r.Path} {
		n += 8 + len(s)
	}
	return n
}

func (r *Response) size() int {
	n := 16 + bodySize(r.Header, r.Content, r.Trailer, r.Layout)
	for _, in := range r.Informational {
		n += 16 + sectionLen(in.Header)
	}
	return n
}

// Equal reports whether r and o are the same request, ignoring Layout and
// treating nil and empty sections and content alike.
func (r *Request) Equal(o *Request) bool {
	return r.Method == o.Method && r.Scheme == o.Scheme && r.Authority == o.Authority &&
		r.Path == o.Path && sameFields(r.Header, o.Header) &&
		slices.Equal(r.Content, o.Content) && sameFields(r.Trailer, o.Trailer)
}

// Equal reports whether r and o are the same response, ignoring Layout and
// treating nil and empty sections and content alike.
func (r *Response) Equal(o *Response) bool {
	if r.Status != o.Status || len(r.Informational) != len(o.Informational) ||
		!sameFields(r.Header, o.Header) || !slices.Equal(r.Content, o.Content) ||
		!sameFields(r.Trailer, o.Trailer) {
		return false
	}
	for i, in := range r.Informational {
		if in.Status != o.Informational[i].Status || !sameFields(in.Header, o.Informational[i].Header) {
			return false
		}
	}
	return true
}

func sameFields(a, b Fields) bool { return slices.Equal(a, b) }
