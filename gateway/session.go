package gateway

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/labstack/echo/v4"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/protocol"
)

// session is one client socket. The reader goroutine (run) is the only caller of
// conn.Read; after authentication it starts the writer goroutine, the only caller of
// conn.Write.
type session struct {
	// Static after construction.
	srv  *Server
	conn *websocket.Conn
	id   uint64
	log  *slog.Logger
	ctx  context.Context
	stop context.CancelFunc

	caller  *Caller       // set by the reader before the writer starts; read-only after
	written atomic.Uint64 // highest mailbox seq written to the socket
	closed  atomic.Int32  // close code once close was called

	// The writer goroutine runs only while there is something to write: signal
	// starts it when none is running, and it exits once the queue is empty, so an
	// idle socket has just its reader goroutine.
	writing   atomic.Bool
	writers   sync.WaitGroup
	pingTimer *time.Timer // set before the reader loop starts

	mu      sync.Mutex
	queue   [][]byte // encoded frames waiting for the writer; Guarded by mu.
	qbytes  int      // Guarded by mu.
	lastSeq uint64   // highest mailbox seq placed in queue; Guarded by mu.
	refetch bool     // the store may hold entries after lastSeq; Guarded by mu.

	subs        map[string]*partSub // partition subscriptions by masked key; Guarded by mu.
	partRefetch bool                // some subscription needs catch-up; Guarded by mu.
	ended       bool                // no writer may start any more; Guarded by mu.
}

func (s *Server) socket(c echo.Context) error {
	if s.draining.Load() {
		return problem(503, "draining", "the server is shutting down")
	}
	conn, err := websocket.Accept(c.Response(), c.Request(), &websocket.AcceptOptions{
		Subprotocols:   []string{protocol.Subprotocol},
		OriginPatterns: s.cfg.AllowedOrigins,
	})
	if err != nil {
		return nil // Accept has written the HTTP error
	}
	s.metrics.accepted.Inc()
	ctx, stop := context.WithCancel(context.Background())
	ss := &session{srv: s, conn: conn, id: s.nextID.Add(1), ctx: ctx, stop: stop}
	ss.log = s.log.With("conn_id", ss.id, "remote", c.Request().RemoteAddr)
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		conn.Close(protocol.CloseGoingAway, "server shutting down")
		return nil
	}
	s.sessions[ss] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	if ss.conn.Subprotocol() != protocol.Subprotocol {
		ss.close(protocol.CloseProtocolError, "subprotocol "+protocol.Subprotocol+" required")
		ss.finish(nil)
		return nil
	}
	ss.conn.SetReadLimit(int64(s.cfg.MaxFrameSize))
	// Authentication (the deep part: store queries) runs on the HTTP server's
	// goroutine, which then ends with its stack and the request it holds; the
	// session's reader starts on a fresh, small stack. An idle socket costs one
	// goroutine and the connection's buffers.
	if err := ss.authenticate(); err != nil {
		ss.finish(err)
		return nil
	}
	go func() { ss.finish(ss.run()) }()
	return nil
}

// finish accounts for the session's end.
func (ss *session) finish(err error) {
	s := ss.srv
	defer s.wg.Done()
	defer s.unregister(ss)
	code := int(ss.closed.Load())
	if code == 0 {
		code = int(websocket.CloseStatus(err))
		if code == -1 {
			code = 1006
		}
		ss.close(code, "")
	}
	s.metrics.closes.WithLabelValues(protocol.CloseReason(code)).Inc()
	ss.log.Debug("socket closed", "reason", protocol.CloseReason(code), "err", err)
}

// close ends the session once with the close code. It never blocks the caller. The
// close handshake makes the reader's Read fail, which ends the session; the session
// context is not cancelled here because coder/websocket tears a connection down
// without a close frame when a Read's context ends.
func (ss *session) close(code int, reason string) {
	if !ss.closed.CompareAndSwap(0, int32(code)) {
		return
	}
	go ss.conn.Close(websocket.StatusCode(code), reason)
}

// fail sends a connection-level error frame if it can, then closes.
func (ss *session) fail(code int, ecode protocol.Code, msg string) {
	ctx, cancel := context.WithTimeout(ss.ctx, time.Second)
	ss.conn.Write(ctx, websocket.MessageBinary, protocol.Encode(&protocol.Error{Code: ecode, Message: msg}))
	cancel()
	ss.close(code, msg)
}

