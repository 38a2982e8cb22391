package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/protocol"
)

func testConfig(s *fakeServer, h Handler) Config {
	return Config{
		URL: s.url(), Token: s.token, Handler: h,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		HandshakeTimeout: 5 * time.Second,
	}
}

func dial(t *testing.T, cfg Config) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestAuthOK(t *testing.T) {
	s := newFakeServer(t, func(s *fakeServer) { s.origins = []string{"app.example"} })
	s.pushNotices(3)
	var connected atomic.Int32
	cfg := testConfig(s, nil)
	cfg.OnConnect = func(SessionInfo) { connected.Add(1) }
	var origin string
	s.checkReq = func(r *http.Request) (int, bool) { origin = r.Header.Get("Origin"); return 0, true }
	cfg.Origin = "https://app.example"
	c := dial(t, cfg)
	info := c.Session()
	want := SessionInfo{ClientID: "mimi://test/d/alice/c1", UserID: "mimi://test/u/alice", Pending: 3, MaxFrameSize: 1 << 20}
	if info != want {
		t.Errorf("Session() = %+v, want %+v", info, want)
	}
	if origin != cfg.Origin {
		t.Errorf("Origin header %q, want %q", origin, cfg.Origin)
	}
	if !c.Connected() {
		t.Error("Connected() = false after Dial")
	}
	if _, err := c.Ping(ctxT(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	st, err := c.MailboxStatus(ctxT(t))
	if err != nil || st != (protocol.MailboxStatus{Pending: 3, FirstSeq: 1, LastSeq: 3}) {
		t.Errorf("MailboxStatus = %+v, %v", st, err)
	}
	waitFor(t, "OnConnect", func() bool { return connected.Load() == 1 })
	// Without a handler nothing is consumed or acknowledged.
	if _, acked, frames := s.state(); acked != 0 || frames != 0 {
		t.Errorf("acked %d in %d frames without a handler", acked, frames)
	}
}

func TestAuthRefused(t *testing.T) {
	for _, tc := range []struct {
		name      string
		closeOnly bool
		token     string
		wantFrame bool
	}{
		{"error frame then 4001", false, "mdt_wrong", true},
		{"bare 4001 close", true, "mdt_wrong", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeServer(t, func(s *fakeServer) { s.closeOnly = tc.closeOnly })
			cfg := testConfig(s, nil)
			cfg.Token = tc.token
			_, err := Dial(ctxT(t), cfg)
			if !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("Dial error %v, want ErrAuthFailed", err)
			}
			var we *protocol.Error
			if got := errors.As(err, &we); got != tc.wantFrame {
				t.Errorf("error carries *protocol.Error = %v, want %v (%v)", got, tc.wantFrame, err)
			}
			time.Sleep(50 * time.Millisecond)
			if conns, _, _ := s.state(); conns != 1 {
				t.Errorf("server saw %d connections, want 1 (no retry loop)", conns)
			}
		})
	}
}

