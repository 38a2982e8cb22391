package bhttp

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type jsonFields [][2]string

func (j jsonFields) fields() Fields {
	var fs Fields
	for _, p := range j {
		fs = append(fs, Field{Name: p[0], Value: p[1]})
	}
	return fs
}

type example struct {
	ID       string `json:"id"`
	Hex      string `json:"hex"`
	Expected struct {
		FramingIndicator int    `json:"framing_indicator"`
		Kind             string `json:"kind"`
		Method           string `json:"method"`
		Scheme           string `json:"scheme"`
		Authority        string `json:"authority"`
		Path             string `json:"path"`
		Status           int    `json:"status"`
		Informational    []struct {
			Status  int        `json:"status"`
			Headers jsonFields `json:"headers"`
		} `json:"informational"`
		Headers      jsonFields `json:"headers"`
		Trailers     jsonFields `json:"trailers"`
		Content      string     `json:"content"`
		PaddingBytes int        `json:"padding_bytes"`
	} `json:"expected"`
}

type examplesFile struct {
	Examples        []example `json:"examples"`
	DerivedVariants []struct {
		ID            string `json:"id"`
		Hex           string `json:"hex"`
		SameMessageAs string `json:"same_message_as"`
	} `json:"derived_variants"`
}

func loadExamples(t testing.TB) examplesFile {
	t.Helper()
	p := filepath.Join("..", "..", "testdata", "ohttp", "rfc9292-examples.json")
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("vector file: %v", err)
	}
	var f examplesFile
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatalf("vector file: %v", err)
	}
	if len(f.Examples) == 0 || len(f.DerivedVariants) == 0 {
		t.Fatalf("vector file %s has no examples", p)
	}
	return f
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// expectedMessage builds the message an example's "expected" describes, and
// decodes the example's bytes.
func decodeExample(t *testing.T, ex example) (got, want any) {
	t.Helper()
	e := ex.Expected
	raw := mustHex(t, ex.Hex)
	indeterminate := e.FramingIndicator >= 2
	switch e.Kind {
	case "request":
		r, err := UnmarshalRequest(raw)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if r.Layout.Indeterminate != indeterminate || r.Layout.Padding != e.PaddingBytes {
			t.Errorf("layout = %+v, want indeterminate=%v padding=%d", r.Layout, indeterminate, e.PaddingBytes)
		}
		return r, &Request{Method: e.Method, Scheme: e.Scheme, Authority: e.Authority, Path: e.Path,
			Header: e.Headers.fields(), Content: []byte(e.Content), Trailer: e.Trailers.fields()}
	case "response":
		r, err := UnmarshalResponse(raw)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if r.Layout.Indeterminate != indeterminate || r.Layout.Padding != e.PaddingBytes {
			t.Errorf("layout = %+v, want indeterminate=%v padding=%d", r.Layout, indeterminate, e.PaddingBytes)
		}
		w := &Response{Status: e.Status, Header: e.Headers.fields(), Content: []byte(e.Content),
			Trailer: e.Trailers.fields()}
		for _, in := range e.Informational {
			w.Informational = append(w.Informational, Informational{Status: in.Status, Header: in.Headers.fields()})
		}
		return r, w
	}
	t.Fatalf("unknown kind %q", e.Kind)
	return nil, nil
}

func TestRFC9292Examples(t *testing.T) {
	f := loadExamples(t)
	decoded := map[string]any{}
	for _, ex := range f.Examples {
		t.Run(ex.ID, func(t *testing.T) {
			got, want := decodeExample(t, ex)
			var same bool
			var enc []byte
			var err error
			switch g := got.(type) {
			case *Request:
				same = g.Equal(want.(*Request))
				enc, err = g.MarshalBinary()
			case *Response:
				same = g.Equal(want.(*Response))
				enc, err = g.MarshalBinary()
			}
			if !same {
				t.Errorf("decoded %+v\nwant    %+v", got, want)
			}
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if raw := mustHex(t, ex.Hex); !bytes.Equal(enc, raw) {
				t.Errorf("re-encoded\n%x\nwant\n%x", enc, raw)
			}
			decoded[ex.ID] = got
		})
	}
	for _, v := range f.DerivedVariants {
		t.Run(v.ID, func(t *testing.T) {
			ref, ok := decoded[v.SameMessageAs].(*Request)
			if !ok {
				t.Fatalf("reference %q is not a decoded request", v.SameMessageAs)
			}
			r, err := UnmarshalRequest(mustHex(t, v.Hex))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !r.Equal(ref) {
				t.Errorf("decoded %+v\nwant    %+v", r, ref)
			}
		})
	}
}

