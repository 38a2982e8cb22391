package conn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestEcho(t *testing.T) {
	s := open(t, setup{cfg: testConfig()})
	for i := 0; i < 100; i++ {
		write(t, s.peer, fmt.Sprint("m", i))
	}
	for i, got := range readN(t, s.peer, 100) {
		if got != fmt.Sprint("m", i) {
			t.Fatalf("message %d = %q", i, got)
		}
	}
	s.peer.Close(websocket.StatusNormalClosure, "bye")
	if r := s.onlyClose(t); r.Code != websocket.StatusNormalClosure {
		t.Fatalf("reason %+v, want the peer's normal closure", r)
	}
}

// TestBatching checks that queued messages are packed into WebSocket messages of at
// most MaxBatchBytes, and written on their own when batching is off.
func TestBatching(t *testing.T) {
	tests := []struct {
		name     string
		maxBatch int
		want     []string
	}{
		{"off", 0, []string{"aaa", "bbb", "cccc"}},
		{"all in one", 64 << 10, []string{"aaabbbcccc"}},
		{"two by size", 6, []string{"aaabbb", "cccc"}},
		{"larger than the batch", 2, []string{"aaa", "bbb", "cccc"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.MaxBatchBytes = tc.maxBatch
			s := open(t, setup{cfg: cfg, before: func(c *Conn) {
				for _, m := range []string{"aaa", "bbb", "cccc"} {
					c.TryEnqueue([]byte(m))
				}
			}})
			got := readN(t, s.peer, len(tc.want))
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			s.c.Close(websocket.StatusNormalClosure, "done")
			if code := peerClose(t, s.peer); code != websocket.StatusNormalClosure {
				t.Fatalf("after the batches: close %d (or an extra message)", code)
			}
		})
	}
}

// TestQueueBounds fills the queue before Run, in count and in bytes: TryEnqueue
// refuses without closing, Enqueue closes with the slow-consumer code.
func TestQueueBounds(t *testing.T) {
	tests := []struct {
		name      string
		messages  int
		bytes     int
		sizes     []int // all fit
		overflow  int   // the size that does not
		wantCount int
	}{
		{"count", 3, 1 << 20, []int{10, 10, 10}, 1, 3},
		{"bytes", 100, 100, []int{60, 40}, 1, 2},
		{"bytes, one too many", 100, 100, []int{60}, 41, 1},
		{"one message larger than the queue", 100, 100, nil, 101, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.MaxQueueMessages, cfg.MaxQueueBytes = tc.messages, tc.bytes
			var fits []bool
			var tried, enqueued bool
			var closedByTry bool
			s := open(t, setup{cfg: cfg, before: func(c *Conn) {
				for _, n := range tc.sizes {
					fits = append(fits, c.TryEnqueue(make([]byte, n)))
				}
				tried = c.TryEnqueue(make([]byte, tc.overflow))
				_, closedByTry = c.Reason()
				enqueued = c.Enqueue(make([]byte, tc.overflow))
			}})
			for i, ok := range fits {
				if !ok {
					t.Fatalf("message %d of %v refused", i, tc.sizes)
				}
			}
			if tried || closedByTry || enqueued {
				t.Fatalf("overflow: TryEnqueue %v (closed %v), Enqueue %v; want false, false, false", tried, closedByTry, enqueued)
			}
			if code := peerClose(t, s.peer); code != 4008 {
				t.Fatalf("peer saw close %d, want 4008", code)
			}
			if r := s.onlyClose(t); r != (Reason{4008, "send queue full"}) {
				t.Fatalf("reason %+v", r)
			}
		})
	}
}

// TestWriteTimeout queues more than the socket buffers hold for a peer that never
// reads: the write times out and the connection closes as a slow consumer.
func TestWriteTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.WriteTimeout = 300 * time.Millisecond
	cfg.MaxQueueBytes = 64 << 20
	start := time.Now()
	s := open(t, setup{cfg: cfg, before: func(c *Conn) {
		big := make([]byte, 1<<20)
		for i := 0; i < 48; i++ {
			if !c.TryEnqueue(big) {
				t.Errorf("queue refused message %d", i)
			}
		}
	}})
	if r := s.onlyClose(t); r != (Reason{4008, "write timeout"}) {
		t.Fatalf("reason %+v", r)
	}
	if err := s.result(t, time.Second); err == nil {
		t.Fatal("Run returned nil after the connection was dropped")
	}
	t.Logf("closed after %v", time.Since(start))
}

