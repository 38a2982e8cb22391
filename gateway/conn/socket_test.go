package conn

import (
	"bytes"
	"context"
	"encoding/binary"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// goid returns the calling goroutine's id, from its stack header.
func goid() string {
	var b [64]byte
	s := string(b[:runtime.Stack(b[:], false)])
	s = strings.TrimPrefix(s, "goroutine ")
	return s[:strings.IndexByte(s, ' ')]
}

// onWrite is a Handler and WriteObserver that records the goroutines that write.
type onWrite struct {
	mu   sync.Mutex
	gids map[string]int // Guarded by mu.
}

func (o *onWrite) bind(*Conn)                                                   {}
func (o *onWrite) Receive(context.Context, websocket.MessageType, []byte) error { return nil }
func (o *onWrite) Writing([][]byte) {
	o.mu.Lock()
	o.gids[goid()]++
	o.mu.Unlock()
}
func (o *onWrite) Wrote([][]byte) {}

// TestFlushWritesOnCaller checks that on a Socket's connection Flush writes on the
// caller's goroutine: a push costs no writer goroutine, and what is queued at once
// leaves as one WebSocket message.
func TestFlushWritesOnCaller(t *testing.T) {
	obs := &onWrite{gids: map[string]int{}}
	cfg := testConfig()
	cfg.MaxBatchBytes = 64 << 10
	s := open(t, setup{cfg: cfg, handler: obs})
	eventually(t, "Run to start", func() bool { return s.c.takeWriter() })
	s.c.writing.Store(false)
	s.c.writers.Done()
	me := goid()
	for i := 0; i < 100; i++ {
		s.c.TryEnqueue([]byte{byte(i)})
		if i%2 == 1 {
			s.c.TryEnqueue([]byte{byte(i), 'b'})
		}
		s.c.Flush()
	}
	got := readN(t, s.peer, 100)
	for i, m := range got {
		want := string([]byte{byte(i)})
		if i%2 == 1 {
			want += string([]byte{byte(i), 'b'})
		}
		if m != want {
			t.Fatalf("message %d = %q, want %q", i, m, want)
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.gids[me] != 100 || len(obs.gids) != 1 {
		t.Fatalf("writes by goroutine %v; want all 100 by the caller %s", obs.gids, me)
	}
}

// TestSocketBacklogInOrder pushes 24 MiB through Flush, from two goroutines in
// turn, to a peer that reads nothing at first: Flush never blocks, the socket's
// backlog never holds more than one WebSocket message, the queue's bounds hold (a
// refused message is offered again), and once the peer reads, every message
// arrives once, in order, and every byte charged is given back.
func TestSocketBacklogInOrder(t *testing.T) {
	const size, n = 8 << 10, 3072
	cfg := testConfig()
	cfg.MaxBatchBytes = 64 << 10
	cfg.MaxQueueBytes = 1 << 20
	cfg.WriteTimeout = 10 * time.Second
	total := NewBudget(1 << 40)
	cfg.Total = total
	s := open(t, setup{cfg: cfg, handler: &onWrite{gids: map[string]int{}}})
	var maxFlush time.Duration
	var maxBacklog, maxQueued int64
	sample := func() {
		s.c.out.mu.Lock()
		maxBacklog = max(maxBacklog, int64(len(s.c.out.backlog)))
		s.c.out.mu.Unlock()
		maxQueued = max(maxQueued, s.c.Queued())
	}
	done := make(chan struct{})
	go func() { // the fan-out: two goroutines taking turns, as fanOut's shards do per subscriber
		defer close(done)
		var turn sync.Mutex
		var wg sync.WaitGroup
		next := 0
		for g := 0; g < 2; g++ {
			wg.Go(func() {
				for {
					turn.Lock()
					if next == n {
						turn.Unlock()
						return
					}
					msg := make([]byte, size)
					binary.BigEndian.PutUint32(msg, uint32(next))
					if s.c.TryEnqueue(msg) {
						next++
					}
					start := time.Now()
					s.c.Flush()
					maxFlush = max(maxFlush, time.Since(start))
					sample()
					turn.Unlock()
					if s.c.out.blocked() {
						time.Sleep(time.Millisecond) // let the peer (or the flusher) make room
					}
				}
			})
		}
		wg.Wait()
	}()
	eventually(t, "a backlog", s.c.out.blocked)
	time.Sleep(200 * time.Millisecond) // the peer reads nothing for a while
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var got []byte
	for len(got) < size*n {
		_, b, err := s.peer.Read(ctx)
		if err != nil {
			t.Fatalf("after %d bytes: %v", len(got), err)
		}
		got = append(got, b...)
	}
	<-done
	for i := 0; i < n; i++ {
		m := got[i*size : (i+1)*size]
		if c := binary.BigEndian.Uint32(m); c != uint32(i) || !bytes.Equal(m[4:], make([]byte, size-4)) {
			t.Fatalf("message %d is message %d", i, c)
		}
	}
	if maxFlush > time.Second {
		t.Errorf("a Flush took %v: it blocked on the peer", maxFlush)
	}
	if lim := int64(cfg.MaxBatchBytes + 8<<10); maxBacklog > lim {
		t.Errorf("backlog reached %d bytes, want at most one message (%d)", maxBacklog, lim)
	}
	if maxQueued > 2*int64(cfg.MaxQueueBytes) { // the queue, and the batch taken from it being written
		t.Errorf("queued or being written reached %d bytes", maxQueued)
	}
	eventually(t, "every byte given back", func() bool { return s.c.Queued() == 0 && total.Used() == 0 })
}

// TestSocketWriteTimeout checks that a peer that never reads is closed as a slow
// consumer within the write timeout of its backlog, while Flush never blocks, and
// that what it held is given back.
func TestSocketWriteTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.WriteTimeout = 300 * time.Millisecond
	cfg.MaxQueueBytes = 64 << 20
	total := NewBudget(1 << 40)
	cfg.Total = total
	s := open(t, setup{cfg: cfg})
	big := make([]byte, 1<<20)
	start := time.Now()
	for i := 0; i < 64 && s.c.ctx.Err() == nil; i++ {
		s.c.TryEnqueue(big)
		t0 := time.Now()
		s.c.Flush()
		if d := time.Since(t0); d > cfg.WriteTimeout {
			t.Fatalf("Flush %d took %v", i, d)
		}
	}
	if r := s.onlyClose(t); r != (Reason{4008, "write timeout"}) {
		t.Fatalf("reason %+v", r)
	}
	if err := s.result(t, time.Second); err == nil {
		t.Fatal("Run returned nil after the connection was dropped")
	}
	eventually(t, "the budget given back", func() bool { return total.Used() == 0 })
	t.Logf("closed after %v", time.Since(start))
}

// TestPlainConn runs a connection made with New on websocket.Accept's connection
// (federation's sockets): echo in order, batching, and the write timeout.
func TestPlainConn(t *testing.T) {
	t.Run("echo", func(t *testing.T) {
		s := open(t, setup{cfg: testConfig(), plain: true})
		for i := 0; i < 50; i++ {
			write(t, s.peer, string(rune('a'+i%26)))
		}
		for i, got := range readN(t, s.peer, 50) {
			if got != string(rune('a'+i%26)) {
				t.Fatalf("message %d = %q", i, got)
			}
		}
	})
	t.Run("write timeout", func(t *testing.T) {
		cfg := testConfig()
		cfg.WriteTimeout = 300 * time.Millisecond
		cfg.MaxQueueBytes = 64 << 20
		s := open(t, setup{cfg: cfg, plain: true, before: func(c *Conn) {
			big := make([]byte, 1<<20)
			for i := 0; i < 48; i++ {
				c.TryEnqueue(big)
			}
		}})
		if r := s.onlyClose(t); r != (Reason{4008, "write timeout"}) {
			t.Fatalf("reason %+v", r)
		}
	})
}