func TestRoundTripLayouts(t *testing.T) {
	req := &Request{Method: "POST", Scheme: "https", Authority: "b.example", Path: "/v1/keypackages?x=1",
		Header:  Fields{{":protocol", "x"}, {"content-type", "application/octet-stream"}, {"date", "Mon, 27 Jul 2009 12:28:53 GMT"}},
		Content: bytes.Repeat([]byte{0xab}, 300),
		Trailer: Fields{{"x-checksum", "abc"}}}
	resp := &Response{Informational: []Informational{{Status: 103, Header: Fields{{"link", "</a>"}}}},
		Status: 201, Header: Fields{{"content-type", "text/plain"}}, Content: []byte("hi"),
		Trailer: Fields{{"t", ""}}}
	empty := &Response{Status: 204}
	layouts := []Layout{{}, {Truncate: true}, {Indeterminate: true}, {Indeterminate: true, Truncate: true, Padding: 7}, {Padding: 100}}
	for _, l := range layouts {
		t.Run("", func(t *testing.T) {
			req.Layout, resp.Layout, empty.Layout = l, l, l
			b, err := req.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			r2, err := UnmarshalRequest(b)
			if err != nil || !r2.Equal(req) || r2.Layout.Padding != l.Padding || r2.Layout.Indeterminate != l.Indeterminate {
				t.Fatalf("request round trip (%+v): %v %+v", l, err, r2)
			}
			for _, r := range []*Response{resp, empty} {
				b, err := r.MarshalBinary()
				if err != nil {
					t.Fatal(err)
				}
				got, err := UnmarshalResponse(b)
				if err != nil || !got.Equal(r) || got.Layout != expectLayout(r, l) {
					t.Fatalf("response round trip (%+v): %v %+v", l, err, got)
				}
				again, _ := got.MarshalBinary()
				if !bytes.Equal(again, b) {
					t.Fatalf("re-encoding differs: %x vs %x", again, b)
				}
			}
		})
	}
}

// expectLayout is the layout the decoder reports for r encoded with l. It
// reports truncation only when something was actually left out, and padding
// after a truncated message reads as the missing empty parts (RFC 9292
// Section 3.8): the bytes are the same, only the description differs.
func expectLayout(r *Response, l Layout) Layout {
	missing := 3 - sections(r.Header, r.Content, r.Trailer, l.Truncate)
	switch {
	case missing == 0:
		l.Truncate = false
	case l.Padding >= missing:
		l.Truncate = false
		l.Padding -= missing
	default:
		l.Padding = 0
	}
	return l
}

