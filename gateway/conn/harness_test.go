package conn

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// testConfig is a valid Config with small, fast settings.
func testConfig() Config {
	return Config{
		MaxMessageBytes:  1 << 20,
		MaxQueueMessages: 1024,
		MaxQueueBytes:    8 << 20,
		WriteTimeout:     2 * time.Second,
		MaxInflight:      4,
		SlowConsumer:     4008,
	}
}

// closeLog records every call of Config.Closed.
type closeLog struct {
	mu  sync.Mutex
	got []Reason
}

func (l *closeLog) add(r Reason) {
	l.mu.Lock()
	l.got = append(l.got, r)
	l.mu.Unlock()
}

func (l *closeLog) list() []Reason {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Reason(nil), l.got...)
}

// echo is a Handler that queues every message back and records it.
type echo struct {
	c    *Conn
	got  chan []byte
	fail string // a message that makes Receive close with 4000 and fail
}

var errRefused = errors.New("refused")

func (e *echo) Receive(_ context.Context, typ websocket.MessageType, msg []byte) error {
	if e.fail != "" && string(msg) == e.fail {
		e.c.Close(4000, "refused")
		return errRefused
	}
	if e.got != nil {
		e.got <- msg
	}
	e.c.Enqueue(msg)
	return nil
}

// testHandler is a Handler that learns its Conn before Run.
type testHandler interface {
	Handler
	bind(c *Conn)
}

func (e *echo) bind(c *Conn) { e.c = c }

// setup says how the server side of a test connection is built.
type setup struct {
	cfg     Config
	handler testHandler     // nil: an echo
	before  func(c *Conn)   // runs before Run, on the accepting goroutine
	ctx     context.Context // Run's context; nil: Background
	noRun   bool            // call End(nil) instead of Run
	dial    *websocket.DialOptions
	plain   bool // New on websocket.Accept's connection (as federation does), not NewSocket
}

// side is one server connection under test and its peer.
type side struct {
	c      *Conn
	peer   *websocket.Conn // set by open
	ready  chan *Conn      // the accepted Conn, before it runs
	done   chan error      // Run's result
	closes *closeLog
	url    string
}

// serve starts a loopback server that accepts connections as st says.
func serve(t *testing.T, st setup) *side {
	t.Helper()
	s := &side{ready: make(chan *Conn, 1), done: make(chan error, 1), closes: &closeLog{}}
	cfg := st.cfg
	cfg.Closed = s.closes.add
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := st.handler
		if h == nil {
			h = &echo{}
		}
		var c *Conn
		if st.plain {
			ws, err := websocket.Accept(w, r, nil)
			if err != nil {
				return
			}
			c = New(ws, &cfg, h, nil)
		} else {
			sock, err := Accept(w, r, nil)
			if err != nil {
				return
			}
			c = NewSocket(sock, &cfg, h, nil)
		}
		h.bind(c)
		if st.before != nil {
			st.before(c)
		}
		s.ready <- c
		if st.noRun {
			c.End(nil)
			s.done <- nil
			return
		}
		ctx := st.ctx
		if ctx == nil {
			ctx = context.Background()
		}
		s.done <- c.Run(ctx)
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL
	return s
}

// open serves one connection and dials it.
func open(t *testing.T, st setup) *side {
	t.Helper()
	s := serve(t, st)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	peer, _, err := websocket.Dial(ctx, s.url, st.dial)
	if err != nil {
		t.Fatal(err)
	}
	peer.SetReadLimit(64 << 20)
	t.Cleanup(func() { peer.CloseNow() })
	s.peer = peer
	s.accepted(t)
	return s
}

// accepted waits for the server to accept the connection.
func (s *side) accepted(t *testing.T) *Conn {
	t.Helper()
	select {
	case s.c = <-s.ready:
		return s.c
	case <-time.After(5 * time.Second):
		t.Fatal("no connection accepted")
		return nil
	}
}

// result waits for Run (or End) to return.
func (s *side) result(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err // keep it for a second look
		return err
	case <-time.After(within):
		t.Fatalf("Run still running after %v", within)
		return nil
	}
}

// onlyClose waits for Run to end and checks that exactly one close was counted.
func (s *side) onlyClose(t *testing.T) Reason {
	t.Helper()
	s.result(t, 15*time.Second)
	got := s.closes.list()
	if len(got) != 1 {
		t.Fatalf("closes counted %v, want exactly one", got)
	}
	if r, ok := s.c.Reason(); !ok || r != got[0] {
		t.Fatalf("Reason() = %v %v, counted %v", r, ok, got[0])
	}
	return got[0]
}

// peerClose reads until the peer's connection fails and returns the close status.
func peerClose(t *testing.T, peer *websocket.Conn) websocket.StatusCode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for i := 0; i < 1<<20; i++ {
		if _, _, err := peer.Read(ctx); err != nil {
			return websocket.CloseStatus(err)
		}
	}
	t.Fatal("peer kept reading")
	return 0
}

// readN reads n messages from the peer.
func readN(t *testing.T, peer *websocket.Conn, n int) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out := make([]string, 0, n)
	for len(out) < n {
		_, b, err := peer.Read(ctx)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(out), err)
		}
		out = append(out, string(b))
	}
	return out
}

func write(t *testing.T, peer *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := peer.Write(ctx, websocket.MessageBinary, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// eventually polls cond every 10ms for up to 10s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// rawUpgrade opens a WebSocket by hand, for peers that break the protocol.
func rawUpgrade(t *testing.T, url string) net.Conn {
	t.Helper()
	host := strings.TrimPrefix(url, "http://")
	nc, err := net.DialTimeout("tcp", host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	key := make([]byte, 16)
	rand.Read(key)
	fmt.Fprintf(nc, "GET / HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", host, base64.StdEncoding.EncodeToString(key))
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	nc.SetReadDeadline(time.Time{})
	return nc
}
