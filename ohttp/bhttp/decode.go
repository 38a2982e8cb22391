package bhttp

import "fmt"

// UnmarshalRequest decodes a Binary HTTP request of either framing with the
// default Limits.
func UnmarshalRequest(b []byte) (*Request, error) {
	return Limits{}.UnmarshalRequest(b)
}

// UnmarshalResponse decodes a Binary HTTP response of either framing with
// the default Limits.
func UnmarshalResponse(b []byte) (*Response, error) {
	return Limits{}.UnmarshalResponse(b)
}

// UnmarshalRequest decodes a Binary HTTP request of either framing
// (indicator 0 or 2). The result does not alias b.
func (l Limits) UnmarshalRequest(b []byte) (*Request, error) {
	d := newDecoder(b, l)
	fi, err := d.varint("framing indicator")
	if err != nil {
		return nil, err
	}
	switch fi {
	case framingKnownRequest, framingIndeterminateRequest:
	case framingKnownResponse, framingIndeterminateResponse:
		return nil, fmt.Errorf("%w: %d is a response framing", ErrFraming, fi)
	default:
		return nil, fmt.Errorf("%w: %d", ErrFraming, fi)
	}
	d.indeterminate = fi == framingIndeterminateRequest
	r := &Request{}
	ctl := [4]*string{&r.Method, &r.Scheme, &r.Authority, &r.Path}
	names := [4]string{"method", "scheme", "authority", "path"}
	for i, p := range ctl {
		if *p, err = d.controlString(names[i]); err != nil {
			return nil, err
		}
	}
	if msg := checkRequestControl(r.Method, r.Scheme, r.Authority, r.Path); msg != "" {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, msg)
	}
	if err := d.body(&r.Header, &r.Content, &r.Trailer); err != nil {
		return nil, err
	}
	r.Layout = d.layout()
	return r, nil
}

// UnmarshalResponse decodes a Binary HTTP response of either framing
// (indicator 1 or 3), with its informational responses. The result does not
// alias b.
func (l Limits) UnmarshalResponse(b []byte) (*Response, error) {
	d := newDecoder(b, l)
	fi, err := d.varint("framing indicator")
	if err != nil {
		return nil, err
	}
	switch fi {
	case framingKnownResponse, framingIndeterminateResponse:
	case framingKnownRequest, framingIndeterminateRequest:
		return nil, fmt.Errorf("%w: %d is a request framing", ErrFraming, fi)
	default:
		return nil, fmt.Errorf("%w: %d", ErrFraming, fi)
	}
	d.indeterminate = fi == framingIndeterminateResponse
	r := &Response{}
	for {
		start := d.off
		st, err := d.varint("status code")
		if err != nil {
			return nil, err
		}
		switch {
		case st >= 100 && st <= 199:
			if len(r.Informational) >= d.lim.MaxInformational {
				return nil, fmt.Errorf("%w: more than %d informational responses", ErrLimit, d.lim.MaxInformational)
			}
			info := Informational{Status: int(st)}
			present, err := d.fieldSection(&info.Header, false)
			if err != nil {
				return nil, err
			}
			if !present {
				return nil, fmt.Errorf("%w: informational response %d has no field section", ErrTruncated, st)
			}
			r.Informational = append(r.Informational, info)
			continue
		case st >= 200 && st <= 599:
			r.Status = int(st)
		default:
			return nil, fmt.Errorf("%w: status code %d at offset %d", ErrInvalid, st, start)
		}
		break
	}
	if err := d.body(&r.Header, &r.Content, &r.Trailer); err != nil {
		return nil, err
	}
	r.Layout = d.layout()
	return r, nil
}

// decoder reads one message. b and s hold the same bytes: field names and
// values are sliced from s, so decoding a message costs one string copy.
type decoder struct {
	b             []byte
	s             string
	off           int
	lim           Limits
	indeterminate bool
	truncated     bool
	padding       int
}

func newDecoder(b []byte, l Limits) *decoder {
	return &decoder{b: b, s: string(b), lim: l.withDefaults()}
}

func (d *decoder) layout() Layout {
	return Layout{Indeterminate: d.indeterminate, Truncate: d.truncated, Padding: d.padding}
}

func (d *decoder) eof() bool { return d.off >= len(d.b) }

// varint reads a variable-length integer; what names it in errors.
func (d *decoder) varint(what string) (uint64, error) {
	v, n := readVarint(d.b[d.off:])
	if n == 0 {
		return 0, fmt.Errorf("%w: %s at offset %d", ErrTruncated, what, d.off)
	}
	d.off += n
	return v, nil
}

// length reads a length prefix and checks that that many bytes follow and
// that it does not exceed max. what and part name the length in errors.
func (d *decoder) length(what, part string, max int) (int, error) {
	at := d.off
	v, n := readVarint(d.b[d.off:])
	if n == 0 {
		return 0, fmt.Errorf("%w: %s%s length at offset %d", ErrTruncated, what, part, d.off)
	}
	d.off += n
	if v > uint64(max) {
		return 0, fmt.Errorf("%w: %s%s of %d bytes at offset %d (max %d)", ErrLimit, what, part, v, at, max)
	}
	if v > uint64(len(d.b)-d.off) {
		return 0, fmt.Errorf("%w: %s%s of %d bytes at offset %d", ErrTruncated, what, part, v, at)
	}
	return int(v), nil
}

