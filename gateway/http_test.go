package gateway_test

// The HTTP edge under slow and oversized requests (issue 15, item 3), from outside:
// raw TCP against a real provider.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/ohttp"
	"github.com/mimids/mimids/protocol"
)

// rawHTTP opens a TCP connection to the provider.
func rawHTTP(t *testing.T, p *providertest.Provider) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", strings.TrimPrefix(p.Base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return nc
}

// closedWithin reads (discarding) until the server closes nc and reports how long
// that took; it fails the test if the server keeps it open for d.
func closedWithin(t *testing.T, nc net.Conn, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	nc.SetReadDeadline(start.Add(d))
	_, err := io.Copy(io.Discard, nc)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the server kept the connection open for %v", d)
	}
	return time.Since(start)
}

// TestHTTPIdleTimeout: a keep-alive connection that sends no next request is
// closed after http.idle_timeout.
func TestHTTPIdleTimeout(t *testing.T) {
	p := startProvider(t, func(c *gateway.Config) { c.HTTP.IdleTimeout = gateway.Duration(300 * time.Millisecond) })
	nc := rawHTTP(t, p)
	fmt.Fprintf(nc, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("healthz: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	if d := closedWithin(t, nc, 5*time.Second); d < 200*time.Millisecond {
		t.Fatalf("closed after %v, before the idle timeout", d)
	}
}

// TestHTTPSlowBody: a body trickled at one byte per 200 ms, to the admin API, the
// OHTTP gateway and the relay, is cut at http.read_timeout.
func TestHTTPSlowBody(t *testing.T) {
	p := startProvider(t, func(c *gateway.Config) { c.HTTP.ReadTimeout = gateway.Duration(time.Second) })
	_, tok := addClient(t, p, "alice", "phone")
	tests := []struct{ name, path, headers string }{
		{"admin", "/admin/v1/users", "Authorization: Bearer " + p.AdminToken + "\r\nContent-Type: application/json\r\n"},
		{"ohttp gateway", ohttp.WellKnownGatewayPath, "Content-Type: " + ohttp.MediaTypeRequest + "\r\n"},
		{"relay", protocol.RelayPathPrefix + "localhost", "Authorization: Bearer " + tok + "\r\nContent-Type: " + ohttp.MediaTypeRequest + "\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			nc := rawHTTP(t, p)
			fmt.Fprintf(nc, "POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: 1000\r\n\r\n", tc.path, tc.headers)
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				t := time.NewTicker(200 * time.Millisecond)
				defer t.Stop()
				for i := 0; i < 1000; i++ {
					select {
					case <-stop:
						return
					case <-t.C:
					}
					if _, err := nc.Write([]byte{'x'}); err != nil {
						return
					}
				}
			}()
			d := closedWithin(t, nc, 10*time.Second)
			t.Logf("cut after %v", d)
		})
	}
}

// TestHTTPBodyLimit: an admin request whose Content-Length is over
// http.max_body_bytes is refused with 413 before its body is read (the server
// answers and closes having got a small part of 60 MB); a chunked body is cut
// once it passes the limit.
func TestHTTPBodyLimit(t *testing.T) {
	p := startProvider(t, nil)
	t.Run("content-length", func(t *testing.T) {
		nc := rawHTTP(t, p)
		fmt.Fprintf(nc, "POST /admin/v1/notices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
			"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n", p.AdminToken, 60<<20)
		nc.Write([]byte(`{"to":{"all":true},"text":"` + strings.Repeat("x", 64<<10)))
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("60 MB notice: %v %v", resp, err)
		}
		resp.Body.Close()
		closedWithin(t, nc, 5*time.Second)
	})
	t.Run("chunked", func(t *testing.T) {
		body := io.MultiReader(strings.NewReader(`{"to":{"all":true},"text":"`), strings.NewReader(strings.Repeat("x", 1<<20)),
			strings.NewReader(`"}`))
		req, _ := http.NewRequest("POST", p.Base+"/admin/v1/notices", io.NopCloser(body))
		req.Header.Set("Authorization", "Bearer "+p.AdminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := (&http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}).Do(req)
		if err != nil || resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("1 MiB chunked notice: %v %v", resp, err)
		}
		resp.Body.Close()
	})
	t.Run("within the limit", func(t *testing.T) {
		req, _ := http.NewRequest("POST", p.Base+"/admin/v1/notices", strings.NewReader(`{"to":{"all":true},"text":"`+strings.Repeat("x", 32<<10)+`"}`))
		req.Header.Set("Authorization", "Bearer "+p.AdminToken)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("32 KiB notice: %v %v", resp, err)
		}
		resp.Body.Close()
	})
	if got := p.Metrics(t)["mimids_http_bodies_refused_total"]; got != 2 {
		t.Fatalf("bodies refused: %v, want 2", got)
	}
}

// TestSocketOutlivesHTTPTimeouts: the HTTP server's timeouts end at the upgrade; an
// authenticated socket idle for longer than all of them still answers.
func TestSocketOutlivesHTTPTimeouts(t *testing.T) {
	p := startProvider(t, func(c *gateway.Config) {
		c.HTTP.ReadHeaderTimeout = gateway.Duration(200 * time.Millisecond)
		c.HTTP.ReadTimeout = gateway.Duration(200 * time.Millisecond)
		c.HTTP.IdleTimeout = gateway.Duration(200 * time.Millisecond)
	})
	_, tok := addClient(t, p, "alice", "phone")
	rc, f := dialer{}.login(t, p, tok)
	if f.Type() != protocol.TypeAuthOK {
		t.Fatalf("auth: %#v", f)
	}
	time.Sleep(time.Second) // past every HTTP timeout
	rc.send(&protocol.Request{RequestID: 2, Method: protocol.MethodPing, Body: []byte("hi")})
	if r, ok := rc.next().(*protocol.Response); !ok || string(r.Body) != "hi" {
		t.Fatalf("ping after the HTTP timeouts: %#v", r)
	}
}