func TestPing(t *testing.T) {
	t.Run("answered", func(t *testing.T) {
		var pings atomic.Int32
		cfg := testConfig()
		cfg.PingInterval = 20 * time.Millisecond
		s := open(t, setup{cfg: cfg, dial: &websocket.DialOptions{
			OnPingReceived: func(context.Context, []byte) bool { pings.Add(1); return true },
		}})
		s.peer.CloseRead(context.Background()) // reads, so pongs are sent
		eventually(t, "five pings", func() bool { return pings.Load() >= 5 })
		if r, ok := s.c.Reason(); ok {
			t.Fatalf("closed while pongs came back: %+v", r)
		}
	})
	t.Run("unanswered", func(t *testing.T) {
		cfg := testConfig()
		cfg.PingInterval = 20 * time.Millisecond
		cfg.WriteTimeout = 200 * time.Millisecond
		s := open(t, setup{cfg: cfg}) // the peer never reads, so it never answers
		if r := s.onlyClose(t); r != (Reason{4008, "ping timeout"}) {
			t.Fatalf("reason %+v", r)
		}
	})
	t.Run("off", func(t *testing.T) {
		var pings atomic.Int32
		s := open(t, setup{cfg: testConfig(), dial: &websocket.DialOptions{
			OnPingReceived: func(context.Context, []byte) bool { pings.Add(1); return true },
		}})
		write(t, s.peer, "x")
		readN(t, s.peer, 1)
		if pings.Load() != 0 || s.c.pingTimer != nil {
			t.Fatalf("pinged %d times with PingInterval 0", pings.Load())
		}
	})
}

// TestRunContext ends Run's context: the peer is told 1001 going away.
func TestRunContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := open(t, setup{cfg: testConfig(), ctx: ctx})
	write(t, s.peer, "before")
	readN(t, s.peer, 1)
	cancel()
	if code := peerClose(t, s.peer); code != websocket.StatusGoingAway {
		t.Fatalf("peer saw %d, want 1001", code)
	}
	if r := s.onlyClose(t); r != (Reason{websocket.StatusGoingAway, "going away"}) {
		t.Fatalf("reason %+v", r)
	}
}

// TestCloseReasonOnce races many closes (direct, slow consumer, context) against each
// other: one reason wins, the peer sees it, and it is counted once.
func TestCloseReasonOnce(t *testing.T) {
	for round := 0; round < 5; round++ {
		ctx, cancel := context.WithCancel(context.Background())
		cfg := testConfig()
		cfg.MaxQueueMessages = 4
		s := open(t, setup{cfg: cfg, ctx: ctx})
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(2)
			go func() { defer wg.Done(); s.c.Close(websocket.StatusCode(4100+i), fmt.Sprint("closer ", i)) }()
			go func() {
				defer wg.Done()
				for j := 0; j < 8; j++ {
					s.c.Enqueue([]byte("fill"))
				}
			}()
		}
		cancel()
		wg.Wait()
		code := peerClose(t, s.peer)
		r := s.onlyClose(t)
		if r.Code != code || (code != 4008 && code != websocket.StatusGoingAway && (code < 4100 || code > 4115)) {
			t.Fatalf("round %d: counted %+v, peer saw %d", round, r, code)
		}
	}
}

// TestEndWithoutRun accounts for connections whose handshake failed.
func TestEndWithoutRun(t *testing.T) {
	tests := []struct {
		name     string
		before   func(c *Conn)
		want     Reason
		peerSees websocket.StatusCode
	}{
		{"closed by the handshake", func(c *Conn) { c.Close(4001, "bad token") }, Reason{4001, "bad token"}, 4001},
		{"not closed", func(c *Conn) {}, Reason{websocket.StatusAbnormalClosure, ""}, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, setup{cfg: testConfig(), noRun: true, before: func(c *Conn) {
				c.TryEnqueue([]byte("never written"))
				tc.before(c)
			}})
			if code := peerClose(t, s.peer); code != tc.peerSees {
				t.Fatalf("peer saw %d, want %d", code, tc.peerSees)
			}
			if r := s.onlyClose(t); r != tc.want {
				t.Fatalf("reason %+v, want %+v", r, tc.want)
			}
			s.c.Wake() // no writer starts for a connection that never ran
			if s.c.writing.Load() {
				t.Fatal("a writer started after End")
			}
			if err := s.c.Run(context.Background()); err == nil {
				t.Fatal("Run after End served the connection")
			}
			if got := s.closes.list(); len(got) != 1 {
				t.Fatalf("closes counted %v after Run", got)
			}
		})
	}
}

