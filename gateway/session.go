package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime/trace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/gateway/conn"
	"github.com/mimids/mimids/protocol"
)

// session is one client socket: the client protocol (authentication, requests,
// mailbox sequence numbers, partition subscriptions) on top of a conn.Conn, which
// owns the reader, the send queue, the on-demand writer, pings and the close reason.
type session struct {
	// Static after construction.
	srv *Server
	c   *conn.Conn
	id  uint64
	log *slog.Logger // set before the connection runs; read-only after

	caller  *Caller        // set by authenticate before the connection runs; read-only after
	shared  *clientSockets // what the client's sockets share; set with caller (admit)
	written atomic.Uint64  // highest mailbox seq written to the socket

	mu      sync.Mutex // taken before the conn's own lock, never after
	lastSeq uint64     // highest mailbox seq placed in the send queue; Guarded by mu.
	refetch bool       // the store may hold entries after lastSeq; Guarded by mu.

	subs        map[string]*partSub // partition subscriptions by masked key; Guarded by mu.
	partRefetch bool                // some subscription needs catch-up; Guarded by mu.
}

// maxBatchBytes bounds one WebSocket message that carries several queued frames
// (docs/protocol.md §1.2): a client that is behind costs one write per 64 KiB
// instead of one per frame.
const maxBatchBytes = 64 << 10

// connConfig is what every client socket's connection shares.
func (s *Server) connConfig() *conn.Config {
	closeName := func(code websocket.StatusCode) string { return protocol.CloseReason(int(code)) }
	return &conn.Config{
		MaxMessageBytes:  int64(s.cfg.MaxFrameSize),
		MaxQueueMessages: s.cfg.SendQueueMessages,
		MaxQueueBytes:    s.cfg.SendQueueBytes,
		MaxBatchBytes:    maxBatchBytes,
		WriteTimeout:     s.cfg.WriteTimeout.D(),
		PingInterval:     s.cfg.PingInterval.D(),
		MaxInflight:      s.cfg.MaxInflightRequests,
		Pool:             conn.NewPool(),
		Total:            conn.NewBudget(s.cfg.TotalQueueBytes),
		OverBudget:       s.overBudget,
		SlowConsumer:     protocol.CloseSlowConsumer,
		CloseName:        closeName,
		Closed:           func(r conn.Reason) { s.metrics.closes.WithLabelValues(closeName(r.Code)).Inc() },
	}
}

func (s *Server) socket(c echo.Context) error {
	if s.draining.Load() {
		return problem(503, "draining", "the server is shutting down")
	}
	// Counted from before the upgrade until authentication ends, either way.
	doneAuth, err := s.admitUnauthenticated(sourceAddr(c.Request()))
	if err != nil {
		return err
	}
	defer doneAuth()
	sock, err := conn.Accept(c.Response(), c.Request(), &websocket.AcceptOptions{
		Subprotocols:   []string{protocol.Subprotocol},
		OriginPatterns: s.cfg.AllowedOrigins,
	})
	if err != nil {
		return nil // Accept has written the HTTP error
	}
	ws := sock.WS
	s.metrics.accepted.Inc()
	ss := &session{srv: s, id: s.nextID.Add(1)}
	ss.log = s.log.With("conn_id", ss.id, "remote", c.Request().RemoteAddr)
	ss.c = conn.NewSocket(sock, s.connCfg, ss, ss.log)
	ss.c.SetReadLimit(int64(s.cfg.MaxAuthFrameSize)) // until auth_ok
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		ws.Close(protocol.CloseGoingAway, "server shutting down")
		return nil
	}
	s.sessions[ss] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	if ws.Subprotocol() != protocol.Subprotocol {
		ss.c.Close(protocol.CloseProtocolError, "subprotocol "+protocol.Subprotocol+" required")
		ss.c.End(nil)
		ss.finish()
		return nil
	}
	// Authentication (the deep part: store queries) runs on the HTTP server's
	// goroutine, which then ends with its stack and the request it holds; the
	// connection's reader starts on a fresh, small stack. An idle socket costs one
	// goroutine and the connection's buffers.
	err = ss.authenticate()
	doneAuth()
	if err != nil {
		ss.c.End(err)
		ss.finish()
		return nil
	}
	go func() {
		ss.run()
		ss.finish()
	}()
	return nil
}