// run serves an authenticated session until it ends.
func (ss *session) run() error {
	s := ss.srv
	s.metrics.connected.Inc()
	defer s.metrics.connected.Dec()
	// Registered before anything can start the writer, so a client that has
	// auth_ok is reachable by revocation.
	s.register(ss)
	cancelSub := s.deps.Mailbox.Subscribe(ss.caller.Client.ID, ss)
	defer cancelSub()
	defer ss.leaveAll()
	ss.pingTimer = time.AfterFunc(s.cfg.PingInterval.D(), ss.ping)
	ss.Refetch() // writes auth_ok, then catches up on the mailbox
	err := ss.readLoop()
	ss.pingTimer.Stop()
	ss.stop()
	ss.mu.Lock()
	ss.ended = true
	ss.mu.Unlock()
	ss.writers.Wait()
	return err
}

func (ss *session) authenticate() error {
	s := ss.srv
	actx, cancel := context.WithTimeout(ss.ctx, s.cfg.AuthTimeout.D())
	defer cancel()
	// A Read whose context ends kills the connection without a close frame, so the
	// deadline is a timer that closes properly.
	timer := time.AfterFunc(s.cfg.AuthTimeout.D(), func() {
		ss.fail(protocol.CloseAuthTimeout, protocol.CodeUnauthorized, "no auth frame within "+s.cfg.AuthTimeout.D().String())
	})
	typ, b, err := ss.conn.Read(ss.ctx)
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
	st, err := s.deps.Mailbox.Status(actx, client.ID)
	if err != nil {
		ss.fail(protocol.CloseGoingAway, protocol.CodeInternal, "mailbox unavailable")
		return err
	}
	// Queued, not signalled: the writer starts once the session is registered, so a
	// client that has auth_ok is reachable (revocation, deliveries).
	ss.mu.Lock()
	ss.enqueueLocked(protocol.Encode(&protocol.AuthOK{RequestID: auth.RequestID, ClientID: ss.caller.ClientURI,
		UserID: ss.caller.UserURI, Pending: st.Pending, MaxFrameSize: uint32(s.cfg.MaxFrameSize)}))
	ss.mu.Unlock()
	return nil
}

func (ss *session) readLoop() error {
	s := ss.srv
	sem := make(chan struct{}, s.cfg.MaxInflightRequests)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		typ, b, err := ss.conn.Read(ss.ctx)
		if err != nil {
			ss.stop()
			return err
		}
		if typ != websocket.MessageBinary {
			ss.fail(protocol.CloseProtocolError, protocol.CodeMalformed, "frames must be binary messages")
			return errors.New("text frame")
		}
		// A message may carry several frames back to back.
		for first := true; first || len(b) > 0; first = false {
			var f protocol.Frame
			f, b, err = protocol.Next(b)
			if err != nil {
				ss.fail(protocol.CloseProtocolError, protocol.CodeMalformed, err.Error())
				return err
			}
			if err := ss.handleFrame(f, sem, &inflight); err != nil {
				return err
			}
		}
	}
}

