package provider_test

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// linkProxy is a loopback TCP proxy for a federation link: a peer's URL points at
// it. It can delay every chunk it copies, throttle (small chunks, each delayed),
// and cut every connection through it.
type linkProxy struct {
	// Static after newLinkProxy.
	ln     net.Listener
	target string

	accepted atomic.Int32 // connections accepted
	delay    atomic.Int64 // nanoseconds before each chunk is passed on
	chunk    atomic.Int64 // largest chunk read at once (0: 32 KiB)
	copied   atomic.Int64 // bytes passed on, both directions

	mu    sync.Mutex
	conns []net.Conn // open, both ends; Guarded by mu.
}

func newLinkProxy(t testing.TB, target string) *linkProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &linkProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *linkProxy) addr() string { return p.ln.Addr().String() }

func (p *linkProxy) setDelay(d time.Duration) { p.delay.Store(int64(d)) }

// throttle passes at most chunk bytes per delay in each direction (0, 0: off).
func (p *linkProxy) throttle(chunk int, delay time.Duration) {
	p.chunk.Store(int64(chunk))
	p.delay.Store(int64(delay))
}

func (p *linkProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go p.copy(up, c)
		go p.copy(c, up)
	}
}

func (p *linkProxy) copy(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n := len(buf)
		if c := int(p.chunk.Load()); c > 0 && c < n {
			n = c
		}
		k, err := src.Read(buf[:n])
		if k > 0 {
			if d := p.delay.Load(); d > 0 {
				time.Sleep(time.Duration(d))
			}
			if _, err := dst.Write(buf[:k]); err != nil {
				return
			}
			p.copied.Add(int64(k))
		}
		if err != nil {
			return
		}
	}
}

// cut closes every connection through the proxy and returns how many there were.
func (p *linkProxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	n := len(p.conns) / 2
	p.conns = nil
	return n
}