// TestConcurrentEnqueue runs producers and wakers at once (run it with -race): every
// message arrives once, in each producer's order, and the writer goroutine exits
// when the queue is empty and comes back on demand.
func TestConcurrentEnqueue(t *testing.T) {
	const producers, each = 8, 200
	cfg := testConfig()
	cfg.MaxQueueMessages = producers * each // the writer may fall behind; the queue holds it all
	s := open(t, setup{cfg: cfg})
	var wg sync.WaitGroup
	for p := 0; p < producers; p++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if !s.c.Enqueue([]byte(fmt.Sprintf("%d:%d", p, i))) {
					t.Errorf("producer %d: message %d refused", p, i)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				s.c.Wake()
			}
		}()
	}
	next := make([]int, producers)
	for _, m := range readN(t, s.peer, producers*each) {
		var p, i int
		if _, err := fmt.Sscanf(m, "%d:%d", &p, &i); err != nil || p < 0 || p >= producers || i != next[p] {
			t.Fatalf("message %q: want %d from producer %d", m, next[p], p)
		}
		next[p]++
	}
	wg.Wait()
	eventually(t, "the writer to exit", func() bool { return !s.c.writing.Load() })
	s.c.Enqueue([]byte("again"))
	if got := readN(t, s.peer, 1); got[0] != "again" {
		t.Fatalf("after idle: %q", got)
	}
}

// store is a Refiller: it holds n messages and queues what fits whenever asked.
type store struct {
	c       *Conn
	mu      sync.Mutex
	next, n int // Guarded by mu.
	refills int // Guarded by mu.
}

func (s *store) bind(c *Conn)                                                 { s.c = c }
func (s *store) Receive(context.Context, websocket.MessageType, []byte) error { return nil }

func (s *store) RefillPending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next < s.n
}

func (s *store) Refill(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refills++
	for s.next < s.n && s.c.TryEnqueue([]byte(fmt.Sprint(s.next))) {
		s.next++
	}
	return nil
}

// TestRefill reads 1,000 messages through a queue of 10: the writer asks the
// Refiller for more each time it has written what was queued.
func TestRefill(t *testing.T) {
	cfg := testConfig()
	cfg.MaxQueueMessages = 10
	st := &store{n: 1000}
	s := open(t, setup{cfg: cfg, handler: st})
	for i, m := range readN(t, s.peer, 1000) {
		if m != fmt.Sprint(i) {
			t.Fatalf("message %d = %q", i, m)
		}
	}
	eventually(t, "the writer to exit", func() bool { return !s.c.writing.Load() })
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.refills < 100 {
		t.Fatalf("%d refills for 1000 messages through a queue of 10", st.refills)
	}
}

// blocking starts every message on Go and holds it until released.
type blocking struct {
	c                      *Conn
	release                chan struct{}
	running, peak, started atomic.Int32
	ctxAlive               atomic.Bool
}

func (b *blocking) bind(c *Conn) { b.c = c }

func (b *blocking) Receive(_ context.Context, _ websocket.MessageType, msg []byte) error {
	if string(msg) == "bad" {
		b.c.Close(4000, "refused")
		return errRefused
	}
	return b.c.Go(func(ctx context.Context) {
		n := b.running.Add(1)
		b.started.Add(1)
		for p := b.peak.Load(); n > p && !b.peak.CompareAndSwap(p, n); p = b.peak.Load() {
		}
		<-b.release
		b.ctxAlive.Store(ctx.Err() == nil)
		b.running.Add(-1)
		b.c.Enqueue(msg)
	})
}

func TestGo(t *testing.T) {
	t.Run("bounded", func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxInflight = 2
		b := &blocking{release: make(chan struct{})}
		s := open(t, setup{cfg: cfg, handler: b})
		for i := 0; i < 5; i++ {
			write(t, s.peer, fmt.Sprint(i))
		}
		eventually(t, "two running", func() bool { return b.running.Load() == 2 })
		close(b.release)
		got := readN(t, s.peer, 5)
		if b.peak.Load() != 2 || b.started.Load() != 5 {
			t.Fatalf("peak %d of MaxInflight 2, started %d, answers %q", b.peak.Load(), b.started.Load(), got)
		}
	})
	t.Run("Run waits", func(t *testing.T) {
		b := &blocking{release: make(chan struct{})}
		s := open(t, setup{cfg: testConfig(), handler: b})
		write(t, s.peer, "slow")
		eventually(t, "one running", func() bool { return b.running.Load() == 1 })
		write(t, s.peer, "bad") // the reader ends; the request still runs
		select {
		case err := <-s.done:
			t.Fatalf("Run returned %v with a function still running", err)
		case <-time.After(100 * time.Millisecond):
		}
		close(b.release)
		if err := s.result(t, 10*time.Second); !errors.Is(err, errRefused) {
			t.Fatalf("Run returned %v, want the handler's error", err)
		}
		if !b.ctxAlive.Load() {
			t.Fatal("the context ended before the function did")
		}
	})
}

