package federation

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/gateway/conn"
	"github.com/mimids/mimids/protocol"
)

// Close code for a failure of this side's store (RFC 6455 1011).
const closeInternal = 1011

// link is one WebSocket with a peer: the sending side of our queue (a window of
// envelopes refilled from the store as the peer answers) and the receiving side of
// the peer's (envelopes applied in order by one processor goroutine). The reader
// is conn's; answers are committed in batches by an acker goroutine.
type link struct {
	// Static after construction.
	l      *Links
	ps     *peerState
	c      *conn.Conn
	dialer string // the domain that dialled this link
	stream uint64 // the peer's outbound stream: what it sends on this link

	in       chan *protocol.Envelope // received, to the processor
	inBytes  atomic.Int64            // bodies received and not yet answered
	ackWake  chan struct{}           // tells the acker there are answers
	progress atomic.Bool             // the peer answered or sent something

	mu            sync.Mutex         // taken before the conn's own lock, never after
	more          bool               // the queue may hold envelopes after lastSent; Guarded by mu.
	lastSent      uint64             // highest id put in the send queue; Guarded by mu.
	inflight      map[uint64]*Answer // sent and not answered, by id; Guarded by mu.
	inflightBytes int                // Guarded by mu.
	answers       []*Answer          // answered, not yet committed; Guarded by mu.
}

func newLink(l *Links, ps *peerState, ws *websocket.Conn, dialer string, stream uint64) *link {
	lk := &link{l: l, ps: ps, dialer: dialer, stream: stream, more: true,
		in: make(chan *protocol.Envelope, protocol.MaxWindow), ackWake: make(chan struct{}, 1),
		inflight: map[uint64]*Answer{}}
	lk.c = conn.New(ws, l.connCfg, lk, ps.log.With("dialer", dialer))
	return lk
}

// run serves the link until it closes: conn's reader and writer, the processor and
// the acker. It returns as soon as the connection has ended, so that the peer can
// be dialled again; wait waits for the processor (which may be finishing an
// envelope) and the acker (which commits the answers received before the end).
func (lk *link) run(ctx context.Context) (wait func(), err error) {
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(2)
	go func() { defer wg.Done(); lk.processLoop(ctx) }()
	go func() { defer wg.Done(); lk.ackLoop(ctx, done) }()
	err = lk.c.Run(ctx)
	close(done)
	return wg.Wait, err
}

// wake tells the writer that the queue has more.
func (lk *link) wake() {
	lk.mu.Lock()
	lk.more = true
	lk.mu.Unlock()
	lk.c.Wake()
}

// fail sends a link-level error, then closes with code (whose reason, at most 123
// bytes on the wire, is the error code's name: the message travels in the error).
func (lk *link) fail(code int, ecode protocol.Code, msg string) error {
	b, _ := protocol.EncodeLink(&protocol.EnvelopeError{Code: ecode, Message: truncate([]byte(msg), protocol.MaxEnvelopeMessage)})
	lk.c.CloseWith(b, websocket.StatusCode(code), ecode.String())
	return fmt.Errorf("federation: %s: %s", ecode, msg)
}

