package client

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/sync/semaphore"

	"github.com/mimids/mimids/gateway/wire"
)

// reply is the answer to one request.
type reply struct {
	body []byte
	err  error
}

// session is one authenticated connection. The client's run goroutine is its
// reader (the only ws.Read caller); it starts a writer (the only ws.Write caller)
// and a dispatcher (the only Handler caller). Sessions of one Client never overlap:
// the next starts only after serve has returned.
type session struct {
	c    *Client // Static.
	ws   *websocket.Conn
	info SessionInfo // Static.

	// ctx is canceled when the session ends; a Read or Write in progress then
	// closes the connection at once.
	ctx    context.Context
	cancel context.CancelFunc

	sendq     chan []byte         // encoded request frames for the writer
	sendBytes *semaphore.Weighted // bytes in sendq
	ackSignal chan struct{}       // cap 1: an ack may be due
	ackDue    atomic.Bool         // set by signalAck, cleared by the writer before it flushes
	reack     atomic.Bool         // a duplicate arrived: re-send the current ack

	deliveries chan *Delivery // reader -> dispatcher
	queued     atomic.Int64   // payload bytes in deliveries
	overflow   atomic.Bool    // set by the reader; no more deliveries are queued
	wake       chan struct{}  // cap 1: the reader set overflow
	lastQueued uint64         // Owned by the reader.
	connErr    *wire.Error    // Owned by the reader: the request_id 0 error frame.

	closeReq  chan struct{} // closed by shutdown: the writer closes the connection
	closeOnce sync.Once

	writerDone   chan struct{}
	dispatchDone chan struct{}

	mu          sync.Mutex // guards the fields below
	pending     map[uint32]chan reply
	ended       error // set when the session ended; no new requests
	closeCode   websocket.StatusCode
	closeReason string
	closeCause  error // why this side closed (nil if it did not)
}

func newSession(c *Client, ws *websocket.Conn, info SessionInfo) *session {
	s := &session{
		c: c, ws: ws, info: info,
		sendq:        make(chan []byte, c.cfg.SendQueueLen),
		sendBytes:    semaphore.NewWeighted(c.cfg.SendQueueBytes),
		ackSignal:    make(chan struct{}, 1),
		deliveries:   make(chan *Delivery, c.cfg.DeliveryQueueLen),
		wake:         make(chan struct{}, 1),
		lastQueued:   c.lastHandled.Load(),
		closeReq:     make(chan struct{}),
		writerDone:   make(chan struct{}),
		dispatchDone: make(chan struct{}),
		pending:      make(map[uint32]chan reply),
	}
	s.ctx, s.cancel = context.WithCancel(c.hard)
	return s
}

