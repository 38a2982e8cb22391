package conn

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"testing"
	"time"
)

// TestFrameScan feeds frames of every header length in parts of every size and
// checks that the end of each frame, and only that, is reported.
func TestFrameScan(t *testing.T) {
	header := func(n int, masked bool) []byte {
		h := []byte{0x82, 0}
		switch {
		case n < 126:
			h[1] = byte(n)
		case n <= 0xffff:
			h[1] = 126
			h = binary.BigEndian.AppendUint16(h, uint16(n))
		default:
			h[1] = 127
			h = binary.BigEndian.AppendUint64(h, uint64(n))
		}
		if masked {
			h[1] |= 0x80
			h = append(h, 1, 2, 3, 4)
		}
		return h
	}
	for _, tc := range []struct {
		payload int
		masked  bool
	}{{0, false}, {1, false}, {125, false}, {126, false}, {4000, false}, {65535, false}, {65536, false}, {70000, false}, {0, true}, {300, true}} {
		frame := append(header(tc.payload, tc.masked), make([]byte, tc.payload)...)
		for _, part := range []int{1, 2, 3, tinyBuffer, 1000, len(frame)} {
			t.Run(fmt.Sprintf("%d/masked=%v/parts of %d", tc.payload, tc.masked, part), func(t *testing.T) {
				var f frameScan
				for range 2 { // two frames back to back
					for i := 0; i < len(frame); i += part {
						j := min(i+part, len(frame))
						if end := f.feed(frame[i:j]); end != (j == len(frame)) {
							t.Fatalf("after %d of %d bytes: end %v", j, len(frame), end)
						}
					}
				}
			})
		}
	}
}

// TestIdleSocketHoldsNoBuffer checks that a Socket's connection carries messages
// of every size both ways through its tiny bufio buffers, each write in one piece,
// and that between messages it holds no read or write buffer of its own.
func TestIdleSocketHoldsNoBuffer(t *testing.T) {
	s := open(t, setup{cfg: testConfig()})
	if !s.c.out.tiny {
		t.Skip("no plain socket here") // non-unix: the HTTP server's buffers stay
	}
	for _, n := range []int{0, 1, tinyBuffer - 2, tinyBuffer, 200, 4095, 4096, 5000, 65536, 200_000} {
		msg := bytes.Repeat([]byte{byte(n)}, n)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.peer.Write(ctx, 2, msg); err != nil {
			t.Fatal(err)
		}
		_, got, err := s.peer.Read(ctx) // the echo
		cancel()
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: echo of %d bytes differs", n, len(got))
		}
		o := s.c.out
		eventually(t, "the buffers to be given back", func() bool {
			o.mu.Lock()
			defer o.mu.Unlock()
			return o.parts == nil && o.backlog == nil && o.frame.nhdr == 0 && o.frame.left == 0 && !o.flushing
		})
		if o.rbuf != nil { // the reader is waiting for the next message: its Read holds nothing
			t.Errorf("after %d bytes: the reader keeps %d bytes", n, len(o.rbuf))
		}
	}
	// Control frames take the same path: a ping of the server's, answered while
	// the peer reads.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go s.peer.Read(ctx) //nolint:errcheck // it only has to read the pong
	if err := s.c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