// TestHostilePeers breaks the protocol in several ways: each ends Run with one
// counted reason and nothing left running.
func TestHostilePeers(t *testing.T) {
	t.Run("message over the read limit", func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxMessageBytes = 1024
		s := open(t, setup{cfg: cfg})
		write(t, s.peer, strings.Repeat("x", 4096))
		if code := peerClose(t, s.peer); code != websocket.StatusMessageTooBig {
			t.Fatalf("peer saw %d, want 1009", code)
		}
		// coder/websocket sent the close itself; its Read error does not carry the code.
		t.Logf("counted %+v", s.onlyClose(t))
	})
	t.Run("refused by the handler", func(t *testing.T) {
		s := open(t, setup{cfg: testConfig(), handler: &echo{fail: "bad"}})
		write(t, s.peer, "bad")
		if code := peerClose(t, s.peer); code != 4000 {
			t.Fatalf("peer saw %d", code)
		}
		if r := s.onlyClose(t); r != (Reason{4000, "refused"}) {
			t.Fatalf("reason %+v", r)
		}
		if err := s.result(t, time.Second); !errors.Is(err, errRefused) {
			t.Fatalf("Run returned %v", err)
		}
	})
	for _, tc := range []struct {
		name  string
		frame []byte
		close []byte // the close frame's first bytes; nil: dropped without one
	}{
		{"unmasked frame", []byte{0x82, 0x01, 'x'}, nil},
		{"reserved opcode", []byte{0x83, 0x80, 1, 2, 3, 4}, []byte{0x88, 0x03, 0xea}}, // 1002 protocol error
		{"fragmented control frame", []byte{0x09, 0x80, 1, 2, 3, 4}, []byte{0x88, 0x03, 0xea}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := serve(t, setup{cfg: testConfig()})
			nc := rawUpgrade(t, s.url)
			s.accepted(t)
			nc.Write(tc.frame)
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			b := make([]byte, 4)
			_, err := io.ReadFull(nc, b)
			switch {
			case tc.close == nil && err == nil:
				t.Fatalf("got % x, want the connection dropped", b)
			case tc.close != nil && (err != nil || b[0] != tc.close[0] || b[2] != tc.close[1] || b[3] != tc.close[2]):
				t.Fatalf("got % x %v, want a close frame % x", b, err, tc.close)
			}
			t.Logf("counted %+v", s.onlyClose(t))
		})
	}
	t.Run("peer vanishes", func(t *testing.T) {
		s := serve(t, setup{cfg: testConfig()})
		nc := rawUpgrade(t, s.url)
		s.accepted(t)
		nc.Close()
		if r := s.onlyClose(t); r != (Reason{websocket.StatusAbnormalClosure, ""}) {
			t.Fatalf("reason %+v", r)
		}
	})
	t.Run("floods and never reads", func(t *testing.T) {
		cfg := testConfig()
		cfg.MaxQueueMessages, cfg.MaxQueueBytes = 64, 64<<10
		cfg.WriteTimeout = 500 * time.Millisecond
		s := open(t, setup{cfg: cfg})
		msg := make([]byte, 1024)
		for i := 0; i < 20000; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := s.peer.Write(ctx, websocket.MessageBinary, msg)
			cancel()
			if err != nil {
				break
			}
		}
		if r := s.onlyClose(t); r.Code != 4008 {
			t.Fatalf("reason %+v, want a slow consumer", r)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(c *Config)
		want string // "" for valid
	}{
		{"valid", func(*Config) {}, ""},
		{"no queue", func(c *Config) { c.MaxQueueMessages = 0 }, "send queue bounds"},
		{"no write timeout", func(c *Config) { c.WriteTimeout = 0 }, "write timeout"},
		{"negative ping", func(c *Config) { c.PingInterval = -1 }, "must not be negative"},
		{"no slow consumer code", func(c *Config) { c.SlowConsumer = 0 }, "slow consumer close code"},
		{"negative read limit", func(c *Config) { c.MaxMessageBytes = -1 }, "max message bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig()
			tc.edit(&c)
			err := c.Validate()
			if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
}