// Receive implements conn.Handler: a WebSocket message holds link frames back to
// back.
func (lk *link) Receive(ctx context.Context, typ websocket.MessageType, msg []byte) error {
	if typ != websocket.MessageBinary {
		return lk.fail(protocol.CloseProtocolError, protocol.CodeMalformed, "link frames are binary messages")
	}
	if len(msg) == 0 {
		return lk.fail(protocol.CloseProtocolError, protocol.CodeMalformed, "empty message")
	}
	for len(msg) > 0 {
		f, rest, err := protocol.NextLink(msg)
		if err != nil {
			if errors.Is(err, protocol.ErrTooLarge) {
				return lk.fail(protocol.CloseTooBig, protocol.CodeTooLarge, err.Error())
			}
			return lk.fail(protocol.CloseProtocolError, protocol.CodeMalformed, err.Error())
		}
		lk.progress.Store(true)
		switch f := f.(type) {
		case *protocol.Envelope:
			err = lk.received(f)
		case *protocol.EnvelopeAck:
			err = lk.answered(f.ID, &Answer{Body: f.Body})
		case *protocol.EnvelopeError:
			if f.ID == 0 {
				lk.ps.noteError(fmt.Sprintf("peer reported: %s: %s", f.Code, f.Message))
				lk.ps.log.Warn("federation: the peer reported a link error", "code", f.Code.String(), "detail", f.Message)
				break
			}
			err = lk.answered(f.ID, &Answer{Err: f})
		}
		if err != nil {
			return err
		}
		msg = rest
	}
	return nil
}

// received hands an envelope to the processor; a peer over the window is refused.
func (lk *link) received(e *protocol.Envelope) error {
	n := lk.inBytes.Add(int64(len(e.Body)))
	if n > protocol.MaxWindowBytes && n != int64(len(e.Body)) {
		return lk.fail(protocol.CloseProtocolError, protocol.CodeProtocol,
			fmt.Sprintf("more than %d bytes of envelopes unanswered", protocol.MaxWindowBytes))
	}
	select {
	case lk.in <- e:
		return nil
	default:
		return lk.fail(protocol.CloseProtocolError, protocol.CodeProtocol,
			fmt.Sprintf("more than %d envelopes unanswered", protocol.MaxWindow))
	}
}

// processLoop applies what the peer sends, in order, and queues each reply.
func (lk *link) processLoop(runCtx context.Context) {
	connCtx := lk.c.Context()
	for {
		var e *protocol.Envelope
		select {
		case e = <-lk.in:
		case <-connCtx.Done():
			return
		}
		// Applied with Run's context: a link that ends does not abort a handler
		// half-way; the reply is recorded and a retry gets it.
		rep, err := lk.ps.apply(runCtx, lk.stream, e)
		lk.inBytes.Add(-int64(len(e.Body)))
		if err != nil {
			if runCtx.Err() == nil {
				lk.ps.log.Warn("federation: could not apply an envelope; the peer will retry", "id", e.ID, "type", e.Type, "err", err)
			}
			lk.c.Close(protocol.CloseTryAgainLater, "try again later")
			return
		}
		var f protocol.LinkFrame = &protocol.EnvelopeAck{ID: e.ID, Body: rep.Body}
		if rep.Code != 0 {
			f = &protocol.EnvelopeError{ID: e.ID, Code: rep.Code, Message: truncate(rep.Body, protocol.MaxEnvelopeMessage)}
		}
		b, err := protocol.EncodeLink(f)
		if err != nil { // an ack body over the varint limit: the handler's bug
			b, _ = protocol.EncodeLink(&protocol.EnvelopeError{ID: e.ID, Code: protocol.CodeInternal, Message: err.Error()})
		}
		if !lk.c.Enqueue(b) {
			return
		}
	}
}

// truncate cuts b to at most n bytes, at a UTF-8 boundary.
func truncate(b []byte, n int) string {
	if len(b) > n {
		for n > 0 && !utf8.RuneStart(b[n]) {
			n--
		}
		b = b[:n]
	}
	return string(b)
}

// answered takes the peer's answer to an envelope in flight on this link.
func (lk *link) answered(id uint64, a *Answer) error {
	lk.mu.Lock()
	sent, ok := lk.inflight[id]
	if ok {
		delete(lk.inflight, id)
		lk.inflightBytes -= len(sent.Sent)
		a.Peer, a.ID, a.Type, a.Sent = sent.Peer, id, sent.Type, sent.Sent
		lk.answers = append(lk.answers, a)
	}
	lk.mu.Unlock()
	if !ok {
		return lk.fail(protocol.CloseProtocolError, protocol.CodeProtocol, fmt.Sprintf("answer to envelope %d, which is not in flight", id))
	}
	select {
	case lk.ackWake <- struct{}{}:
	default:
	}
	lk.c.Wake() // the window has room
	return nil
}