func (ss *session) handleFrame(f protocol.Frame, sem chan struct{}, inflight *sync.WaitGroup) error {
	ss.srv.metrics.framesIn.WithLabelValues(f.Type().String()).Inc()
	switch f := f.(type) {
	case *protocol.Request:
		select {
		case sem <- struct{}{}:
		case <-ss.ctx.Done():
			return ss.ctx.Err()
		}
		inflight.Add(1)
		go func() {
			defer func() { <-sem; inflight.Done() }()
			ss.handleRequest(f)
		}()
		return nil
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
	if err := ss.srv.deps.Mailbox.Ack(ss.ctx, ss.caller.Client.ID, seq); err != nil {
		ss.log.Error("ack", "seq", seq, "err", err)
		ss.fail(protocol.CloseGoingAway, protocol.CodeInternal, "ack failed")
		return err
	}
	ss.srv.metrics.acked.Inc()
	return nil
}

func (ss *session) handleRequest(req *protocol.Request) {
	s := ss.srv
	start := time.Now()
	h := s.handlers[req.Method]
	if s.deps.Partitions != nil {
		switch req.Method {
		case protocol.MethodSubscribe:
			h = func(ctx context.Context, _ *Caller, b []byte) ([]byte, error) { return ss.subscribe(ctx, b) }
		case protocol.MethodUnsubscribe:
			h = func(ctx context.Context, _ *Caller, b []byte) ([]byte, error) { return ss.unsubscribe(ctx, b) }
		}
	}
	var body []byte
	var err error
	if h == nil {
		err = &protocol.Error{Code: protocol.CodeUnknownMethod, Message: req.Method.String()}
	} else {
		body, err = safeCall(ss.ctx, h, ss.caller, req.Body)
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
func (ss *session) enqueue(b []byte) {
	ss.mu.Lock()
	ok := ss.enqueueLocked(b)
	ss.mu.Unlock()
	if !ok {
		ss.close(protocol.CloseSlowConsumer, "send queue full")
		return
	}
	ss.signal()
}

func (ss *session) enqueueLocked(b []byte) bool {
	cfg := &ss.srv.cfg
	if len(ss.queue) >= cfg.SendQueueMessages || ss.qbytes+len(b) > cfg.SendQueueBytes {
		return false
	}
	ss.queue = append(ss.queue, b)
	ss.qbytes += len(b)
	return true
}

// signal makes sure a writer goroutine will look at the queue.
func (ss *session) signal() {
	if !ss.writing.CompareAndSwap(false, true) {
		return
	}
	// Starting a writer is ordered with the session's end under mu, so that no
	// writers.Add can race the final writers.Wait.
	ss.mu.Lock()
	if ss.ended {
		ss.mu.Unlock()
		ss.writing.Store(false)
		return
	}
	ss.writers.Add(1)
	ss.mu.Unlock()
	go ss.writer()
}

// writer writes until the queue is empty and nothing waits to be fetched, then
// exits. It is the only caller of conn.Write while it runs, and at most one runs.
func (ss *session) writer() {
	defer ss.writers.Done()
	for {
		if err := ss.drain(); err != nil {
			ss.writing.Store(false)
			if ss.closed.Load() == 0 {
				ss.close(1006, "")
			}
			return
		}
		ss.writing.Store(false)
		// Work queued after drain looked but before writing was cleared would be
		// stranded: look again, and keep the writer role if there is some.
		ss.mu.Lock()
		more := len(ss.queue) > 0 || ss.refetch || ss.partRefetch
		ss.mu.Unlock()
		if !more || ss.ctx.Err() != nil || !ss.writing.CompareAndSwap(false, true) {
			return
		}
	}
}

// Notify implements mailbox.Sink: an entry committed for this client.
func (ss *session) Notify(e mailbox.Entry) {
	ss.mu.Lock()
	switch {
	case e.Seq <= ss.lastSeq:
		// Already queued (by catch-up).
	case ss.refetch || e.Seq != ss.lastSeq+1:
		// A gap: entries before e were never offered; catch up from the store.
		ss.refetch = true
	case !ss.enqueueLocked(encodeDeliver(e)):
		// The queue is full; the entry is durable, so read it back later.
		ss.refetch = true
	default:
		ss.lastSeq = e.Seq
	}
	ss.mu.Unlock()
	ss.signal()
}

// Refetch implements mailbox.Sink.
func (ss *session) Refetch() {
	ss.mu.Lock()
	ss.refetch = true
	ss.mu.Unlock()
	ss.signal()
}

func encodeDeliver(e mailbox.Entry) []byte {
	return protocol.Encode(&protocol.Deliver{Seq: e.Seq, Kind: protocol.Kind(e.Kind), EnqueuedAtMS: uint64(e.EnqueuedAt.UnixMilli()), Payload: e.Payload})
}

// drain writes what is queued and catches up from the store until nothing is left.
func (ss *session) drain() error {
	var batch [][]byte
	for ss.ctx.Err() == nil {
		ss.mu.Lock()
		batch, ss.queue = ss.queue, nil
		ss.qbytes = 0
		refetch, partRefetch := ss.refetch, ss.partRefetch
		ss.mu.Unlock()
		if len(batch) == 0 && !refetch && !partRefetch {
			return nil
		}
		if len(batch) > 0 {
			if err := ss.writeBatch(batch); err != nil {
				return err
			}
		}
		if refetch {
			if err := ss.catchUp(); err != nil {
				return err
			}
		}
		if partRefetch {
			if err := ss.catchUpPartitions(); err != nil {
				return err
			}
		}
	}
	return nil
}

// maxBatchBytes bounds one WebSocket message that carries several queued frames.
const maxBatchBytes = 64 << 10

var batchPool = sync.Pool{New: func() any { b := make([]byte, 0, maxBatchBytes); return &b }}

// writeBatch writes queued frames, packing consecutive small frames into one
// WebSocket message (docs/protocol.md §1.2) so a client that is behind costs one
// write per 64 KiB instead of one per frame.
func (ss *session) writeBatch(frames [][]byte) error {
	for i := 0; i < len(frames); {
		j, size := i, 0
		for j < len(frames) && (j == i || size+len(frames[j]) <= maxBatchBytes) {
			size += len(frames[j])
			j++
		}
		if j == i+1 {
			if err := ss.write(frames[i : i+1]); err != nil {
				return err
			}
		} else {
			if err := ss.write(frames[i:j]); err != nil {
				return err
			}
		}
		i = j
	}
	return nil
}

// write sends frames as one WebSocket message.
func (ss *session) write(frames [][]byte) error {
	s := ss.srv
	delivers := 0
	for _, b := range frames {
		if b[0] == byte(protocol.TypeDeliver) {
			delivers++
			// Recorded before the write: the client may ack as soon as the bytes land.
			if seq := binary.BigEndian.Uint64(b[1:9]); seq > ss.written.Load() {
				ss.written.Store(seq)
			}
		}
	}
	msg := frames[0]
	if len(frames) > 1 {
		bp := batchPool.Get().(*[]byte)
		defer func() { *bp = (*bp)[:0]; batchPool.Put(bp) }()
		for _, b := range frames {
			*bp = append(*bp, b...)
		}
		msg = *bp
	}
	ctx, cancel := context.WithTimeout(ss.ctx, s.cfg.WriteTimeout.D())
	err := ss.conn.Write(ctx, websocket.MessageBinary, msg)
	cancel()
	if err != nil {
		// The write's own deadline, not the session ending: the client stopped reading.
		// (coder/websocket drops the connection when a write times out, so the reader
		// may already have ended the session.)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			ss.close(protocol.CloseSlowConsumer, "write timeout")
		}
		return fmt.Errorf("write: %w", err)
	}
	s.metrics.framesOut.Add(float64(len(frames)))
	s.metrics.delivered.Add(float64(delivers))
	return nil
}

// catchUp reads one page of stored entries after lastSeq into the queue.
func (ss *session) catchUp() error {
	limit := ss.srv.cfg.ReplayBatch
	ss.mu.Lock()
	after := ss.lastSeq
	ss.refetch = false
	ss.mu.Unlock()
	entries, err := ss.srv.deps.Mailbox.Fetch(ss.ctx, ss.caller.Client.ID, after, limit)
	if err != nil {
		if ss.ctx.Err() != nil {
			return nil
		}
		ss.log.Error("mailbox fetch", "err", err)
		ss.fail(protocol.CloseGoingAway, protocol.CodeInternal, "mailbox unavailable")
		return err
	}
	ss.mu.Lock()
	for _, e := range entries {
		if e.Seq <= ss.lastSeq {
			continue
		}
		if !ss.enqueueLocked(encodeDeliver(e)) {
			ss.refetch = true
			break
		}
		ss.lastSeq = e.Seq
	}
	if len(entries) == limit {
		ss.refetch = true
	}
	ss.mu.Unlock()
	return nil
}

// ping runs on its own timer goroutine: WebSocket pings need the reader to see the
// pong, and must not hold up the writer.
func (ss *session) ping() {
	ctx, cancel := context.WithTimeout(ss.ctx, ss.srv.cfg.WriteTimeout.D())
	defer cancel()
	if err := ss.conn.Ping(ctx); err != nil {
		if ss.ctx.Err() == nil {
			ss.log.Debug("ping failed", "err", err)
			ss.close(protocol.CloseSlowConsumer, "ping timeout")
		}
		return
	}
	if ss.ctx.Err() == nil {
		ss.pingTimer.Reset(ss.srv.cfg.PingInterval.D())
	}
}
