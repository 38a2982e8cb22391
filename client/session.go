package client

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"
	"golang.org/x/sync/semaphore"

	"github.com/mimids/mimids/protocol"
)

// reply is the answer to one request.
type reply struct {
	body []byte
	err  error
}

// request is one request waiting for its answer.
type request struct {
	ch chan reply // cap 1
	// ackMark is the session's ack watermark when the writer wrote the request. The
	// server handles an ack before it reads the next frame, so any answer proves
	// every ack up to ackMark committed (docs/protocol.md §1.4).
	ackMark atomic.Uint64
}

// outMsg is a request frame for the writer.
type outMsg struct {
	frame    []byte
	req      *request
	flushAck bool // write the due ack first, whatever Config.AckDelay says
}

// session is one authenticated connection. The client's run goroutine is its
// reader (the only ws.Read caller); it starts a writer (the only ws.Write caller)
// and a dispatcher (the only Handler caller). Sessions of one Client never overlap:
// the next starts only after serve has returned.
type session struct {
	c    *Client         // Static.
	ws   *websocket.Conn // Static.
	info SessionInfo     // Static.

	// ctx is canceled when the session ends; a Read or Write in progress then
	// closes the connection at once.
	ctx    context.Context
	cancel context.CancelFunc

	sendq     chan outMsg         // requests for the writer
	sendBytes *semaphore.Weighted // bytes in sendq
	ackSignal chan struct{}       // cap 1: an ack may be due
	ackDue    atomic.Bool         // set by signalAck, cleared by the writer before it flushes
	ackSent   uint64              // Owned by the writer: highest seq acked on this socket.
	delivered atomic.Uint64       // highest seq the server delivered on this socket

	deliveries chan *Delivery  // reader -> dispatcher
	queued     atomic.Int64    // payload bytes in deliveries
	overflow   atomic.Bool     // set by the reader; no more deliveries are queued
	wake       chan struct{}   // cap 1: the reader set overflow
	lastQueued uint64          // Owned by the reader.
	connErr    *protocol.Error // Owned by the reader: the request_id 0 error frame.
	first      []byte          // Owned by the reader: frames that came with auth_ok.

	closeReq  chan struct{} // closed by shutdown: the writer closes the connection
	closeOnce sync.Once

	writerDone   chan struct{}
	dispatchDone chan struct{}

	mu          sync.Mutex // guards the fields below
	pending     map[uint32]*request
	ended       error // set when the session ended; no new requests
	closeCode   websocket.StatusCode
	closeReason string
	closeCause  error // why this side closed (nil if it did not)
}

func newSession(c *Client, ws *websocket.Conn, info SessionInfo, first []byte) *session {
	s := &session{
		c: c, ws: ws, info: info, first: first,
		sendq:        make(chan outMsg, c.cfg.SendQueueLen),
		sendBytes:    semaphore.NewWeighted(c.cfg.SendQueueBytes),
		ackSignal:    make(chan struct{}, 1),
		deliveries:   make(chan *Delivery, c.cfg.DeliveryQueueLen),
		wake:         make(chan struct{}, 1),
		lastQueued:   c.lastHandled.Load(),
		closeReq:     make(chan struct{}),
		writerDone:   make(chan struct{}),
		dispatchDone: make(chan struct{}),
		pending:      make(map[uint32]*request),
	}
	s.ctx, s.cancel = context.WithCancel(c.hard)
	return s
}

// serve runs the session until its connection ends and returns the cause.
func (s *session) serve() error {
	go s.writeLoop()
	go s.dispatchLoop()
	rerr := s.readLoop()
	s.mu.Lock()
	own := s.closeCause
	s.mu.Unlock()
	cause := classifyRead(rerr, s.connErr)
	if own != nil && !terminal(cause) {
		cause = own
	}
	s.end(cause)
	s.cancel()
	<-s.writerDone
	<-s.dispatchDone
	s.ws.CloseNow()
	return cause
}

// end fails the pending requests and refuses new ones.
func (s *session) end(cause error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ended = cause
	for id, req := range s.pending {
		req.ch <- reply{err: fmt.Errorf("%w: %w", ErrDisconnected, cause)}
		delete(s.pending, id)
	}
}

// shutdown asks the writer to flush acks and close the connection with code.
func (s *session) shutdown(code websocket.StatusCode, reason string, cause error) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closeCode, s.closeReason, s.closeCause = code, reason, cause
		s.mu.Unlock()
		close(s.closeReq)
	})
}

// do sends one request and waits for its answer. sent is false when the session
// ended before the request was queued, so the caller may use the next session.
func (s *session) do(ctx context.Context, method protocol.Method, body []byte, flushAck bool) (_ []byte, sent bool, _ error) {
	req := &request{ch: make(chan reply, 1)}
	s.mu.Lock()
	if s.ended != nil || isClosed(s.closeReq) {
		s.mu.Unlock()
		return nil, false, nil
	}
	id := s.c.newID()
	for s.pending[id] != nil {
		id = s.c.newID()
	}
	s.pending[id] = req
	s.mu.Unlock()

	frame := protocol.Encode(&protocol.Request{RequestID: id, Method: method, Body: body})
	if max := s.info.MaxFrameSize; max > 0 && len(frame) > int(max) {
		s.forget(id)
		return nil, true, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(frame), max)
	}
	if err := s.enqueue(ctx, outMsg{frame: frame, req: req, flushAck: flushAck}); err != nil {
		s.forget(id)
		if s.ctx.Err() != nil && ctx.Err() == nil {
			return nil, false, nil
		}
		return nil, true, err
	}
	select {
	case r := <-req.ch:
		return r.body, true, r.err
	case <-ctx.Done():
		s.forget(id)
		return nil, true, ctx.Err()
	}
}

// enqueue waits for room in the send queue, bounded by count and bytes.
func (s *session) enqueue(ctx context.Context, m outMsg) error {
	n := min(int64(len(m.frame)), s.c.cfg.SendQueueBytes)
	actx, stop := context.WithCancel(ctx)
	defer stop()
	unhook := context.AfterFunc(s.ctx, stop)
	defer unhook()
	if err := s.sendBytes.Acquire(actx, n); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return s.ctx.Err()
	}
	select {
	case s.sendq <- m:
		return nil
	case <-actx.Done():
		s.sendBytes.Release(n)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return s.ctx.Err()
	}
}

func (s *session) forget(id uint32) {
	s.mu.Lock()
	delete(s.pending, id)
	s.mu.Unlock()
}

// complete hands an answer to the request waiting for it and records the acks it
// proves committed. Answers to requests whose callers gave up are dropped.
func (s *session) complete(id uint32, r reply) {
	s.mu.Lock()
	req := s.pending[id]
	delete(s.pending, id)
	s.mu.Unlock()
	if req == nil {
		return
	}
	s.c.raiseCommitted(req.ackMark.Load())
	req.ch <- r
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
