package client

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/protocol"
)

// fakeServer implements just enough of the mimids socket for the client tests: auth,
// a single client's mailbox (seq = index + 1) replayed from the last ack on every
// connection and pushed live, acks, and requests answered by onRequest.
type fakeServer struct {
	t   testing.TB
	srv *httptest.Server

	// Static after newFakeServer (set by options).
	token       string
	maxFrame    uint32
	forgetAcks  bool                                         // replay from seq 1 on every connection
	refuse      func(n int) bool                             // refuse auth on connection n (1-based)
	closeOnly   bool                                         // refuse with a bare 4001 close, no error frame
	lateAuth    func(n int) bool                             // answer connection n as if auth came too late (4002)
	silentAuth  bool                                         // never answer the auth frame
	onRequest   func(fc *fakeConn, r *protocol.Request) bool // true: handled
	onConnect   func(fc *fakeConn)                           // runs in its own goroutine after auth_ok
	checkReq    func(r *http.Request) (status int, ok bool)  // HTTP-level check before Accept
	origins     []string                                     // AcceptOptions.OriginPatterns
	pumpDelay   time.Duration                                // wait before delivering on a connection
	batch       int                                          // deliver up to this many frames per message
	incarnation func(n int) []byte                           // auth_ok's incarnation on connection n (nil: none)
	packAuth    bool                                         // send the stored entries in auth_ok's WebSocket message

	mu        sync.Mutex
	entries   [][]byte
	acked     uint64
	ackFrames int
	acks      []uint64 // every ack seq, in arrival order
	conns     []*fakeConn
	closes    []int // close codes the client sent, per ended connection
	badAcks   int   // acks beyond what the connection had delivered (refused)
	wake      chan struct{}
}

type fakeConn struct {
	s   *fakeServer
	ws  *websocket.Conn
	n   int
	ctx context.Context
	wmu sync.Mutex
	// sentMax is the highest seq delivered on this connection.
	sentMax atomic.Uint64
	packed  uint64 // entries sent with auth_ok (packAuth); set before pump runs
}

type fakeOption func(*fakeServer)

func newFakeServer(t testing.TB, opts ...fakeOption) *fakeServer {
	s := &fakeServer{t: t, token: "mdt_test", maxFrame: 1 << 20, wake: make(chan struct{})}
	for _, o := range opts {
		o(s)
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *fakeServer) url() string { return "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/v1/socket" }

// push appends entries to the mailbox and wakes the live connections.
func (s *fakeServer) push(payloads ...[]byte) {
	s.mu.Lock()
	s.entries = append(s.entries, payloads...)
	close(s.wake)
	s.wake = make(chan struct{})
	s.mu.Unlock()
}

func (s *fakeServer) pushNotices(n int) {
	p := make([][]byte, n)
	for i := range p {
		p[i], _ = protocol.Notice{Text: "n"}.MarshalBinary()
	}
	s.push(p...)
}

func (s *fakeServer) state() (conns int, acked uint64, ackFrames int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns), s.acked, s.ackFrames
}

// checkAcks fails the test if the client acked a seq its connection had not delivered.
func (s *fakeServer) checkAcks(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.badAcks != 0 {
		t.Errorf("%d acks beyond the delivered seq", s.badAcks)
	}
}

func (s *fakeServer) conn(n int) *fakeConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n > len(s.conns) {
		return nil
	}
	return s.conns[n-1]
}

func (s *fakeServer) handle(w http.ResponseWriter, r *http.Request) {
	if s.checkReq != nil {
		if status, ok := s.checkReq(r); !ok {
			http.Error(w, "refused", status)
			return
		}
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: []string{protocol.Subprotocol}, OriginPatterns: s.origins,
	})
	if err != nil {
		return
	}
	defer ws.CloseNow()
	ws.SetReadLimit(int64(s.maxFrame))
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	fc := &fakeConn{s: s, ws: ws, ctx: ctx}
	s.mu.Lock()
	s.conns = append(s.conns, fc)
	fc.n = len(s.conns)
	s.mu.Unlock()
	if !s.authenticate(fc) {
		return
	}
	go fc.pump()
	if s.onConnect != nil {
		go s.onConnect(fc)
	}
	err = fc.readLoop()
	s.mu.Lock()
	s.closes = append(s.closes, int(websocket.CloseStatus(err)))
	s.mu.Unlock()
}

func (s *fakeServer) authenticate(fc *fakeConn) bool {
	_, b, err := fc.ws.Read(fc.ctx)
	if err != nil {
		return false
	}
	f, err := protocol.Decode(b)
	a, ok := f.(*protocol.Auth)
	if err != nil || !ok {
		fc.ws.Close(protocol.CloseProtocolError, "auth expected")
		return false
	}
	if s.lateAuth != nil && s.lateAuth(fc.n) {
		fc.send(&protocol.Error{Code: protocol.CodeUnauthorized, Message: "auth timeout"})
		fc.ws.Close(protocol.CloseAuthTimeout, "auth timeout")
		return false
	}
	if s.silentAuth {
		<-fc.ctx.Done()
		return false
	}
	if string(a.Token) != s.token || (s.refuse != nil && s.refuse(fc.n)) {
		if !s.closeOnly {
			fc.send(&protocol.Error{Code: protocol.CodeUnauthorized, Message: "unknown token"})
		}
		fc.ws.Close(protocol.CloseAuthFailed, "auth failed")
		return false
	}
	s.mu.Lock()
	pending := uint64(len(s.entries)) - min(s.acked, uint64(len(s.entries)))
	s.mu.Unlock()
	var inc []byte
	if s.incarnation != nil {
		inc = s.incarnation(fc.n)
	}
	msg := protocol.Encode(&protocol.AuthOK{
		RequestID: a.RequestID, ClientID: "mimi://test/d/alice/c1", UserID: "mimi://test/u/alice",
		Pending: pending, MaxFrameSize: s.maxFrame, Incarnation: inc,
	})
	if s.packAuth {
		s.mu.Lock()
		for seq := s.acked + 1; seq <= uint64(len(s.entries)); seq++ {
			msg = protocol.Append(msg, &protocol.Deliver{Seq: seq, Kind: protocol.KindNotice, Payload: s.entries[seq-1]})
			fc.packed++
			fc.sentMax.Store(seq)
		}
		s.mu.Unlock()
	}
	return fc.sendRaw(websocket.MessageBinary, msg) == nil
}

