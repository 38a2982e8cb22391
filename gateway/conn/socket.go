package conn

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

// Socket is an accepted WebSocket whose network connection this package writes
// itself (Accept). A Conn made from it (NewSocket) writes without ever blocking the
// caller: what the kernel does not take at once waits, in order, in a backlog that a
// flusher goroutine writes within Config.WriteTimeout, and no more is written until
// it has. So Flush can write pushes on the fan-out's own goroutine, a thousand
// sockets in turn, with no writer goroutine started or woken per push
// (docs/performance.md, "Latency budget").
type Socket struct {
	WS  *websocket.Conn
	out *outConn
}

// Accept is websocket.Accept, keeping hold of the connection it hijacks.
func Accept(w http.ResponseWriter, r *http.Request, opts *websocket.AcceptOptions) (*Socket, error) {
	hw := &hijackWriter{ResponseWriter: w}
	ws, err := websocket.Accept(hw, r, opts)
	if err != nil {
		return nil, err
	}
	return &Socket{WS: ws, out: hw.out}, nil
}

// NewSocket is New for an accepted Socket.
func NewSocket(s *Socket, cfg *Config, h Handler, log *slog.Logger) *Conn {
	c := New(s.WS, cfg, h, log)
	if s.out != nil {
		s.out.timeout = cfg.WriteTimeout
		s.out.c = c
		c.out = s.out
	}
	return c
}

// hijackWriter hands websocket.Accept the connection wrapped in an outConn.
type hijackWriter struct {
	http.ResponseWriter
	out *outConn // set by Hijack
}

func (h *hijackWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }

func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	if err := brw.Writer.Flush(); err != nil { // the 101 response, if still buffered
		nc.Close()
		return nil, nil, fmt.Errorf("conn: hijack: %w", err)
	}
	h.out = newOutConn(nc)
	if !h.out.inline() {
		brw.Writer.Reset(h.out) // keeps its buffer: coder/websocket writes frames into it
		return h.out, brw, nil
	}
	// A plain socket: tiny bufio buffers over pooled ones (buffers.go). The HTTP
	// server's 4 KiB buffers go; what its Reader had read ahead is read first.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		h.out.rbuf = append(getBuffer(), b...)
	}
	h.out.tiny = true
	tiny := bufio.NewReadWriter(bufio.NewReaderSize(h.out, tinyBuffer), bufio.NewWriterSize(h.out, tinyBuffer))
	return h.out, tiny, nil
}

// outConn is the network connection under a Socket. Its Write never blocks on the
// peer: it writes what the kernel takes at once and keeps the rest in backlog, which
// a flusher goroutine writes. coder/websocket serializes Writes (one frame at a time).
type outConn struct {
	net.Conn
	raw syscall.RawConn // nil: no non-blocking writes here (not a plain socket)

	// Set by NewSocket before anything is written; read-only after.
	c       *Conn
	timeout time.Duration
	tiny    bool // set by Hijack: the bufio buffers above are tiny (buffers.go)

	// The reader's (coder/websocket reads under its own lock): what a read took
	// beyond what the caller wanted, in a pooled buffer.
	rbuf []byte
	roff int

	mu       sync.Mutex
	backlog  []byte    // written to the socket by the flusher; Guarded by mu.
	flushing bool      // a flusher runs; Guarded by mu.
	held     int64     // bytes still charged to the budgets until the backlog is written; Guarded by mu.
	err      error     // the first failed write: every later Write fails; Guarded by mu.
	frame    frameScan // where the writes are in the current frame (tiny); Guarded by mu.
	parts    []byte    // the current frame's parts so far, pooled (tiny); Guarded by mu.
}

func newOutConn(nc net.Conn) *outConn {
	o := &outConn{Conn: nc}
	if sc, ok := nc.(syscall.Conn); ok && nonBlockingWrites {
		if raw, err := sc.SyscallConn(); err == nil {
			o.raw = raw
		}
	}
	return o
}

// inline reports whether writes may run on a goroutine that must not block.
func (o *outConn) inline() bool { return o.raw != nil }

func (o *outConn) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return 0, o.err
	}
	all := len(p)
	if o.tiny {
		if p = o.gather(p); p == nil {
			return all, nil // more of this frame is to come
		}
		defer o.dropParts()
	}
	if o.flushing {
		o.backlog = append(o.backlog, p...)
		return all, nil
	}
	n, err := o.tryWrite(p)
	if err != nil {
		o.err = err
		return 0, err
	}
	if n < len(p) {
		o.backlog = append(o.backlog, p[n:]...)
		o.flushing = true
		go o.flush()
	}
	return all, nil
}

// tryWrite writes what the socket takes without waiting; without a raw socket it
// writes all of p within the write timeout.
func (o *outConn) tryWrite(p []byte) (n int, err error) {
	if o.raw == nil {
		o.Conn.SetWriteDeadline(time.Now().Add(o.timeout))
		return o.Conn.Write(p)
	}
	rerr := o.raw.Write(func(fd uintptr) bool {
		n, err = writeNonBlocking(fd, p)
		return true // never wait for the socket to become writable
	})
	if err == nil {
		err = rerr
	}
	return n, err
}

// blocked reports whether a backlog waits for the flusher.
func (o *outConn) blocked() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.flushing
}

// hold keeps n written bytes charged until the backlog is written, if there is
// one, and reports whether it did.
func (o *outConn) hold(n int64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.flushing {
		return false
	}
	o.held += n
	return true
}

// flush writes the backlog, blocking, within the write timeout for each part; then
// it gives back the bytes held and wakes the writer for what is still queued.
func (o *outConn) flush() {
	for {
		o.mu.Lock()
		b := o.backlog
		o.backlog = nil // not kept: an idle socket holds no write buffer of its own
		if len(b) == 0 {
			held := o.held
			o.flushing, o.held = false, 0
			o.mu.Unlock()
			o.c.uncharge(held)
			o.c.Wake()
			return
		}
		o.mu.Unlock()
		o.Conn.SetWriteDeadline(time.Now().Add(o.timeout))
		_, err := o.Conn.Write(b)
		o.Conn.SetWriteDeadline(time.Time{}) // raw writes check the deadline too
		if err != nil {
			o.fail(err)
			return
		}
	}
}

// fail ends the connection after the flusher's write failed: a peer that did not
// read within the write timeout is a slow consumer.
func (o *outConn) fail(err error) {
	o.mu.Lock()
	o.err = err
	o.backlog = nil
	held := o.held
	o.flushing, o.held = false, 0 // Writes fail from now on
	o.mu.Unlock()
	o.c.uncharge(held)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		o.c.Close(o.c.cfg.SlowConsumer, "write timeout")
	}
	o.Conn.Close() // the reader fails at once, which ends Run
}
