package bhttp

import "testing"

func benchRequest() *Request {
	return &Request{Method: "POST", Scheme: "https", Authority: "b.example", Path: "/v1/keypackages",
		Header:  Fields{{"content-type", "application/octet-stream"}, {"date", "Mon, 27 Jul 2009 12:28:53 GMT"}},
		Content: make([]byte, 256)}
}

func BenchmarkRequestDecode(b *testing.B) {
	enc, err := benchRequest().MarshalBinary()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := UnmarshalRequest(enc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRequestEncode(b *testing.B) {
	r := benchRequest()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}
