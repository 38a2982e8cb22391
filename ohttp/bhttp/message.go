package bhttp

import (
	"errors"
	"strings"
)

// Errors returned by the decoder and encoder. Each returned error wraps exactly
// one of these sentinels, with the offset and section where it was detected.
var (
	// ErrTruncated reports a message that ends inside a part that RFC 9292
	// Section 3.8 does not allow to be truncated.
	ErrTruncated = errors.New("bhttp: message truncated")
	// ErrFraming reports an unknown framing indicator, or a request framing
	// where a response was expected and the reverse.
	ErrFraming = errors.New("bhttp: invalid framing indicator")
	// ErrInvalid reports a malformed message: a bad field name or value, a
	// misplaced pseudo-field, bad control data or an invalid status code.
	ErrInvalid = errors.New("bhttp: invalid message")
	// ErrPadding reports a non-zero byte after the trailer section.
	ErrPadding = errors.New("bhttp: non-zero padding")
	// ErrLimit reports a message that exceeds one of the decoder's Limits.
	ErrLimit = errors.New("bhttp: limit exceeded")
)

// Framing indicators (RFC 9292 Section 3.3).
const (
	framingKnownRequest          = 0
	framingKnownResponse         = 1
	framingIndeterminateRequest  = 2
	framingIndeterminateResponse = 3
)

// Field is one field line: a name and a value. Names are kept as they
// appear on the wire; HTTP field names are case-insensitive, and RFC 9292
// messages normally carry them in lowercase.
type Field struct {
	Name  string
	Value string
}

// Fields is a header or trailer section, in wire order.
type Fields []Field

// Get returns the value of the first field named name (compared without
// regard to case), or "" when there is none.
func (f Fields) Get(name string) string {
	for _, fl := range f {
		if strings.EqualFold(fl.Name, name) {
			return fl.Value
		}
	}
	return ""
}

// Values returns the values of every field named name, in wire order.
func (f Fields) Values(name string) []string {
	var vs []string
	for _, fl := range f {
		if strings.EqualFold(fl.Name, name) {
			vs = append(vs, fl.Value)
		}
	}
	return vs
}

// Layout describes how a message is laid out on the wire. It carries no
// HTTP meaning: two messages that differ only in Layout are the same message.
// The decoder records the layout it saw so that encoding a decoded message
// reproduces its input whenever RFC 9292 allows (content chunk boundaries of
// indeterminate-length messages, and truncation of only some of the trailing
// empty sections, are not kept).
type Layout struct {
	// Indeterminate selects the indeterminate-length framing (indicators 2
	// and 3) instead of the known-length framing (0 and 1).
	Indeterminate bool
	// Truncate omits the trailing sections that are empty (the trailer
	// section, then the content, then the header section), as RFC 9292
	// Section 3.8 allows. The decoder sets it when the message ended before
	// its last section.
	Truncate bool
	// Padding is the number of zero bytes after the message.
	Padding int
}

// Request is a Binary HTTP request (RFC 9292 Section 3).
type Request struct {
	// Control data (RFC 9292 Section 3.4), with the meaning of the HTTP/2
	// pseudo-header fields of the same names. Authority may be empty.
	Method    string
	Scheme    string
	Authority string
	Path      string

	Header  Fields
	Content []byte
	Trailer Fields

	Layout Layout
}

// Informational is one informational (1xx) response that precedes the final
// response (RFC 9292 Section 3.5.1).
type Informational struct {
	Status int
	Header Fields
}

// Response is a Binary HTTP response (RFC 9292 Section 3).
type Response struct {
	// Informational holds the 1xx responses in order, if any.
	Informational []Informational
	// Status is the final status code, 200 to 599.
	Status int

	Header  Fields
	Content []byte
	Trailer Fields

	Layout Layout
}

// NewResponse returns a known-length response with the given status,
// a content-type field when contentType is not empty, and content.
func NewResponse(status int, contentType string, content []byte) *Response {
	r := &Response{Status: status, Content: content}
	if contentType != "" {
		r.Header = Fields{{Name: "content-type", Value: contentType}}
	}
	return r
}