// finish forgets the session once its connection has ended and been accounted for.
func (ss *session) finish() {
	defer ss.srv.wg.Done()
	ss.srv.unregister(ss)
}

// close ends the session once with the close code; it never blocks.
func (ss *session) close(code int, reason string) {
	ss.c.Close(websocket.StatusCode(code), reason)
}

// fail sends a connection-level error frame if it can, then closes.
func (ss *session) fail(code int, ecode protocol.Code, msg string) {
	ss.c.CloseWith(protocol.Encode(&protocol.Error{Code: ecode, Message: msg}), websocket.StatusCode(code), msg)
}

// run serves an authenticated session until it ends; the connection logs and
// counts how it ended.
func (ss *session) run() {
	s := ss.srv
	s.metrics.connected.Inc()
	defer s.metrics.connected.Dec()
	cancelSub := s.deps.Mailbox.Subscribe(ss.caller.Client.ID, ss)
	defer cancelSub()
	defer ss.leaveAll()
	ss.Refetch() // once running, the writer writes auth_ok, then catches up on the mailbox
	_ = ss.c.Run(context.Background())
}

func (ss *session) authenticate() error {
	s := ss.srv
	ctx := ss.c.Context()
	actx, cancel := context.WithTimeout(ctx, s.cfg.AuthTimeout.D())
	defer cancel()
	// A Read whose context ends kills the connection without a close frame, so the
	// deadline is a timer that closes properly.
	timer := time.AfterFunc(s.cfg.AuthTimeout.D(), func() {
		ss.fail(protocol.CloseAuthTimeout, protocol.CodeUnauthorized, "no auth frame within "+s.cfg.AuthTimeout.D().String())
	})
	typ, b, err := ss.c.Read(ctx)
	if !timer.Stop() {
		return errors.New("auth timeout")
	}
	if err != nil {
		return fmt.Errorf("read auth: %w", err)
	}
	if typ != websocket.MessageBinary {
		ss.fail(protocol.CloseProtocolError, protocol.CodeMalformed, "frames must be binary messages")
		return errors.New("text frame")
	}
	f, err := protocol.Decode(b)
	if err != nil {
		ss.fail(protocol.CloseProtocolError, protocol.CodeMalformed, err.Error())
		return err
	}
	auth, ok := f.(*protocol.Auth)
	if !ok {
		ss.fail(protocol.CloseProtocolError, protocol.CodeProtocol, "the first frame must be auth, not "+f.Type().String())
		return errors.New("no auth")
	}
	s.metrics.framesIn.WithLabelValues("auth").Inc()
	client, err := s.deps.Directory.Authenticate(actx, auth.Token)
	if err != nil {
		if errors.Is(err, directory.ErrBadToken) {
			ss.fail(protocol.CloseAuthFailed, protocol.CodeUnauthorized, "unknown or revoked token")
		} else {
			ss.fail(protocol.CloseGoingAway, protocol.CodeInternal, "authentication unavailable")
		}
		return err
	}
	ss.caller = &Caller{Client: client, ClientURI: s.deps.Directory.ClientURI(client), UserURI: s.deps.Directory.UserURI(client.UserName)}
	ss.log = ss.log.With("client", ss.caller.ClientURI)
	ss.c.SetLogger(ss.log)
	// Registered before anything can start the writer, so a client that has
	// auth_ok is reachable by revocation.
	if refused := s.admit(ss); refused != "" {
		what := "client"
		if refused == refusedUser {
			what = "user"
		}
		ss.fail(protocol.CloseTooMany, protocol.CodeRateLimited, "too many sockets for this "+what+"; close one first")
		return errors.New(refused)
	}
	ss.c.LimitBy(ss.shared.budget)
	ss.c.SetReadLimit(int64(s.cfg.MaxFrameSize))
	st, err := s.deps.Mailbox.Status(actx, client.ID)
	if err != nil {
		ss.fail(protocol.CloseGoingAway, protocol.CodeInternal, "mailbox unavailable")
		return err
	}
	// Queued before Run, which wakes the writer: once the session is registered, so
	// a client that has auth_ok is reachable (revocation, deliveries). The queue is
	// empty, so there is room; Enqueue, not TryEnqueue, as the client's budget may be
	// used by its other sockets and must not hold back auth_ok.
	ss.c.Enqueue(protocol.Encode(&protocol.AuthOK{RequestID: auth.RequestID, ClientID: ss.caller.ClientURI,
		UserID: ss.caller.UserURI, Pending: st.Pending, MaxFrameSize: uint32(s.cfg.MaxFrameSize), Incarnation: s.deps.Incarnation}))
	return nil
}

