package client

import (
	"bytes"
	"fmt"
	"time"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/protocol"
)

// readLoop reads frames until the connection fails. After a protocol violation it
// asks the writer to close and discards frames until the close completes.
func (s *session) readLoop() error {
	violated := false
	handle := func(typ websocket.MessageType, b []byte) {
		if err := s.handleMessage(typ, b); err != nil {
			violated = true
			s.c.log.Warn("client: closing connection", "err", err)
			s.shutdown(websocket.StatusProtocolError, "protocol violation", err)
		}
	}
	if len(s.first) > 0 {
		handle(websocket.MessageBinary, s.first)
		s.first = nil
	}
	for {
		typ, b, err := s.ws.Read(s.ctx)
		if err != nil {
			return err
		}
		if !violated {
			handle(typ, b)
		}
	}
}

// handleMessage handles the frames of one WebSocket message: the server packs
// several back to back when the client is behind (docs/protocol.md §1.1).
func (s *session) handleMessage(typ websocket.MessageType, b []byte) error {
	if typ != websocket.MessageBinary {
		return fmt.Errorf("%w: text message", ErrProtocol)
	}
	if len(b) == 0 {
		return fmt.Errorf("%w: %w", ErrProtocol, protocol.ErrEmpty)
	}
	now := time.Now()
	for batched := false; len(b) > 0; batched = true {
		f, rest, err := protocol.Next(b)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrProtocol, err)
		}
		if err := s.handleFrame(f, now, batched || len(rest) > 0); err != nil {
			return err
		}
		b = rest
	}
	return nil
}

// handleFrame handles one frame; batched says it shares its message with others.
func (s *session) handleFrame(f protocol.Frame, now time.Time, batched bool) error {
	switch f := f.(type) {
	case *protocol.Response:
		s.complete(f.RequestID, reply{body: f.Body})
	case *protocol.Error:
		if f.RequestID == 0 {
			s.connErr = f
			s.c.log.Info("client: connection error from server", "err", f)
			return nil
		}
		s.complete(f.RequestID, reply{err: f})
	case *protocol.Deliver:
		if batched { // do not let a retained payload pin the whole batch
			f.Payload = bytes.Clone(f.Payload)
		}
		s.queueDelivery(f, now)
	case *protocol.Push, *protocol.PartitionEvent:
		if h := s.c.cfg.OnPush; h != nil {
			h(f)
		}
	default:
		return fmt.Errorf("%w: unexpected %s frame", ErrProtocol, f.Type())
	}
	return nil
}

// queueDelivery drops duplicates and queues new entries for the dispatcher. When the
// queue is full it stops queueing; the dispatcher then resyncs.
func (s *session) queueDelivery(f *protocol.Deliver, now time.Time) {
	c := s.c
	if f.Seq > s.delivered.Load() {
		s.delivered.Store(f.Seq) // only the reader stores
	}
	if c.cfg.Handler == nil {
		return
	}
	if f.Seq <= s.lastQueued {
		c.duplicates.Add(1)
		if f.Seq <= c.ackWanted.Load() {
			s.signalAck() // handled before: acknowledge it on this socket
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