// Limits bound what the decoder accepts. A zero field takes its default.
// The decoder never allocates more than the input's length, whatever the
// limits; they exist to refuse messages that are larger than any handler
// should see.
type Limits struct {
	// MaxFieldLines bounds the field lines of each field section
	// (default 256).
	MaxFieldLines int
	// MaxFieldSectionSize bounds the encoded size in bytes of each field
	// section (default 64 KiB).
	MaxFieldSectionSize int
	// MaxControlDataSize bounds each of method, scheme, authority and path
	// (default 8 KiB).
	MaxControlDataSize int
	// MaxContentSize bounds the content in bytes (default 8 MiB).
	MaxContentSize int
	// MaxInformational bounds the number of informational responses
	// (default 16).
	MaxInformational int
}

// Default limits.
const (
	DefaultMaxFieldLines       = 256
	DefaultMaxFieldSectionSize = 64 << 10
	DefaultMaxControlDataSize  = 8 << 10
	DefaultMaxContentSize      = 8 << 20
	DefaultMaxInformational    = 16
)

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxFieldLines, DefaultMaxFieldLines)
	def(&l.MaxFieldSectionSize, DefaultMaxFieldSectionSize)
	def(&l.MaxControlDataSize, DefaultMaxControlDataSize)
	def(&l.MaxContentSize, DefaultMaxContentSize)
	def(&l.MaxInformational, DefaultMaxInformational)
	return l
}

// reservedPseudo lists the pseudo-fields that RFC 9292 Section 3.6 forbids in
// field sections: their information lives in the control data.
func reservedPseudo(name string) bool {
	switch name {
	case ":method", ":scheme", ":authority", ":path", ":status":
		return true
	}
	return false
}

// isTchar reports whether c may appear in an HTTP token (RFC 9110 Section 5.6.2).
func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar(s[i]) {
			return false
		}
	}
	return true
}

// validName checks a field name. Pseudo-fields (a leading colon) are
// accepted here; where they may appear is checked by the section.
func validName(name string) bool {
	if strings.HasPrefix(name, ":") {
		return isToken(name[1:])
	}
	return isToken(name)
}

// validValue applies the HTTP/2 rules of RFC 9113 Section 8.2.1 that RFC 9292
// Section 3.6 makes binding: no NUL, CR or LF, and no leading or trailing
// space or horizontal tab.
func validValue(v string) bool {
	if v == "" {
		return true
	}
	if isSpace(v[0]) || isSpace(v[len(v)-1]) {
		return false
	}
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case 0, '\r', '\n':
			return false
		}
	}
	return true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// validTarget checks scheme, authority and path: visible ASCII only.
func validTarget(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// checkSection validates a field section. trailer forbids pseudo-fields.
// It returns a description of the first problem, or "".
func checkSection(fs Fields, trailer bool) string {
	regular := false
	for _, f := range fs {
		if !validName(f.Name) {
			return "invalid field name " + quote(f.Name)
		}
		if !validValue(f.Value) {
			return "invalid value for field " + quote(f.Name)
		}
		if f.Name[0] != ':' {
			regular = true
			continue
		}
		switch {
		case reservedPseudo(f.Name):
			return "pseudo-field " + f.Name + " is not allowed in a field section"
		case trailer:
			return "pseudo-field " + f.Name + " in trailers"
		case regular:
			return "pseudo-field " + f.Name + " after a regular field"
		}
	}
	return ""
}

// checkRequestControl validates request control data, returning a
// description of the first problem or "".
func checkRequestControl(method, scheme, authority, path string) string {
	switch {
	case !isToken(method):
		return "invalid method " + quote(method)
	case !validTarget(scheme):
		return "invalid scheme"
	case !validTarget(authority):
		return "invalid authority"
	case !validTarget(path):
		return "invalid path"
	}
	return ""
}

// quote shortens and quotes a possibly hostile string for an error message.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		s = s[:max] + "..."
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			const hex = "0123456789abcdef"
			b.WriteString(`\x`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
	b.WriteByte('"')
	return b.String()
}