// Receive implements conn.Handler: a message may carry several frames back to back.
func (ss *session) Receive(_ context.Context, typ websocket.MessageType, b []byte) error {
	if typ != websocket.MessageBinary {
		ss.fail(protocol.CloseProtocolError, protocol.CodeMalformed, "frames must be binary messages")
		return errors.New("text frame")
	}
	for first := true; first || len(b) > 0; first = false {
		var f protocol.Frame
		var err error
		f, b, err = protocol.Next(b)
		if err != nil {
			ss.fail(protocol.CloseProtocolError, protocol.CodeMalformed, err.Error())
			return err
		}
		if err := ss.handleFrame(f); err != nil {
			return err
		}
	}
	return nil
}

func (ss *session) handleFrame(f protocol.Frame) error {
	ss.srv.metrics.framesIn.WithLabelValues(f.Type().String()).Inc()
	switch f := f.(type) {
	case *protocol.Request:
		// Under runtime/trace a request is a task from the moment its frame was
		// read (docs/performance.md, "Latency budget").
		var task *trace.Task
		tctx := ss.c.Context()
		if trace.IsEnabled() {
			tctx, task = trace.NewTask(tctx, "request "+f.Method.String())
		}
		return ss.c.Go(func(ctx context.Context) {
			if task != nil {
				ctx = tctx
				defer task.End()
			}
			ss.handleRequest(ctx, f)
		})
	case *protocol.Ack:
		return ss.ack(f.Seq)
	default:
		ss.fail(protocol.CloseProtocolError, protocol.CodeProtocol, f.Type().String()+" is not allowed here")
		return fmt.Errorf("unexpected %s frame", f.Type())
	}
}

func (ss *session) ack(seq uint64) error {
	if w := ss.written.Load(); seq > w {
		// Acknowledging what was never delivered would delete it unseen.
		ss.enqueue(protocol.Encode(&protocol.Error{Code: protocol.CodeInvalid,
			Message: fmt.Sprintf("ack %d is past the last delivered seq %d", seq, w)}))
		return nil
	}
	if err := ss.srv.deps.Mailbox.Ack(ss.c.Context(), ss.caller.Client.ID, seq); err != nil {
		ss.log.Error("ack", "seq", seq, "err", err)
		ss.fail(protocol.CloseGoingAway, protocol.CodeInternal, "ack failed")
		return err
	}
	ss.shared.frames.acked(seq)
	ss.srv.metrics.acked.Inc()
	return nil
}

func (ss *session) handleRequest(ctx context.Context, req *protocol.Request) {
	s := ss.srv
	start := time.Now()
	h := s.handlers[req.Method]
	if s.deps.Partitions != nil {
		switch req.Method {
		case protocol.MethodSubscribe:
			h = func(ctx context.Context, _ *Caller, b []byte) ([]byte, error) { return ss.subscribe(ctx, b) }
		case protocol.MethodUnsubscribe:
			h = func(ctx context.Context, _ *Caller, b []byte) ([]byte, error) { return ss.unsubscribe(ctx, b) }
		case protocol.MethodSubscribeAt:
			h = func(ctx context.Context, _ *Caller, b []byte) ([]byte, error) { return ss.subscribeAt(ctx, b) }
		}
	}
	var body []byte
	var err error
	if h == nil {
		err = &protocol.Error{Code: protocol.CodeUnknownMethod, Message: req.Method.String()}
	} else {
		body, err = safeCall(ctx, h, ss.caller, req.Body)
	}
	code := "ok"
	if err != nil {
		we, internal := wireError(err)
		if internal {
			ss.log.Error("request failed", "method", req.Method.String(), "err", err)
		}
		code = we.Code.String()
		ss.enqueue(protocol.Encode(&protocol.Error{RequestID: req.RequestID, Code: we.Code, Message: we.Message}))
	} else {
		ss.enqueue(protocol.Encode(&protocol.Response{RequestID: req.RequestID, Body: body}))
	}
	s.metrics.requests.WithLabelValues(req.Method.String(), code).Inc()
	s.metrics.reqLatency.Observe(time.Since(start).Seconds())
}