func (d *decoder) controlString(what string) (string, error) {
	n, err := d.length(what, "", d.lim.MaxControlDataSize)
	if err != nil {
		return "", err
	}
	s := d.s[d.off : d.off+n]
	d.off += n
	return s, nil
}

// body decodes the header section, content, trailer section and padding. A
// message may end before any of the three parts; the missing parts are empty.
func (d *decoder) body(header *Fields, content *[]byte, trailer *Fields) error {
	present, err := d.fieldSection(header, false)
	if err != nil || !present {
		return err
	}
	if present, err = d.content(content); err != nil || !present {
		return err
	}
	if present, err = d.fieldSection(trailer, true); err != nil || !present {
		return err
	}
	for i, c := range d.b[d.off:] {
		if c != 0 {
			return fmt.Errorf("%w: byte 0x%02x at offset %d", ErrPadding, c, d.off+i)
		}
	}
	d.padding = len(d.b) - d.off
	d.off = len(d.b)
	return nil
}

// fieldSection decodes one field section into fs. It reports present=false,
// and marks the message truncated, when the input ends where the section
// would start.
func (d *decoder) fieldSection(fs *Fields, trailer bool) (present bool, err error) {
	what := "header section"
	if trailer {
		what = "trailer section"
	}
	if d.eof() {
		d.truncated = true
		return false, nil
	}
	var lines Fields
	if d.indeterminate {
		lines, err = d.indeterminateFields(what)
	} else {
		lines, err = d.knownFields(what)
	}
	if err != nil {
		return true, err
	}
	if msg := checkSection(lines, trailer); msg != "" {
		return true, fmt.Errorf("%w: %s: %s", ErrInvalid, what, msg)
	}
	*fs = lines
	return true, nil
}

func (d *decoder) knownFields(what string) (Fields, error) {
	n, err := d.length(what, "", d.lim.MaxFieldSectionSize)
	if err != nil {
		return nil, err
	}
	end := d.off + n
	var lines Fields
	for d.off < end {
		f, err := d.fieldLine(what, end)
		if err != nil {
			return nil, err
		}
		if len(lines) >= d.lim.MaxFieldLines {
			return nil, fmt.Errorf("%w: %s has more than %d field lines", ErrLimit, what, d.lim.MaxFieldLines)
		}
		lines = append(lines, f)
	}
	return lines, nil
}

func (d *decoder) indeterminateFields(what string) (Fields, error) {
	start := d.off
	var lines Fields
	for {
		v, n := readVarint(d.b[d.off:])
		if n == 0 {
			return nil, fmt.Errorf("%w: %s is not terminated", ErrTruncated, what)
		}
		if v == 0 {
			d.off += n
			return lines, nil
		}
		f, err := d.fieldLine(what, len(d.b))
		if err != nil {
			return nil, err
		}
		if len(lines) >= d.lim.MaxFieldLines {
			return nil, fmt.Errorf("%w: %s has more than %d field lines", ErrLimit, what, d.lim.MaxFieldLines)
		}
		lines = append(lines, f)
		if d.off-start > d.lim.MaxFieldSectionSize {
			return nil, fmt.Errorf("%w: %s exceeds %d bytes", ErrLimit, what, d.lim.MaxFieldSectionSize)
		}
	}
}

// fieldLine decodes one field line that must end at or before end.
func (d *decoder) fieldLine(what string, end int) (Field, error) {
	at := d.off
	sub := decoder{b: d.b[:end], s: d.s[:end], off: d.off, lim: d.lim}
	nl, err := sub.length(what, " field name", d.lim.MaxFieldSectionSize)
	if err != nil {
		return Field{}, err
	}
	if nl == 0 {
		return Field{}, fmt.Errorf("%w: %s: empty field name at offset %d", ErrInvalid, what, at)
	}
	name := sub.s[sub.off : sub.off+nl]
	sub.off += nl
	vl, err := sub.length(what, " field value", d.lim.MaxFieldSectionSize)
	if err != nil {
		return Field{}, err
	}
	value := sub.s[sub.off : sub.off+vl]
	d.off = sub.off + vl
	return Field{Name: name, Value: value}, nil
}

// content decodes the content, present=false when the input ends where it
// would start.
func (d *decoder) content(content *[]byte) (present bool, err error) {
	if d.eof() {
		d.truncated = true
		return false, nil
	}
	if !d.indeterminate {
		n, err := d.length("content", "", d.lim.MaxContentSize)
		if err != nil {
			return true, err
		}
		if n > 0 {
			*content = append([]byte(nil), d.b[d.off:d.off+n]...)
		}
		d.off += n
		return true, nil
	}
	var out []byte
	for {
		n, err := d.length("content chunk", "", d.lim.MaxContentSize)
		if err != nil {
			if d.eof() {
				return true, fmt.Errorf("%w: content is not terminated", ErrTruncated)
			}
			return true, err
		}
		if n == 0 {
			break
		}
		if len(out)+n > d.lim.MaxContentSize {
			return true, fmt.Errorf("%w: content exceeds %d bytes", ErrLimit, d.lim.MaxContentSize)
		}
		out = append(out, d.b[d.off:d.off+n]...)
		d.off += n
	}
	*content = out
	return true, nil
}