func TestPipelinedRequestsOutOfOrder(t *testing.T) {
	const n = 8
	var mu sync.Mutex
	var held []*protocol.Request
	s := newFakeServer(t, func(s *fakeServer) {
		s.onRequest = func(fc *fakeConn, r *protocol.Request) bool {
			if r.Method != 0x7001 {
				return false
			}
			mu.Lock()
			defer mu.Unlock()
			held = append(held, r)
			if len(held) < n {
				return true
			}
			for i := len(held) - 1; i >= 0; i-- { // answer newest first
				q := held[i]
				if bytes.Equal(q.Body, []byte("fail")) {
					fc.send(&protocol.Error{RequestID: q.RequestID, Code: protocol.CodeInvalid, Message: "no"})
				} else {
					fc.send(&protocol.Response{RequestID: q.RequestID, Body: append([]byte("re:"), q.Body...)})
				}
			}
			return true
		}
	})
	c := dial(t, testConfig(s, nil))
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			body := []byte(fmt.Sprint(i))
			if i == 3 {
				body = []byte("fail")
			}
			got, err := c.Do(ctxT(t), 0x7001, body)
			switch {
			case i == 3:
				var we *protocol.Error
				if !errors.As(err, &we) || we.Code != protocol.CodeInvalid {
					errs[i] = fmt.Errorf("request %d: got %q, %v; want a wire error invalid", i, got, err)
				}
			case err != nil || string(got) != "re:"+string(body):
				errs[i] = fmt.Errorf("request %d: got %q, %v", i, got, err)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	ids := map[uint32]bool{}
	for _, r := range held {
		if ids[r.RequestID] || r.RequestID == 0 {
			t.Errorf("request id %d reused or zero", r.RequestID)
		}
		ids[r.RequestID] = true
	}
}

func TestDeliveriesInOrderDuplicatesDropped(t *testing.T) {
	s := newFakeServer(t, func(s *fakeServer) { s.forgetAcks = true })
	s.pushNotices(10)
	rec := &recorder{}
	cfg := testConfig(s, rec.handle)
	c := dial(t, cfg)
	waitFor(t, "first 10 deliveries", func() bool { return rec.count() == 10 })
	s.conn(1).close(protocol.CloseSlowConsumer, "slow")
	waitFor(t, "reconnect", func() bool { n, _, _ := s.state(); return n == 2 && c.Connected() })
	s.pushNotices(10) // the server replays 1..10 (forgetAcks), then 11..20
	waitFor(t, "20 deliveries acked", func() bool { _, acked, _ := s.state(); return acked == 20 })
	checkSequence(t, rec.got(), 20)
	s.checkAcks(t)
	if st := c.Stats(); st.Duplicates != 10 || st.Delivered != 20 {
		t.Errorf("stats %+v: want 10 duplicates, 20 delivered", st)
	}
	if c.LastSeq() != 20 {
		t.Errorf("LastSeq() = %d, want 20", c.LastSeq())
	}
}

func TestLastSeqSkipsHandled(t *testing.T) {
	s := newFakeServer(t)
	s.pushNotices(6)
	rec := &recorder{}
	cfg := testConfig(s, rec.handle)
	cfg.LastSeq = 4
	c := dial(t, cfg)
	waitFor(t, "ack 6", func() bool { _, acked, _ := s.state(); return acked == 6 })
	if got := rec.got(); len(got) != 2 || got[0] != 5 || got[1] != 6 {
		t.Errorf("handled %v, want [5 6]", got)
	}
	if st := c.Stats(); st.Duplicates != 4 {
		t.Errorf("duplicates %d, want 4", st.Duplicates)
	}
}

func TestAcksCoalesced(t *testing.T) {
	s := newFakeServer(t)
	const n = 500
	s.pushNotices(n) // stored before connecting: a replay burst
	rec := &recorder{}
	c := dial(t, testConfig(s, rec.handle))
	waitFor(t, "stored burst acked", func() bool { _, acked, _ := s.state(); return acked == n })
	s.pushNotices(n) // a live burst
	waitFor(t, "live burst acked", func() bool { _, acked, _ := s.state(); return acked == 2*n })
	checkSequence(t, rec.got(), 2*n)
	_, _, frames := s.state()
	if frames > 2*n/10 {
		t.Errorf("%d ack frames for %d deliveries, want at most %d", frames, 2*n, 2*n/10)
	}
	if got, err := c.Flush(ctxT(t)); got != 2*n || err != nil || c.AckedSeq() != 2*n {
		t.Errorf("Flush() = %d, %v; AckedSeq %d; want %d", got, err, c.AckedSeq(), 2*n)
	}
	if st := c.Stats(); st.AcksSent != uint64(frames) {
		t.Errorf("AcksSent %d, server saw %d", st.AcksSent, frames)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := 1; i < len(s.acks); i++ {
		if s.acks[i] <= s.acks[i-1] {
			t.Errorf("acks not increasing: %v", s.acks)
			break
		}
	}
}

func TestBatchedMessages(t *testing.T) {
	s := newFakeServer(t, func(s *fakeServer) {
		s.batch = 7
		s.onRequest = func(fc *fakeConn, r *protocol.Request) bool {
			if r.Method != 0x7003 {
				return false
			}
			var msg []byte
			msg = protocol.Append(msg, &protocol.Push{Masked: []byte{1, 2}, Counter: 9, Message: []byte("mls")})
			msg = protocol.Append(msg, &protocol.Response{RequestID: r.RequestID, Body: []byte("batched")})
			msg = protocol.Append(msg, &protocol.PartitionEvent{Masked: []byte{1, 2}, Event: protocol.EventTerminated})
			fc.sendRaw(websocket.MessageBinary, msg)
			return true
		}
	})
	s.pushNotices(50)
	rec := &recorder{}
	var pushes []protocol.Frame
	var mu sync.Mutex
	cfg := testConfig(s, rec.handle)
	cfg.OnPush = func(f protocol.Frame) { mu.Lock(); pushes = append(pushes, f); mu.Unlock() }
	c := dial(t, cfg)
	got, err := c.Do(ctxT(t), 0x7003, nil)
	if err != nil || string(got) != "batched" {
		t.Fatalf("Do = %q, %v", got, err)
	}
	s.pushNotices(50)
	waitFor(t, "100 acked", func() bool { _, acked, _ := s.state(); return acked == 100 })
	checkSequence(t, rec.got(), 100)
	s.checkAcks(t)
	mu.Lock()
	defer mu.Unlock()
	if len(pushes) != 2 {
		t.Fatalf("OnPush got %d frames, want 2", len(pushes))
	}
	if p, ok := pushes[0].(*protocol.Push); !ok || p.Counter != 9 || string(p.Message) != "mls" {
		t.Errorf("first frame %+v", pushes[0])
	}
	if e, ok := pushes[1].(*protocol.PartitionEvent); !ok || e.Event != protocol.EventTerminated {
		t.Errorf("second frame %+v", pushes[1])
	}
}

func TestManualAck(t *testing.T) {
	s := newFakeServer(t)
	s.pushNotices(5)
	rec := &recorder{}
	cfg := testConfig(s, rec.handle)
	cfg.ManualAck = true
	cfg.AckDelay = -1
	c := dial(t, cfg)
	waitFor(t, "5 deliveries", func() bool { return rec.count() == 5 })
	time.Sleep(30 * time.Millisecond)
	if _, acked, frames := s.state(); frames != 0 {
		t.Fatalf("manual mode sent %d ack frames (acked %d) before Ack", frames, acked)
	}
	if err := c.Ack(6); !errors.Is(err, ErrAckAhead) {
		t.Errorf("Ack(6) = %v, want ErrAckAhead", err)
	}
	if err := c.Ack(3); err != nil {
		t.Fatalf("Ack(3): %v", err)
	}
	waitFor(t, "ack 3", func() bool { _, acked, _ := s.state(); return acked == 3 })
	if err := c.Ack(2); err != nil { // below the watermark: no new frame
		t.Fatalf("Ack(2): %v", err)
	}
	if err := c.Ack(5); err != nil {
		t.Fatalf("Ack(5): %v", err)
	}
	waitFor(t, "ack 5", func() bool { _, acked, _ := s.state(); return acked == 5 })
	if _, _, frames := s.state(); frames != 2 {
		t.Errorf("%d ack frames, want 2", frames)
	}
}

func TestFlush(t *testing.T) {
	s := newFakeServer(t)
	s.pushNotices(5)
	rec := &recorder{}
	cfg := testConfig(s, rec.handle)
	cfg.AckDelay = time.Hour
	c := dial(t, cfg)
	waitFor(t, "5 deliveries", func() bool { return rec.count() == 5 })
	if _, acked, frames := s.state(); frames != 0 || acked != 0 || c.AckedSeq() != 0 {
		t.Fatalf("acked %d in %d frames before Flush (AckedSeq %d)", acked, frames, c.AckedSeq())
	}
	got, err := c.Flush(ctxT(t))
	if err != nil || got != 5 {
		t.Fatalf("Flush() = %d, %v; want 5", got, err)
	}
	// The fake server, like the real one, handles an ack before the next frame.
	if _, acked, frames := s.state(); acked != 5 || frames != 1 {
		t.Errorf("after Flush: acked %d in %d frames, want 5 in 1", acked, frames)
	}
	if got, err := c.Flush(ctxT(t)); got != 5 || err != nil {
		t.Errorf("second Flush() = %d, %v", got, err)
	}
	if _, _, frames := s.state(); frames != 1 {
		t.Errorf("second Flush wrote another ack (%d frames)", frames)
	}
}

func TestAckNeverAheadOfSocket(t *testing.T) {
	// Entries handled on connection 1 but not acknowledged there are acknowledged on
	// connection 2 only once the server has redelivered them on it.
	s := newFakeServer(t, func(s *fakeServer) { s.pumpDelay = 50 * time.Millisecond })
	s.pushNotices(5)
	rec := &recorder{}
	cfg := testConfig(s, rec.handle)
	cfg.ManualAck = true
	c := dial(t, cfg)
	waitFor(t, "5 deliveries", func() bool { return rec.count() == 5 })
	s.conn(1).close(protocol.CloseSlowConsumer, "slow")
	waitFor(t, "reconnect", func() bool { n, _, _ := s.state(); return n == 2 && c.Connected() })
	if err := c.Ack(5); err != nil { // before the redelivery arrives
		t.Fatal(err)
	}
	waitFor(t, "ack 5", func() bool { _, acked, _ := s.state(); return acked == 5 })
	s.checkAcks(t)
	if st := c.Stats(); st.Duplicates != 5 || st.Delivered != 5 {
		t.Errorf("stats %+v", st)
	}
}

func TestRequestOverMaxFrameSize(t *testing.T) {
	s := newFakeServer(t, func(s *fakeServer) { s.maxFrame = 1024 })
	c := dial(t, testConfig(s, nil))
	if _, err := c.Do(ctxT(t), protocol.MethodPing, make([]byte, 2000)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Do = %v, want ErrTooLarge", err)
	}
	if _, err := c.Do(ctxT(t), protocol.MethodPing, make([]byte, 900)); err != nil {
		t.Fatalf("Do under the limit: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{"ok", Config{URL: "ws://127.0.0.1:1/v1/socket", Token: "mdt_x"}, nil},
		{"https ok", Config{URL: "https://example.org/v1/socket", Token: "mdt_x"}, nil},
		{"empty", Config{}, []string{"URL is empty", "Token is empty"}},
		{"bad scheme and negatives", Config{URL: "ftp://h/x", Token: "t", SendQueueLen: -1, WriteTimeout: -1},
			[]string{"scheme", "SendQueueLen", "WriteTimeout"}},
		{"no host", Config{URL: "ws:///x", Token: "t"}, []string{"no host"}},
		{"long token", Config{URL: "ws://h/x", Token: strings.Repeat("t", 1025)}, []string{"Token is 1025 bytes"}},
		{"backoff order", Config{URL: "ws://h/x", Token: "t", MinBackoff: time.Minute, MaxBackoff: time.Second}, []string{"MinBackoff"}},
		{"tiny read limit", Config{URL: "ws://h/x", Token: "t", ReadLimit: 10}, []string{"ReadLimit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want errors %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, missing %q", err, w)
				}
			}
		})
	}
}