func safeCall(ctx context.Context, h Handler, c *Caller, body []byte) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panic: %v", p)
		}
	}()
	return h(ctx, c, body)
}

// enqueue queues a frame for the writer; it never blocks. A socket whose queue is
// full is a slow consumer and is closed.
func (ss *session) enqueue(b []byte) { ss.c.Enqueue(b) }

// Notify implements mailbox.Sink: an entry committed for this client.
func (ss *session) Notify(e mailbox.Entry) {
	ss.mu.Lock()
	switch {
	case e.Seq <= ss.lastSeq:
		// Already queued (by catch-up).
	case ss.refetch || e.Seq != ss.lastSeq+1:
		// A gap: entries before e were never offered; catch up from the store.
		ss.refetch = true
	case !ss.c.TryEnqueue(ss.shared.frames.frame(e)):
		// The queue, or the client's budget, is full; the entry is durable, so
		// read it back later.
		ss.refetch = true
	default:
		ss.lastSeq = e.Seq
		ss.shared.frames.advance(ss, e.Seq)
	}
	ss.mu.Unlock()
	ss.c.Wake()
}

// Refetch implements mailbox.Sink.
func (ss *session) Refetch() {
	ss.mu.Lock()
	ss.refetch = true
	ss.mu.Unlock()
	ss.c.Wake()
}

// RefillPending implements conn.Refiller: the mailbox or a subscription needs catch-up.
func (ss *session) RefillPending() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.refetch || ss.partRefetch
}

// Refill implements conn.Refiller: it reads one page from the store for the mailbox
// and for every subscription that needs it into the send queue, on the writer.
func (ss *session) Refill(ctx context.Context) error {
	ss.mu.Lock()
	refetch, partRefetch := ss.refetch, ss.partRefetch
	ss.mu.Unlock()
	if refetch {
		if err := ss.catchUp(ctx); err != nil {
			return err
		}
	}
	if partRefetch {
		return ss.catchUpPartitions(ctx)
	}
	return nil
}

// Writing implements conn.WriteObserver. A delivered seq is recorded before the
// write: the client may ack as soon as the bytes land.
func (ss *session) Writing(frames [][]byte) {
	for _, b := range frames {
		if b[0] == byte(protocol.TypeDeliver) {
			if seq := binary.BigEndian.Uint64(b[1:9]); seq > ss.written.Load() {
				ss.written.Store(seq)
			}
		}
	}
}

// Wrote implements conn.WriteObserver.
func (ss *session) Wrote(frames [][]byte) {
	delivers := 0
	for _, b := range frames {
		if b[0] == byte(protocol.TypeDeliver) {
			delivers++
		}
	}
	if trace.IsEnabled() {
		tracePushes("wrote", frames)
	}
	ss.srv.metrics.framesOut.Add(float64(len(frames)))
	ss.srv.metrics.delivered.Add(float64(delivers))
}

// catchUp reads one page of entries after lastSeq into the queue, through the
// client's frame cache: the store is read and an entry encoded once for all the
// client's sockets.
func (ss *session) catchUp(ctx context.Context) error {
	ss.mu.Lock()
	after := ss.lastSeq
	ss.refetch = false
	ss.mu.Unlock()
	frames, more, err := ss.shared.frames.read(ctx, ss.srv.deps.Mailbox, ss.caller.Client.ID, after, ss.srv.cfg.ReplayBatch)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		ss.log.Error("mailbox fetch", "err", err)
		ss.fail(protocol.CloseGoingAway, protocol.CodeInternal, "mailbox unavailable")
		return err
	}
	ss.mu.Lock()
	for _, f := range frames {
		if f.seq <= ss.lastSeq {
			continue
		}
		if !ss.c.TryEnqueue(f.frame) {
			ss.refetch = true
			break
		}
		ss.lastSeq = f.seq
	}
	if more {
		ss.refetch = true
	}
	ss.shared.frames.advance(ss, ss.lastSeq)
	ss.mu.Unlock()
	return nil
}