// serve runs the session until its connection ends and returns the cause.
func (s *session) serve() error {
	go s.writeLoop()
	go s.dispatchLoop()
	if s.c.ackWanted.Load() > s.c.ackWritten.Load() {
		s.signalAck() // an ack the previous connection could not write
	}
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
	for id, ch := range s.pending {
		ch <- reply{err: fmt.Errorf("%w: %w", ErrDisconnected, cause)}
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
func (s *session) do(ctx context.Context, method wire.Method, body []byte) (_ []byte, sent bool, _ error) {
	id := s.c.newID()
	frame := wire.Encode(&wire.Request{RequestID: id, Method: method, Body: body})
	if max := s.info.MaxFrameSize; max > 0 && len(frame) > int(max) {
		return nil, true, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(frame), max)
	}
	ch := make(chan reply, 1)
	s.mu.Lock()
	if s.ended != nil || isClosed(s.closeReq) {
		s.mu.Unlock()
		return nil, false, nil
	}
	for s.pending[id] != nil {
		id = s.c.newID()
		frame = wire.Encode(&wire.Request{RequestID: id, Method: method, Body: body})
	}
	s.pending[id] = ch
	s.mu.Unlock()

	if err := s.enqueue(ctx, frame); err != nil {
		s.forget(id)
		if s.ctx.Err() != nil && ctx.Err() == nil {
			return nil, false, nil
		}
		return nil, true, err
	}
	select {
	case r := <-ch:
		return r.body, true, r.err
	case <-ctx.Done():
		s.forget(id)
		return nil, true, ctx.Err()
	}
}

// enqueue waits for room in the send queue, bounded by count and bytes.
func (s *session) enqueue(ctx context.Context, frame []byte) error {
	n := min(int64(len(frame)), s.c.cfg.SendQueueBytes)
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
	case s.sendq <- frame:
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

// complete hands an answer to the request waiting for it. Answers to requests
// whose callers gave up are dropped.
func (s *session) complete(id uint32, r reply) {
	s.mu.Lock()
	ch := s.pending[id]
	delete(s.pending, id)
	s.mu.Unlock()
	if ch != nil {
		ch <- r
	}
}

// signalAck tells the writer an ack may be due. Only the first signal after a
// flush wakes the writer, so a burst of deliveries costs one wakeup.
func (s *session) signalAck() {
	if !s.ackDue.CompareAndSwap(false, true) {
		return
	}
	select {
	case s.ackSignal <- struct{}{}:
	default:
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// readLoop reads frames until the connection fails. After a protocol violation it
// asks the writer to close and discards frames until the close completes.
func (s *session) readLoop() error {
	violated := false
	for {
		typ, b, err := s.ws.Read(s.ctx)
		if err != nil {
			return err
		}
		if violated {
			continue
		}
		if err := s.handleFrame(typ, b); err != nil {
			violated = true
			s.c.log.Warn("client: closing connection", "err", err)
			s.shutdown(websocket.StatusProtocolError, "protocol violation", err)
		}
	}
}

func (s *session) handleFrame(typ websocket.MessageType, b []byte) error {
	if typ != websocket.MessageBinary {
		return fmt.Errorf("%w: text message", ErrProtocol)
	}
	f, err := wire.Decode(b)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	switch f := f.(type) {
	case *wire.Response:
		s.complete(f.RequestID, reply{body: f.Body})
	case *wire.Error:
		if f.RequestID == 0 {
			s.connErr = f
			return nil
		}
		s.complete(f.RequestID, reply{err: f})
	case *wire.Deliver:
		s.queueDelivery(f, time.Now())
	default:
		return fmt.Errorf("%w: unexpected %s frame", ErrProtocol, f.Type())
	}
	return nil
}

// queueDelivery drops duplicates and queues new entries for the dispatcher. When the
// queue is full it stops queueing; the dispatcher then resyncs.
func (s *session) queueDelivery(f *wire.Deliver, now time.Time) {
	c := s.c
	if c.cfg.Handler == nil {
		return
	}
	if f.Seq <= s.lastQueued {
		c.duplicates.Add(1)
		if f.Seq <= c.ackWanted.Load() {
			s.reack.Store(true)
			s.signalAck()
		}
		return
	}
	if s.overflow.Load() {
		return
	}
	n := int64(len(f.Payload))
	if q := s.queued.Load(); q > 0 && q+n > c.cfg.DeliveryQueueBytes {
		s.setOverflow()
		return
	}
	s.queued.Add(n)
	d := &Delivery{
		Seq: f.Seq, Kind: f.Kind, Payload: f.Payload, ReceivedAt: now,
		EnqueuedAt: time.UnixMilli(int64(f.EnqueuedAtMS)),
	}
	select {
	case s.deliveries <- d:
		s.lastQueued = f.Seq
	default:
		s.queued.Add(-n)
		s.setOverflow()
	}
}

func (s *session) setOverflow() {
	s.overflow.Store(true)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// dispatchLoop calls the handler for each queued delivery, in order.
func (s *session) dispatchLoop() {
	defer close(s.dispatchDone)
	c := s.c
	for {
		if c.closing.Err() != nil {
			s.shutdown(websocket.StatusNormalClosure, "", errClosing)
			return
		}
		select {
		case d := <-s.deliveries:
			s.queued.Add(-int64(len(d.Payload)))
			if err := s.handle(d); err != nil {
				if s.ctx.Err() == nil {
					c.log.Warn("client: delivery handler failed", "seq", d.Seq, "err", err)
				}
				s.shutdown(websocket.StatusNormalClosure, "", fmt.Errorf("%w: seq %d: %w", ErrHandler, d.Seq, err))
				return
			}
		case <-s.wake:
		case <-c.closing.Done():
			continue
		case <-s.ctx.Done():
			return
		}
		if s.overflow.Load() && len(s.deliveries) == 0 {
			s.shutdown(websocket.StatusNormalClosure, "", errResync)
			return
		}
	}
}

func (s *session) handle(d *Delivery) error {
	c := s.c
	c.seen.Store(d.Seq)
	if err := c.cfg.Handler(s.ctx, d); err != nil {
		return err
	}
	c.lastHandled.Store(d.Seq)
	c.delivered.Add(1)
	if !c.cfg.ManualAck {
		c.ackWanted.Store(d.Seq)
		s.signalAck()
	}
	return nil
}

// writeLoop writes queued requests and coalesced acks, pings, and on shutdown
// flushes the ack and closes the connection.
func (s *session) writeLoop() {
	defer close(s.writerDone)
	var ackC, pingC <-chan time.Time
	if d := s.c.cfg.PingInterval; d > 0 {
		t := time.NewTicker(d)
		defer t.Stop()
		pingC = t.C
	}
	var ackTimer *time.Timer
	defer func() {
		if ackTimer != nil {
			ackTimer.Stop()
		}
	}()
	var pinging atomic.Bool
	for {
		var err error
		select {
		case <-s.ctx.Done():
			return
		case <-s.closeReq:
			s.closeConn()
			return
		case frame := <-s.sendq:
			err = s.write(frame)
			s.sendBytes.Release(min(int64(len(frame)), s.c.cfg.SendQueueBytes))
		case <-s.ackSignal:
			if d := s.c.cfg.AckDelay; d < 0 {
				s.ackDue.Store(false)
				err = s.flushAck()
			} else if ackC == nil {
				ackTimer = time.NewTimer(d)
				ackC = ackTimer.C
			}
		case <-ackC:
			ackC = nil
			s.ackDue.Store(false)
			err = s.flushAck()
		case <-pingC:
			if pinging.CompareAndSwap(false, true) {
				go s.ping(&pinging)
			}
		}
		if err != nil {
			if s.ctx.Err() == nil {
				s.c.log.Debug("client: write failed", "err", err)
			}
			s.ws.CloseNow()
			return
		}
	}
}

func (s *session) closeConn() {
	s.ackDue.Store(false)
	if err := s.flushAck(); err != nil {
		s.ws.CloseNow()
		return
	}
	s.mu.Lock()
	code, reason := s.closeCode, s.closeReason
	s.mu.Unlock()
	s.ws.Close(code, reason)
}

func (s *session) write(frame []byte) error {
	ctx, cancel := context.WithTimeout(s.ctx, s.c.cfg.WriteTimeout)
	defer cancel()
	return s.ws.Write(ctx, websocket.MessageBinary, frame)
}

// flushAck writes an ack for everything handled since the last one, or repeats the
// last one when a duplicate showed the server did not get it.
func (s *session) flushAck() error {
	c := s.c
	want := c.ackWanted.Load()
	if want == 0 || (want <= c.ackWritten.Load() && !s.reack.Swap(false)) {
		return nil
	}
	if err := s.write(wire.Encode(&wire.Ack{Seq: want})); err != nil {
		return err
	}
	c.acksSent.Add(1)
	for {
		old := c.ackWritten.Load()
		if want <= old || c.ackWritten.CompareAndSwap(old, want) {
			return nil
		}
	}
}

// ping checks that the server still answers; a missing pong drops the connection.
func (s *session) ping(busy *atomic.Bool) {
	defer busy.Store(false)
	ctx, cancel := context.WithTimeout(s.ctx, s.c.cfg.WriteTimeout)
	defer cancel()
	if err := s.ws.Ping(ctx); err != nil && s.ctx.Err() == nil {
		s.c.log.Info("client: ping failed, dropping connection", "err", err)
		s.ws.CloseNow()
	}
}
