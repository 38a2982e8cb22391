package client

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/protocol"
)

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
		case m := <-s.sendq:
			err = s.writeRequest(m)
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

func (s *session) writeRequest(m outMsg) error {
	defer s.sendBytes.Release(min(int64(len(m.frame)), s.c.cfg.SendQueueBytes))
	if m.flushAck {
		if err := s.flushAck(); err != nil {
			return err
		}
	}
	m.req.ackMark.Store(s.ackSent)
	return s.write(m.frame)
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

// flushAck acknowledges everything handled, but never a seq the server has not yet
// delivered on this socket (it would refuse that): an entry handled on an earlier
// connection is acknowledged here once its redelivery arrives.
func (s *session) flushAck() error {
	c := s.c
	seq := min(c.ackWanted.Load(), s.delivered.Load())
	if seq <= s.ackSent {
		return nil
	}
	if err := s.write(protocol.Encode(&protocol.Ack{Seq: seq})); err != nil {
		return err
	}
	s.ackSent = seq
	c.acksSent.Add(1)
	return nil
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