// ackLoop commits answers in batches (removing the envelopes from the queue, with
// the OnAnswer functions in the same transaction), then hands them to Calls. After
// the link ends it commits what was answered, and returns.
func (lk *link) ackLoop(runCtx context.Context, done <-chan struct{}) {
	for {
		stop := false
		select {
		case <-lk.ackWake:
		case <-done:
			stop = true
		}
		lk.mu.Lock()
		batch := lk.answers
		lk.answers = nil
		lk.mu.Unlock()
		if len(batch) > 0 {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(runCtx), 10*time.Second)
			err := lk.l.commitAnswers(ctx, lk.ps.domain, batch)
			cancel()
			if err != nil {
				lk.ps.log.Warn("federation: could not commit answers; the envelopes will be sent again", "err", err)
				lk.c.Close(closeInternal, "store failed")
				return
			}
		}
		if stop {
			return
		}
	}
}

// commitAnswers removes answered envelopes from peer's queue with their OnAnswer
// functions in the same transaction, then hands the answers to waiting Calls. An
// envelope answered on two links (a link replaced while it was in flight) is
// removed, and handed on, once.
func (l *Links) commitAnswers(ctx context.Context, peer string, batch []*Answer) error {
	ids := make([]uint64, len(batch))
	byID := make(map[uint64]*Answer, len(batch))
	for i, a := range batch {
		ids[i] = a.ID
		byID[a.ID] = a
	}
	var done []*Answer
	removed, err := l.store.Acked(ctx, peer, ids, func(ctx context.Context, removed []uint64) error {
		done = done[:0]
		for _, id := range removed {
			a := byID[id]
			if a == nil {
				continue
			}
			done = append(done, a)
			if f := l.answers[a.Type]; f != nil {
				if err := f(ctx, a); err != nil {
					return fmt.Errorf("answer to %s/%d: %w", peer, a.ID, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	l.counters.answered.Add(uint64(len(removed)))
	l.answered(done)
	return nil
}

// RefillPending implements conn.Refiller: the queue may have more and the window
// has room.
func (lk *link) RefillPending() bool {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	return lk.more && len(lk.inflight) < lk.l.cfg.Window && lk.inflightBytes < lk.l.cfg.WindowBytes
}

// Refill implements conn.Refiller: it reads the next envelopes of the queue, as
// many as the window allows, into the send queue.
func (lk *link) Refill(ctx context.Context) error {
	cfg := &lk.l.cfg
	lk.mu.Lock()
	after, n, room := lk.lastSent, cfg.Window-len(lk.inflight), cfg.WindowBytes-lk.inflightBytes
	lk.more = false // a Send committed from now on sets it again
	lk.mu.Unlock()
	qs, err := lk.l.store.Pending(ctx, lk.ps.domain, after, n, max(room, 1))
	if err != nil {
		if ctx.Err() == nil {
			lk.ps.log.Warn("federation: could not read the queue", "err", err)
			lk.c.Close(closeInternal, "store failed")
		}
		return err
	}
	lk.mu.Lock()
	defer lk.mu.Unlock()
	for _, q := range qs {
		b, err := protocol.EncodeLink(&protocol.Envelope{ID: q.ID, Type: q.Type, Body: q.Body})
		if err != nil {
			return err // bodies are bounded at Send
		}
		if !lk.c.TryEnqueue(b) {
			break
		}
		lk.inflight[q.ID] = &Answer{Peer: lk.ps.domain, Type: q.Type, Sent: q.Body}
		lk.inflightBytes += len(q.Body)
		lk.lastSent = q.ID
	}
	if len(qs) > 0 {
		lk.more = true // there may be more once the window has room
	}
	return nil
}