func TestBackoffDelay(t *testing.T) {
	lo, hi := 100*time.Millisecond, 5*time.Second
	for _, tc := range []struct {
		n        int
		min, max time.Duration
	}{
		{0, 50 * time.Millisecond, 100 * time.Millisecond},
		{1, 100 * time.Millisecond, 200 * time.Millisecond},
		{3, 400 * time.Millisecond, 800 * time.Millisecond},
		{10, 2500 * time.Millisecond, 5 * time.Second},
		{63, 2500 * time.Millisecond, 5 * time.Second},
		{1000, 2500 * time.Millisecond, 5 * time.Second},
	} {
		t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
			for range 100 {
				if d := backoffDelay(tc.n, lo, hi); d < tc.min || d > tc.max {
					t.Fatalf("backoffDelay(%d) = %v, want in [%v, %v]", tc.n, d, tc.min, tc.max)
				}
			}
		})
	}
}

func TestDeliveryNotice(t *testing.T) {
	p, _ := protocol.Notice{Text: "hello"}.MarshalBinary()
	if n, err := (&Delivery{Kind: protocol.KindNotice, Payload: p}).Notice(); err != nil || n.Text != "hello" {
		t.Errorf("Notice() = %+v, %v", n, err)
	}
	if _, err := (&Delivery{Kind: protocol.KindWelcome, Payload: p}).Notice(); !errors.Is(err, ErrProtocol) {
		t.Errorf("Notice() on a welcome = %v, want ErrProtocol", err)
	}
	if _, err := (&Delivery{Kind: protocol.KindNotice, Payload: []byte{5}}).Notice(); err == nil {
		t.Error("Notice() on a truncated payload succeeded")
	}
}

func BenchmarkDoPing(b *testing.B) {
	s := newFakeServer(b)
	c, err := Dial(context.Background(), testConfig(s, nil))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Do(ctx, protocol.MethodPing, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDeliveries(b *testing.B) {
	s := newFakeServer(b)
	var handled atomic.Int64
	c, err := Dial(context.Background(), testConfig(s, func(context.Context, *Delivery) error {
		handled.Add(1)
		return nil
	}))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close(context.Background())
	b.ReportAllocs()
	b.ResetTimer()
	s.pushNotices(b.N)
	waitFor(b, "deliveries", func() bool { return handled.Load() == int64(b.N) })
}
