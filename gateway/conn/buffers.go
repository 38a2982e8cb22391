package conn

import (
	"encoding/binary"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// An idle Socket holds no read or write buffer of its own (docs/performance.md,
// "Memory per connection"). coder/websocket reads and writes through the bufio
// Reader and Writer that Hijack hands it; on a plain socket those are tiny
// (tinyBuffer bytes), and the outConn under them borrows a pooled buffer only while
// bytes pass: a read takes one for what the kernel has, and gives it back once the
// reader has consumed it; a write gathers a frame that the tiny Writer passes in
// parts into one, writes it in one call, and gives it back.

// tinyBuffer is the size of the bufio Reader and Writer of a plain socket: the
// Reader's minimum, and room for the largest frame header a server writes.
const tinyBuffer = 16

// pooledBuffer is the size of a pooled buffer; maxPooled the largest one kept (a
// batch of 64 KiB and its header).
const (
	pooledBuffer = 4 << 10
	maxPooled    = 80 << 10
)

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, pooledBuffer); return &b }}

func getBuffer() []byte { return (*buffers.Get().(*[]byte))[:0] }

func putBuffer(b []byte) {
	if cap(b) < pooledBuffer || cap(b) > maxPooled {
		return
	}
	b = b[:0]
	buffers.Put(&b)
}

// frameScan follows the WebSocket frames written through an outConn, so that it
// knows when the parts of one frame have all been written (RFC 6455 §5.2).
type frameScan struct {
	hdr  [14]byte
	nhdr int   // header bytes seen of the current frame
	need int   // its header's length, once its second byte is seen
	left int64 // payload bytes of the current frame still to come
}

// feed advances over p and reports whether p ends at the end of a frame.
func (f *frameScan) feed(p []byte) bool {
	for len(p) > 0 {
		if f.left > 0 {
			n := min(int64(len(p)), f.left)
			f.left -= n
			p = p[n:]
			continue
		}
		f.hdr[f.nhdr] = p[0]
		f.nhdr++
		p = p[1:]
		if f.nhdr == 2 {
			f.need = 2
			switch f.hdr[1] & 0x7f {
			case 126:
				f.need += 2
			case 127:
				f.need += 8
			}
			if f.hdr[1]&0x80 != 0 {
				f.need += 4
			}
		}
		if f.nhdr < 2 || f.nhdr < f.need {
			continue
		}
		switch l := f.hdr[1] & 0x7f; l {
		case 126:
			f.left = int64(binary.BigEndian.Uint16(f.hdr[2:]))
		case 127:
			f.left = int64(binary.BigEndian.Uint64(f.hdr[2:]) & (1<<63 - 1))
		default:
			f.left = int64(l)
		}
		f.nhdr, f.need = 0, 0
	}
	return f.left == 0 && f.nhdr == 0
}

// gather keeps p, a part of a frame, until the frame's last part: it returns what
// to write now (nil: nothing yet), which is p itself when p is a whole frame.
// Guarded by o.mu.
func (o *outConn) gather(p []byte) []byte {
	end := o.frame.feed(p)
	if end && o.parts == nil {
		return p
	}
	if o.parts == nil {
		o.parts = getBuffer()
	}
	o.parts = append(o.parts, p...)
	if !end {
		return nil
	}
	return o.parts
}

// dropParts gives back the gathered parts once written (or copied to the backlog).
// Guarded by o.mu.
func (o *outConn) dropParts() {
	if o.parts != nil {
		putBuffer(o.parts)
		o.parts = nil
	}
}

// Read is the reader's (coder/websocket serializes its reads). On a plain socket it
// waits for the kernel without holding a buffer, reads what there is into a pooled
// one, and hands it out until it is empty.
func (o *outConn) Read(p []byte) (int, error) {
	if !o.tiny {
		return o.Conn.Read(p)
	}
	if o.roff < len(o.rbuf) {
		n := copy(p, o.rbuf[o.roff:])
		o.roff += n
		if o.roff == len(o.rbuf) {
			putBuffer(o.rbuf)
			o.rbuf, o.roff = nil, 0
		}
		return n, nil
	}
	if len(p) >= pooledBuffer {
		return o.Conn.Read(p)
	}
	var (
		buf  []byte
		n    int
		rerr error
	)
	err := o.raw.Read(func(fd uintptr) bool {
		if buf == nil {
			buf = getBuffer()
		}
		n, rerr = readNonBlocking(fd, buf[:cap(buf)])
		if rerr == syscall.EAGAIN {
			putBuffer(buf) // nothing held while waiting for the peer
			buf = nil
			return false
		}
		return true
	})
	switch {
	case err != nil:
		putBuffer(buf)
		return 0, err
	case rerr != nil:
		putBuffer(buf)
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: o.LocalAddr(), Addr: o.RemoteAddr(), Err: os.NewSyscallError("read", rerr)}
	case n == 0:
		putBuffer(buf)
		return 0, io.EOF
	}
	m := copy(p, buf[:n])
	if m == n {
		putBuffer(buf)
	} else {
		o.rbuf, o.roff = buf[:n], m
	}
	return m, nil
}