func (fc *fakeConn) send(f protocol.Frame) error {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	return fc.ws.Write(fc.ctx, websocket.MessageBinary, protocol.Encode(f))
}

func (fc *fakeConn) sendRaw(typ websocket.MessageType, b []byte) error {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	return fc.ws.Write(fc.ctx, typ, b)
}

// close ends the connection with code, as the real server does.
func (fc *fakeConn) close(code int, reason string) {
	fc.ws.Close(websocket.StatusCode(code), reason)
}

// pump pushes mailbox entries after the last ack (or from 1 with forgetAcks).
func (fc *fakeConn) pump() {
	s := fc.s
	s.mu.Lock()
	next := s.acked + 1 + fc.packed
	if s.forgetAcks {
		next = 1
	}
	s.mu.Unlock()
	if s.pumpDelay > 0 {
		select {
		case <-time.After(s.pumpDelay):
		case <-fc.ctx.Done():
			return
		}
	}
	for {
		s.mu.Lock()
		wake := s.wake
		var batch [][]byte
		if next <= uint64(len(s.entries)) {
			batch = s.entries[next-1:]
		}
		s.mu.Unlock()
		for len(batch) > 0 {
			var msg []byte
			for i := 0; i < max(s.batch, 1) && len(batch) > 0; i++ {
				d := &protocol.Deliver{Seq: next, Kind: protocol.KindNotice, EnqueuedAtMS: uint64(time.Now().UnixMilli()), Payload: batch[0]}
				msg = protocol.Append(msg, d)
				batch = batch[1:]
				next++
			}
			fc.sentMax.Store(next - 1) // recorded before the write, as the real server does
			if fc.sendRaw(websocket.MessageBinary, msg) != nil {
				return
			}
		}
		select {
		case <-wake:
		case <-fc.ctx.Done():
			return
		}
	}
}

func (fc *fakeConn) readLoop() error {
	s := fc.s
	for {
		_, b, err := fc.ws.Read(fc.ctx)
		if err != nil {
			return err
		}
		f, err := protocol.Decode(b)
		if err != nil {
			fc.ws.Close(protocol.CloseProtocolError, "malformed")
			return err
		}
		switch f := f.(type) {
		case *protocol.Ack:
			if f.Seq > fc.sentMax.Load() { // as the real server: refused, nothing removed
				s.mu.Lock()
				s.badAcks++
				s.mu.Unlock()
				fc.send(&protocol.Error{Code: protocol.CodeInvalid, Message: "ack beyond delivered"})
				continue
			}
			s.mu.Lock()
			s.ackFrames++
			s.acks = append(s.acks, f.Seq)
			s.acked = max(s.acked, f.Seq)
			s.mu.Unlock()
		case *protocol.Request:
			if s.onRequest != nil && s.onRequest(fc, f) {
				continue
			}
			fc.answerDefault(f)
		default:
			fc.ws.Close(protocol.CloseProtocolError, "unexpected frame")
			return errors.New("unexpected frame")
		}
	}
}

func (fc *fakeConn) answerDefault(r *protocol.Request) {
	switch r.Method {
	case protocol.MethodPing:
		fc.send(&protocol.Response{RequestID: r.RequestID, Body: r.Body})
	case protocol.MethodMailboxStatus:
		s := fc.s
		s.mu.Lock()
		st := protocol.MailboxStatus{}
		if n := uint64(len(s.entries)); n > s.acked {
			st = protocol.MailboxStatus{Pending: n - s.acked, FirstSeq: s.acked + 1, LastSeq: n}
		}
		s.mu.Unlock()
		b, _ := st.MarshalBinary()
		fc.send(&protocol.Response{RequestID: r.RequestID, Body: b})
	default:
		fc.send(&protocol.Error{RequestID: r.RequestID, Code: protocol.CodeUnknownMethod, Message: r.Method.String()})
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// recorder is a Handler that remembers the seqs it accepted.
type recorder struct {
	mu   sync.Mutex
	seqs []uint64
	fail func(d *Delivery) error
}

func (r *recorder) handle(ctx context.Context, d *Delivery) error {
	if r.fail != nil {
		if err := r.fail(d); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.seqs = append(r.seqs, d.Seq)
	r.mu.Unlock()
	return nil
}

func (r *recorder) got() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.seqs...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seqs)
}

// checkSequence fails unless seqs is exactly 1..n.
func checkSequence(t testing.TB, seqs []uint64, n int) {
	t.Helper()
	if len(seqs) != n {
		t.Fatalf("handled %d deliveries, want %d: %v", len(seqs), n, seqs)
	}
	for i, s := range seqs {
		if s != uint64(i+1) {
			t.Fatalf("delivery %d has seq %d, want %d (all: %v)", i, s, i+1, seqs)
		}
	}
}
