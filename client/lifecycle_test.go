package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/protocol"
)

func TestAuthTimeoutIsNotTerminal(t *testing.T) {
	s := newFakeServer(t, func(s *fakeServer) {
		s.lateAuth = func(n int) bool { return n == 1 || n == 3 }
		s.onConnect = func(fc *fakeConn) {
			if fc.n == 2 {
				fc.close(protocol.CloseSlowConsumer, "slow")
			}
		}
	})
	cfg := testConfig(s, nil)
	_, err := Dial(ctxT(t), cfg)
	var de *DisconnectError
	if err == nil || errors.Is(err, ErrAuthFailed) || !errors.As(err, &de) || de.Code != protocol.CloseAuthTimeout {
		t.Fatalf("Dial = %v, want a 4002 disconnect that is not ErrAuthFailed", err)
	}
	c := dial(t, cfg) // connection 2, closed 4008; 3 refused 4002; 4 accepted
	waitFor(t, "connection 4", func() bool { n, _, _ := s.state(); return n == 4 && c.Connected() })
	if _, err := c.Ping(ctxT(t)); err != nil || c.Err() != nil {
		t.Fatalf("Ping = %v, Err = %v", err, c.Err())
	}
}

func TestTerminalCloseStopsReconnecting(t *testing.T) {
	for _, tc := range []struct {
		name     string
		refuse   func(n int) bool
		close    int
		want     error
		wantConn int
	}{
		{"revoked while connected", nil, protocol.CloseRevoked, ErrRevoked, 1},
		{"refused on reconnect", func(n int) bool { return n > 1 }, protocol.CloseSlowConsumer, ErrAuthFailed, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeServer(t, func(s *fakeServer) {
				s.refuse = tc.refuse
				s.onConnect = func(fc *fakeConn) {
					if fc.n == 1 {
						fc.close(tc.close, "bye")
					}
				}
			})
			var disconnects []error
			var mu sync.Mutex
			cfg := testConfig(s, nil)
			cfg.OnDisconnect = func(err error) { mu.Lock(); disconnects = append(disconnects, err); mu.Unlock() }
			c := dial(t, cfg)
			select {
			case <-c.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("client did not stop")
			}
			if !errors.Is(c.Err(), tc.want) {
				t.Fatalf("Err() = %v, want %v", c.Err(), tc.want)
			}
			if _, err := c.Do(ctxT(t), protocol.MethodPing, nil); !errors.Is(err, ErrClosed) || !errors.Is(err, tc.want) {
				t.Errorf("Do after stop: %v, want ErrClosed wrapping %v", err, tc.want)
			}
			time.Sleep(50 * time.Millisecond)
			if conns, _, _ := s.state(); conns != tc.wantConn {
				t.Errorf("server saw %d connections, want %d", conns, tc.wantConn)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(disconnects) == 0 {
				t.Fatal("OnDisconnect not called")
			}
			var de *DisconnectError
			if errors.As(disconnects[0], &de) && de.Code != tc.close {
				t.Errorf("first disconnect code %d, want %d", de.Code, tc.close)
			}
		})
	}
}

