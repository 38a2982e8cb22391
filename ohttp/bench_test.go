package ohttp

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/hpke"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/mimids/mimids/ohttp/bhttp"
)

// benchInner is the request of the gateway benchmarks: a small POST with a
// Date, like one KeyPackage fetch.
func benchInner() *bhttp.Request {
	return &bhttp.Request{Method: "POST", Scheme: "https", Authority: "b.example", Path: "/v1/echo",
		Header:  bhttp.Fields{{Name: "content-type", Value: "application/octet-stream"}},
		Content: make([]byte, 64)}
}

// BenchmarkHPKEOpen is the floor of a gateway transaction: one bare
// crypto/hpke Open with DHKEM(X25519)/HKDF-SHA256/AES-128-GCM of a
// message the size of the gateway benchmark's inner request.
func BenchmarkHPKEOpen(b *testing.B) {
	kem := hpke.DHKEM(ecdh.X25519())
	priv, err := kem.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	info := Header{1, KEMX25519HKDFSHA256, KDFHKDFSHA256, AEADAES128GCM}.info()
	msg, _ := benchInner().MarshalBinary()
	msg = append(msg, make([]byte, 40)...) // the Date field the client adds
	ct, err := hpke.Seal(priv.PublicKey(), hpke.HKDFSHA256(), hpke.AES128GCM(), info, msg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES128GCM(), info, ct); err != nil {
			b.Fatal(err)
		}
	}
}

// benchRequests encapsulates n distinct requests (the replay cache refuses
// repeats) to f's key with X25519/HKDF-SHA256/AES-128-GCM.
func benchRequests(b *testing.B, f *gatewayFixture, n int) [][]byte {
	b.Helper()
	out := make([][]byte, n)
	for i := range out {
		var err error
		if out[i], _, err = f.client.Encapsulate(benchInner()); err != nil {
			b.Fatal(err)
		}
	}
	return out
}

// BenchmarkGatewayTransaction is one full gateway transaction in process:
// parse, key lookup, HPKE decapsulation, replay check, Binary HTTP decode,
// Date check, a tiny handler, Binary HTTP encode and response
// encapsulation.
func BenchmarkGatewayTransaction(b *testing.B) {
	f := newGatewayFixture(b, nil)
	reqs := benchRequests(b, f, b.N)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, err := f.gw.Handle(ctx, reqs[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGatewayServeHTTP is BenchmarkGatewayTransaction through the
// http.Handler (content type check, body read, headers), without sockets.
func BenchmarkGatewayServeHTTP(b *testing.B) {
	f := newGatewayFixture(b, nil)
	reqs := benchRequests(b, f, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r := httptest.NewRequest(http.MethodPost, WellKnownGatewayPath, bytes.NewReader(reqs[i]))
		r.Header.Set("Content-Type", MediaTypeRequest)
		w := httptest.NewRecorder()
		f.gw.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatalf("status %d", w.Code)
		}
	}
}

// BenchmarkClientEncapsulate is the client's cost per request.
func BenchmarkClientEncapsulate(b *testing.B) {
	f := newGatewayFixture(b, nil)
	req := benchInner()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := f.client.Encapsulate(req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClientDecapsulate is the client's cost per response.
func BenchmarkClientDecapsulate(b *testing.B) {
	f := newGatewayFixture(b, nil)
	encReq, cc, _ := f.client.Encapsulate(benchInner())
	encResp, err := f.gw.Handle(context.Background(), encReq)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cc.Decapsulate(encResp); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoopback compares a client POSTing to the gateway directly
// with going through the relay, both over loopback HTTP: the difference
// is the relay's added latency.
func BenchmarkLoopback(b *testing.B) {
	for _, via := range []string{"direct", "relay"} {
		b.Run(via, func(b *testing.B) {
			f := newGatewayFixture(b, nil)
			gwSrv := httptest.NewServer(f.gw)
			defer gwSrv.Close()
			url := gwSrv.URL + WellKnownGatewayPath
			if via == "relay" {
				relay, err := NewRelay(RelayConfig{Peers: map[string]string{"b.example": url}})
				if err != nil {
					b.Fatal(err)
				}
				rs := httptest.NewServer(relay)
				defer rs.Close()
				url = rs.URL + "/ohttp-relay/b.example"
			}
			hc := gwSrv.Client()
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				resp, err := f.client.Do(ctx, hc, url, benchInner())
				if err != nil || resp.Status != 200 {
					b.Fatal(resp, err)
				}
			}
		})
	}
}

// BenchmarkGatewayVsOpen interleaves a bare crypto/hpke Open (the floor)
// and a full gateway transaction in the same loop, so that both see the
// same machine load, and reports their costs and the gateway's
// transactions/s as a fraction of bare Opens/s ("ratio"; the target is at
// least 0.5).
func BenchmarkGatewayVsOpen(b *testing.B) {
	f := newGatewayFixture(b, nil)
	reqs := benchRequests(b, f, b.N)
	kem := hpke.DHKEM(ecdh.X25519())
	priv, err := kem.GenerateKey()
	if err != nil {
		b.Fatal(err)
	}
	info := Header{1, KEMX25519HKDFSHA256, KDFHKDFSHA256, AEADAES128GCM}.info()
	msg, _ := benchInner().MarshalBinary()
	ct, err := hpke.Seal(priv.PublicKey(), hpke.HKDFSHA256(), hpke.AES128GCM(), info, append(msg, make([]byte, 40)...))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var open, gw time.Duration
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if _, err := hpke.Open(priv, hpke.HKDFSHA256(), hpke.AES128GCM(), info, ct); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := f.gw.Handle(ctx, reqs[i]); err != nil {
			b.Fatal(err)
		}
		open += t1.Sub(t0)
		gw += time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(open.Nanoseconds())/n, "open-ns/op")
	b.ReportMetric(float64(gw.Nanoseconds())/n, "gateway-ns/op")
	b.ReportMetric(1e9*n/float64(open.Nanoseconds()), "opens/s")
	b.ReportMetric(1e9*n/float64(gw.Nanoseconds()), "gateway-tx/s")
	b.ReportMetric(float64(open)/float64(gw), "ratio")
}