func TestDecodeErrors(t *testing.T) {
	// base is the request control data of GET "/" with empty scheme and
	// authority; the cases append the rest.
	const base = "00" + "03474554" + "00" + "00" + "012f"
	tests := []struct {
		name     string
		hex      string
		response bool
		want     error
	}{
		{"empty", "", false, ErrTruncated},
		{"unknown framing", "04", false, ErrFraming},
		{"response framing as request", "01", false, ErrFraming},
		{"request framing as response", "00", true, ErrFraming},
		{"truncated control data", "000347", false, ErrTruncated},
		{"missing path", "0003474554056874747073", false, ErrTruncated},
		{"empty method", "0000056874747073000000", false, ErrInvalid},
		{"space in path", "00034745540568747470730002202f", false, ErrInvalid},
		{"section longer than input", base + "05" + "0161", false, ErrTruncated},
		{"empty field name", base + "02" + "0000", false, ErrInvalid},
		{"field name with space", base + "04" + "022061" + "00", false, ErrInvalid},
		{"value with CR", base + "04" + "0161" + "010d", false, ErrInvalid},
		{"value with leading space", base + "04" + "0161" + "0120", false, ErrInvalid},
		{"value running past section", base + "03" + "0161" + "0162", false, ErrTruncated},
		{"reserved pseudo-field", base + "08" + "053a70617468" + "012f", false, ErrInvalid},
		{"pseudo-field after regular", base + "09" + "01610162" + "023a780179", false, ErrInvalid},
		{"pseudo-field in trailers", base + "00" + "00" + "05" + "023a780179", false, ErrInvalid},
		{"content longer than input", base + "00" + "050102", false, ErrTruncated},
		{"non-zero padding", base + "000000" + "000001", false, ErrPadding},
		{"indeterminate section unterminated", "02" + base[2:] + "01610162", false, ErrTruncated},
		{"indeterminate content unterminated", "02" + base[2:] + "00" + "026869", false, ErrTruncated},
		{"indeterminate chunk past end", "02" + base[2:] + "00" + "0568", false, ErrTruncated},
		{"status 600", "01425800", true, ErrInvalid},
		{"status 99", "016300", true, ErrInvalid},
		{"informational without section", "014066", true, ErrTruncated},
		{"informational only", "01406600", true, ErrTruncated},
		{"truncated varint", "0140", true, ErrTruncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := mustHex(t, tc.hex)
			var err error
			if tc.response {
				_, err = UnmarshalResponse(b)
			} else {
				_, err = UnmarshalRequest(b)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "bhttp: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	many := &Request{Method: "GET", Scheme: "https", Path: "/"}
	for range 5 {
		many.Header = append(many.Header, Field{"a", "b"})
	}
	many.Content = make([]byte, 100)
	resp := &Response{Status: 200}
	for range 3 {
		resp.Informational = append(resp.Informational, Informational{Status: 100})
	}
	for _, indeterminate := range []bool{false, true} {
		many.Layout.Indeterminate = indeterminate
		resp.Layout.Indeterminate = indeterminate
		b, _ := many.MarshalBinary()
		rb, _ := resp.MarshalBinary()
		tests := []struct {
			name string
			lim  Limits
			resp bool
		}{
			{"field lines", Limits{MaxFieldLines: 4}, false},
			{"section size", Limits{MaxFieldSectionSize: 10}, false},
			{"content", Limits{MaxContentSize: 99}, false},
			{"control data", Limits{MaxControlDataSize: 2}, false},
			{"informational", Limits{MaxInformational: 2}, true},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				var err error
				if tc.resp {
					_, err = tc.lim.UnmarshalResponse(rb)
				} else {
					_, err = tc.lim.UnmarshalRequest(b)
				}
				if !errors.Is(err, ErrLimit) {
					t.Fatalf("indeterminate=%v: err = %v, want ErrLimit", indeterminate, err)
				}
			})
		}
		if _, err := (Limits{MaxFieldLines: 5, MaxContentSize: 100}).UnmarshalRequest(b); err != nil {
			t.Fatalf("at the limits: %v", err)
		}
	}
}

func TestEncodeRejectsInvalid(t *testing.T) {
	tests := []struct {
		name string
		msg  interface{ MarshalBinary() ([]byte, error) }
	}{
		{"no method", &Request{Path: "/"}},
		{"bad field", &Request{Method: "GET", Header: Fields{{"a b", "c"}}}},
		{"value with newline", &Request{Method: "GET", Header: Fields{{"a", "x\ny"}}}},
		{":path field", &Request{Method: "GET", Header: Fields{{":path", "/"}}}},
		{"status 0", &Response{}},
		{"1xx final", &Response{Status: 101}},
		{"bad informational", &Response{Status: 200, Informational: []Informational{{Status: 200}}}},
		{"pseudo trailer", &Response{Status: 200, Trailer: Fields{{":x", "y"}}}},
		{"negative padding", &Response{Status: 200, Layout: Layout{Padding: -1}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.msg.MarshalBinary(); !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestVarint(t *testing.T) {
	for _, v := range []uint64{0, 63, 64, 16383, 16384, 1<<30 - 1, 1 << 30, maxVarint} {
		b := appendVarint(nil, v)
		if len(b) != varintLen(v) {
			t.Errorf("len(%d) = %d, want %d", v, len(b), varintLen(v))
		}
		got, n := readVarint(b)
		if got != v || n != len(b) {
			t.Errorf("varint %d: got %d (%d bytes)", v, got, n)
		}
		if _, n := readVarint(b[:len(b)-1]); n != 0 {
			t.Errorf("varint %d: short input accepted", v)
		}
	}
	// Non-minimal encodings are accepted (RFC 9292 Section 3).
	if v, n := readVarint([]byte{0x40, 0x05}); v != 5 || n != 2 {
		t.Errorf("non-minimal: %d %d", v, n)
	}
}

func TestFieldsLookup(t *testing.T) {
	fs := Fields{{"Link", "a"}, {"link", "b"}, {"date", "d"}}
	if fs.Get("LINK") != "a" || fs.Get("none") != "" {
		t.Errorf("Get")
	}
	if vs := fs.Values("link"); len(vs) != 2 || vs[1] != "b" {
		t.Errorf("Values = %v", vs)
	}
	r := NewResponse(404, "application/problem+json", []byte("{}"))
	if r.Header.Get("content-type") != "application/problem+json" || r.Status != 404 {
		t.Errorf("NewResponse = %+v", r)
	}
}