func TestReconnect(t *testing.T) {
	for _, tc := range []struct {
		name string
		code int
	}{
		{"slow consumer", protocol.CloseSlowConsumer},
		{"going away", protocol.CloseGoingAway},
		{"normal close by server", int(websocket.StatusNormalClosure)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeServer(t)
			s.pushNotices(3)
			rec := &recorder{}
			causes := make(chan error, 4)
			cfg := testConfig(s, rec.handle)
			cfg.OnDisconnect = func(err error) { causes <- err }
			c := dial(t, cfg)
			waitFor(t, "3 acked", func() bool { _, acked, _ := s.state(); return acked == 3 })
			s.conn(1).close(tc.code, "test")
			var cause error
			select {
			case cause = <-causes:
			case <-time.After(10 * time.Second):
				t.Fatal("no disconnect")
			}
			var de *DisconnectError
			if !errors.As(cause, &de) || de.Code != tc.code || de.Reason != "test" {
				t.Fatalf("disconnect cause %v, want close %d", cause, tc.code)
			}
			// Do waits for the next connection.
			if _, err := c.Ping(ctxT(t)); err != nil {
				t.Fatalf("Ping after reconnect: %v", err)
			}
			s.pushNotices(2)
			waitFor(t, "5 acked", func() bool { _, acked, _ := s.state(); return acked == 5 })
			checkSequence(t, rec.got(), 5)
			if conns, _, _ := s.state(); conns != 2 {
				t.Errorf("%d connections, want 2", conns)
			}
			if st := c.Stats(); st.Connects != 2 || st.Disconnects != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestResyncOnDeliveryOverflow(t *testing.T) {
	for _, batch := range []int{1, 5} {
		t.Run(fmt.Sprintf("%d frames per message", batch), func(t *testing.T) {
			s := newFakeServer(t, func(s *fakeServer) { s.batch = batch })
			const n = 60
			s.pushNotices(n)
			rec := &recorder{fail: func(*Delivery) error { time.Sleep(200 * time.Microsecond); return nil }}
			cfg := testConfig(s, rec.handle)
			cfg.DeliveryQueueLen = 4
			c := dial(t, cfg)
			waitFor(t, "all acked", func() bool { _, acked, _ := s.state(); return acked == n })
			checkSequence(t, rec.got(), n)
			s.checkAcks(t)
			if st := c.Stats(); st.Resyncs == 0 {
				t.Errorf("no resync with a 4-entry queue and %d entries: %+v", n, st)
			}
		})
	}
}

func TestHandlerErrorRedelivers(t *testing.T) {
	s := newFakeServer(t)
	s.pushNotices(5)
	var failed atomic.Bool
	rec := &recorder{fail: func(d *Delivery) error {
		if d.Seq == 3 && failed.CompareAndSwap(false, true) {
			return errors.New("disk full")
		}
		return nil
	}}
	causes := make(chan error, 4)
	cfg := testConfig(s, rec.handle)
	cfg.OnDisconnect = func(err error) { causes <- err }
	dial(t, cfg)
	waitFor(t, "all acked", func() bool { _, acked, _ := s.state(); return acked == 5 })
	checkSequence(t, rec.got(), 5)
	if err := <-causes; !errors.Is(err, ErrHandler) || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("disconnect cause %v, want ErrHandler", err)
	}
	if conns, _, _ := s.state(); conns != 2 {
		t.Errorf("%d connections, want 2", conns)
	}
}

func TestContextCancellation(t *testing.T) {
	t.Run("Do", func(t *testing.T) {
		s := newFakeServer(t, func(s *fakeServer) {
			s.onRequest = func(fc *fakeConn, r *protocol.Request) bool { return r.Method == 0x7002 } // never answered
		})
		c := dial(t, testConfig(s, nil))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := c.Do(ctx, 0x7002, nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Do = %v, want DeadlineExceeded", err)
		}
		if _, err := c.Ping(ctxT(t)); err != nil {
			t.Fatalf("Ping after a canceled Do: %v", err)
		}
		c.mu.Lock()
		pending := len(c.cur.pending)
		c.mu.Unlock()
		if pending != 0 {
			t.Errorf("%d requests still pending", pending)
		}
	})
	t.Run("Dial without auth answer", func(t *testing.T) {
		s := newFakeServer(t, func(s *fakeServer) { s.silentAuth = true })
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		if _, err := Dial(ctx, testConfig(s, nil)); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Dial = %v, want DeadlineExceeded", err)
		}
	})
	t.Run("Close with a stuck handler", func(t *testing.T) {
		s := newFakeServer(t)
		s.pushNotices(1)
		entered := make(chan struct{})
		handlerErr := make(chan error, 1)
		cfg := testConfig(s, func(ctx context.Context, d *Delivery) error {
			close(entered)
			<-ctx.Done()
			handlerErr <- ctx.Err()
			return ctx.Err()
		})
		c, err := Dial(ctxT(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		<-entered
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := c.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Close = %v, want DeadlineExceeded", err)
		}
		if err := <-handlerErr; err == nil {
			t.Error("handler context not canceled")
		}
		<-c.Done()
		if c.Err() != nil {
			t.Errorf("Err() = %v after Close, want nil", c.Err())
		}
		if _, acked, _ := s.state(); acked != 0 {
			t.Errorf("failed delivery acked (%d)", acked)
		}
	})
	t.Run("Do waiting for a connection", func(t *testing.T) {
		s := newFakeServer(t, func(s *fakeServer) {
			s.onConnect = func(fc *fakeConn) { fc.close(protocol.CloseGoingAway, "restart") }
		})
		cfg := testConfig(s, nil)
		cfg.MinBackoff, cfg.MaxBackoff = time.Second, time.Second
		c := dial(t, cfg)
		waitFor(t, "disconnect", func() bool { return !c.Connected() })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		if _, err := c.Do(ctx, protocol.MethodPing, nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Do while reconnecting = %v, want DeadlineExceeded", err)
		}
	})
}

func TestCloseFlushesAcks(t *testing.T) {
	s := newFakeServer(t)
	s.pushNotices(7)
	rec := &recorder{}
	cfg := testConfig(s, rec.handle)
	cfg.AckDelay = time.Hour // only Close can send the ack
	c, err := Dial(ctxT(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "7 deliveries", func() bool { return rec.count() == 7 })
	if err := c.Close(ctxT(t)); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, acked, frames := s.state(); acked != 7 || frames != 1 {
		t.Errorf("acked %d in %d frames, want 7 in 1", acked, frames)
	}
	waitFor(t, "server saw the close", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.closes) == 1 })
	if s.closes[0] != int(websocket.StatusNormalClosure) {
		t.Errorf("close code %d, want 1000", s.closes[0])
	}
	if _, err := c.Do(ctxT(t), protocol.MethodPing, nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Do after Close = %v, want ErrClosed", err)
	}
	if err := c.Close(ctxT(t)); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestOversizedFrameFromServer(t *testing.T) {
	s := newFakeServer(t)
	rec := &recorder{}
	cfg := testConfig(s, rec.handle)
	cfg.ReadLimit = 4096
	c := dial(t, cfg)
	s.push(bytes.Repeat([]byte("x"), 8000))
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("client did not stop")
	}
	if !errors.Is(c.Err(), ErrFrameTooBig) {
		t.Fatalf("Err() = %v, want ErrFrameTooBig", c.Err())
	}
	time.Sleep(30 * time.Millisecond)
	if conns, _, _ := s.state(); conns != 1 || rec.count() != 0 {
		t.Errorf("%d connections, %d deliveries; want 1, 0", conns, rec.count())
	}
}

func TestProtocolViolationReconnects(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  websocket.MessageType
		msg  []byte
	}{
		{"text message", websocket.MessageText, []byte("hello")},
		{"unknown frame type", websocket.MessageBinary, []byte{0x42}},
		{"truncated deliver", websocket.MessageBinary, []byte{byte(protocol.TypeDeliver), 0, 0}},
		{"empty message", websocket.MessageBinary, []byte{}},
		{"garbage after a frame", websocket.MessageBinary, append(protocol.Encode(&protocol.Response{RequestID: 77}), 0xee)},
		{"request from server", websocket.MessageBinary, protocol.Encode(&protocol.Request{RequestID: 1, Method: protocol.MethodPing})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeServer(t, func(s *fakeServer) {
				s.onConnect = func(fc *fakeConn) {
					if fc.n == 1 {
						fc.sendRaw(tc.typ, tc.msg)
					}
				}
			})
			causes := make(chan error, 2)
			cfg := testConfig(s, nil)
			cfg.OnDisconnect = func(err error) { causes <- err }
			c := dial(t, cfg)
			if err := <-causes; !errors.Is(err, ErrProtocol) {
				t.Errorf("cause %v, want ErrProtocol", err)
			}
			if _, err := c.Ping(ctxT(t)); err != nil {
				t.Fatalf("Ping after reconnect: %v", err)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.closes) == 0 || s.closes[0] != int(websocket.StatusProtocolError) {
				t.Errorf("client close codes %v, want 1002 first", s.closes)
			}
		})
	}
}

