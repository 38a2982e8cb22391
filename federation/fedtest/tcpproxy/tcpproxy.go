// Package tcpproxy is a loopback TCP proxy for fault tests: it can hold new
// connections until a gate opens, delay or throttle what it copies, and cut every
// connection through it.
package tcpproxy

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy forwards each connection it accepts to one target address.
type Proxy struct {
	// Static after New.
	ln     net.Listener
	target string

	accepted atomic.Int32 // connections accepted
	delay    atomic.Int64 // nanoseconds before each chunk is passed on
	chunk    atomic.Int64 // largest chunk read at once (0: 32 KiB)
	copied   atomic.Int64 // bytes passed on, both directions
	open     atomic.Int32 // connections piped and not yet ended

	mu    sync.Mutex
	hold  <-chan struct{} // new connections wait for it to close; Guarded by mu.
	conns []net.Conn      // both ends of each piped connection; Guarded by mu.
}

// New listens on a fresh loopback port and forwards to target until Close.
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target}
	go p.serve()
	return p, nil
}

// Start is New for a test: it fails t if it cannot listen, and closes the proxy
// when the test ends.
func Start(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

// Addr is the address to dial instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops accepting and cuts every connection.
func (p *Proxy) Close() {
	p.ln.Close()
	p.Cut()
}

// Accepted is how many connections the proxy accepted.
func (p *Proxy) Accepted() int { return int(p.accepted.Load()) }

// Open is how many connections are piped now.
func (p *Proxy) Open() int { return int(p.open.Load()) }

// Copied is how many bytes the proxy passed on, both directions.
func (p *Proxy) Copied() int64 { return p.copied.Load() }

// Hold makes connections accepted from now on wait until gate closes before the
// proxy dials the target.
func (p *Proxy) Hold(gate <-chan struct{}) {
	p.mu.Lock()
	p.hold = gate
	p.mu.Unlock()
}

// SetDelay delays every chunk copied from now on by d (0: none).
func (p *Proxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

// Throttle passes at most chunk bytes per delay in each direction (0, 0: off).
func (p *Proxy) Throttle(chunk int, delay time.Duration) {
	p.chunk.Store(int64(chunk))
	p.delay.Store(int64(delay))
}

// Cut closes every connection through the proxy and returns how many there were.
func (p *Proxy) Cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	n := len(p.conns) / 2
	p.conns = nil
	return n
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		go p.pipe(c)
	}
}

func (p *Proxy) pipe(c net.Conn) {
	p.mu.Lock()
	hold := p.hold
	p.mu.Unlock()
	if hold != nil {
		<-hold
	}
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, up)
	p.mu.Unlock()
	p.open.Add(1)
	defer p.open.Add(-1)
	done := make(chan struct{})
	go func() { p.copy(up, c); close(done) }()
	p.copy(c, up)
	<-done
}

func (p *Proxy) copy(dst, src net.Conn) {
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