func TestHandshakeRejected(t *testing.T) {
	s := newFakeServer(t, func(s *fakeServer) {
		s.checkReq = func(*http.Request) (int, bool) { return http.StatusForbidden, false }
	})
	_, err := Dial(ctxT(t), testConfig(s, nil))
	if !errors.Is(err, ErrRejected) || !strings.Contains(err.Error(), "403") {
		t.Fatalf("Dial = %v, want ErrRejected with 403", err)
	}
}

func TestGiveUpAfterMaxAttempts(t *testing.T) {
	s := newFakeServer(t, func(s *fakeServer) {
		s.onConnect = func(fc *fakeConn) { fc.close(protocol.CloseGoingAway, "bye") }
		s.checkReq = func(*http.Request) (int, bool) {
			s.mu.Lock()
			defer s.mu.Unlock()
			return http.StatusServiceUnavailable, len(s.conns) == 0
		}
	})
	cfg := testConfig(s, nil)
	cfg.MaxReconnectAttempts = 3
	c := dial(t, cfg)
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("client did not give up")
	}
	if !errors.Is(c.Err(), ErrGaveUp) {
		t.Errorf("Err() = %v, want ErrGaveUp", c.Err())
	}
}

func TestNoGoroutineLeak(t *testing.T) {
	s := newFakeServer(t)
	s.pushNotices(20)
	before := runtime.NumGoroutine()
	rec := &recorder{}
	c, err := Dial(ctxT(t), testConfig(s, rec.handle))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "deliveries", func() bool { return rec.count() == 20 })
	if _, err := c.Ping(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	s.conn(1).close(protocol.CloseSlowConsumer, "again")
	waitFor(t, "reconnect", func() bool { n, _, _ := s.state(); return n == 2 && c.Connected() })
	if err := c.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "goroutines to exit", func() bool { return runtime.NumGoroutine() <= before })
}
