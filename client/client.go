package client

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/protocol"
)

// SessionInfo is what the server said when it accepted the device token.
type SessionInfo struct {
	ClientID     string // mimi://<domain>/d/<user>/<client>
	UserID       string // mimi://<domain>/u/<user>
	Pending      uint64 // mailbox entries waiting at authentication time
	MaxFrameSize uint32 // largest frame the server reads
	// Incarnation names the history of the provider's store (hex; "" if the server
	// names none). It changes when the store lost committed writes or was restored.
	Incarnation string
	// StoreReset is set when Incarnation differs from the one the client knew
	// (Config.Incarnation, or an earlier connection's): the client dropped its marks
	// (LastSeq and the duplicate filter) and takes every mailbox entry the server
	// now delivers, and Feeds start their partitions over (FeedEvent.Reset).
	StoreReset bool
}

// Delivery is one mailbox entry.
type Delivery struct {
	Seq        uint64
	Kind       protocol.Kind
	EnqueuedAt time.Time // when the server committed the entry (millisecond precision)
	ReceivedAt time.Time // when the client read the frame
	Payload    []byte
}

// Notice decodes the payload of a protocol.KindNotice entry.
func (d *Delivery) Notice() (protocol.Notice, error) {
	var n protocol.Notice
	if d.Kind != protocol.KindNotice {
		return n, fmt.Errorf("%w: delivery %d is %s, not a notice", ErrProtocol, d.Seq, d.Kind)
	}
	err := n.UnmarshalBinary(d.Payload)
	return n, err
}

// Stats are cumulative counters of a Client.
type Stats struct {
	Connects    uint64 // successful authentications
	Disconnects uint64 // connections that ended
	Delivered   uint64 // deliveries the handler accepted
	Duplicates  uint64 // deliveries dropped because their seq was already handled
	Resyncs     uint64 // reconnects forced by a delivery queue overflow
	AcksSent    uint64 // ack frames written
	StoreResets uint64 // authentications that found a new store incarnation (SessionInfo.StoreReset)
}

// stableSession is how long a connection must last for the reconnect backoff to
// start again from Config.MinBackoff.
const stableSession = 10 * time.Second

// Client is a connection to a mimids provider's client socket that authenticates,
// pipelines requests, hands mailbox deliveries to a Handler in order, acknowledges
// them, and reconnects and resumes on its own. Its methods are safe for concurrent use.
type Client struct {
	cfg Config       // Static after Dial (defaults applied).
	log *slog.Logger // Static.

	// closing is canceled by Close: stop handling, flush acks, close cleanly.
	closing       context.Context
	cancelClosing context.CancelFunc
	// hard is canceled when Close's context expires or run ends: abort everything.
	hard       context.Context
	cancelHard context.CancelFunc
	done       chan struct{} // closed when run returns

	nextID      atomic.Uint32
	seen        atomic.Uint64 // highest seq passed to the handler
	lastHandled atomic.Uint64 // highest seq the handler accepted
	ackWanted   atomic.Uint64 // highest seq to acknowledge
	committed   atomic.Uint64 // highest seq whose ack the server is known to have committed

	connects, disconnects, delivered, duplicates, resyncs, acksSent, storeResets atomic.Uint64

	mu          sync.Mutex    // guards the fields below
	cur         *session      // the live session, nil while reconnecting
	ready       chan struct{} // closed while cur != nil
	info        SessionInfo
	incarnation string // the store incarnation the marks belong to ("" unknown)
	err         error  // terminal error, set before done is closed
}

// Dial connects to cfg.URL, authenticates with cfg.Token and returns a running
// Client. The first connection is made in the caller's goroutine and its failure is
// returned (nothing is retried); after that the client reconnects by itself until
// Close or a terminal error (see Err).
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := newClient(cfg.withDefaults())
	s, err := c.connect(ctx)
	if err != nil {
		c.cancelClosing()
		c.cancelHard()
		return nil, err
	}
	c.setSession(s)
	go c.run(s)
	return c, nil
}

// newClient returns a Client that is not connected; cfg has its defaults applied.
func newClient(cfg Config) *Client {
	c := &Client{cfg: cfg, log: cfg.Logger, done: make(chan struct{}), ready: make(chan struct{})}
	c.closing, c.cancelClosing = context.WithCancel(context.Background())
	c.hard, c.cancelHard = context.WithCancel(context.Background())
	c.lastHandled.Store(cfg.LastSeq)
	c.seen.Store(cfg.LastSeq)
	c.ackWanted.Store(cfg.LastSeq)
	c.incarnation = cfg.Incarnation
	return c
}

// Do sends a request and waits for its answer. An error frame from the server is
// returned as a *protocol.Error. If the client is reconnecting, Do waits for the next
// connection. A request whose connection is lost fails with ErrDisconnected (it is
// not retried: it may have been processed).
func (c *Client) Do(ctx context.Context, method protocol.Method, body []byte) ([]byte, error) {
	for {
		s, err := c.waitSession(ctx)
		if err != nil {
			return nil, err
		}
		resp, sent, err := s.do(ctx, method, body, false)
		if sent || err == nil {
			return resp, err
		}
		// The session ended before the request was queued: try the next one.
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
	}
}

// Ping sends a ping request and returns the round-trip time.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	if _, err := c.Do(ctx, protocol.MethodPing, nil); err != nil {
		return 0, fmt.Errorf("client: ping: %w", err)
	}
	return time.Since(start), nil
}

// MailboxStatus asks how many mailbox entries are waiting for this client.
func (c *Client) MailboxStatus(ctx context.Context) (protocol.MailboxStatus, error) {
	var st protocol.MailboxStatus
	b, err := c.Do(ctx, protocol.MethodMailboxStatus, nil)
	if err != nil {
		return st, fmt.Errorf("client: mailbox status: %w", err)
	}
	if err := st.UnmarshalBinary(b); err != nil {
		return st, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return st, nil
}

// Ack acknowledges every entry up to seq (Config.ManualAck mode; harmless
// otherwise). seq must not exceed the last seq passed to the handler; the handler
// itself may ack the delivery it is processing. Ack does not block: the ack frame is
// written, coalesced with others, on the current connection or the next one.
func (c *Client) Ack(seq uint64) error {
	if seq > c.seen.Load() {
		return fmt.Errorf("%w: %d > %d", ErrAckAhead, seq, c.seen.Load())
	}
	for {
		old := c.ackWanted.Load()
		if seq <= old || c.ackWanted.CompareAndSwap(old, seq) {
			break
		}
	}
	c.mu.Lock()
	s := c.cur
	c.mu.Unlock()
	if s != nil {
		s.signalAck()
	}
	return nil
}

// LastSeq returns the highest seq the handler accepted; persist it and pass it as
// Config.LastSeq to resume deduplication in a later process, with Incarnation.
func (c *Client) LastSeq() uint64 { return c.lastHandled.Load() }

// Incarnation returns the store incarnation LastSeq belongs to (hex, "" before the
// first server that names one); persist it with LastSeq and pass it as
// Config.Incarnation.
func (c *Client) Incarnation() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.incarnation
}

// Flush writes the ack that is due at once (ignoring Config.AckDelay) and waits until
// the server has committed it: it sends a ping right behind the ack, and the server
// handles an ack before it reads the next frame (docs/protocol.md §1.4). It returns
// AckedSeq. An entry handled on an earlier connection is acknowledged only once the
// server redelivers it, so AckedSeq may stay below LastSeq until then.
func (c *Client) Flush(ctx context.Context) (uint64, error) {
	for {
		s, err := c.waitSession(ctx)
		if err != nil {
			return c.committed.Load(), err
		}
		_, sent, err := s.do(ctx, protocol.MethodPing, nil, true)
		if sent || err == nil {
			if err != nil {
				err = fmt.Errorf("client: flush: %w", err)
			}
			return c.committed.Load(), err
		}
		if ctx.Err() != nil {
			return c.committed.Load(), ctx.Err()
		}
	}
}

// AckedSeq returns the highest seq whose ack the server has committed, as proved by
// an answer to a request sent after the ack. See Flush.
func (c *Client) AckedSeq() uint64 { return c.committed.Load() }

func (c *Client) raiseCommitted(seq uint64) {
	for {
		old := c.committed.Load()
		if seq <= old || c.committed.CompareAndSwap(old, seq) {
			return
		}
	}
}

// Session returns what the server said at the latest authentication.
func (c *Client) Session() SessionInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.info
}

// Connected reports whether an authenticated connection is up.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur != nil
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		Connects: c.connects.Load(), Disconnects: c.disconnects.Load(),
		Delivered: c.delivered.Load(), Duplicates: c.duplicates.Load(),
		Resyncs: c.resyncs.Load(), AcksSent: c.acksSent.Load(), StoreResets: c.storeResets.Load(),
	}
}

// Done is closed when the client has stopped: after Close, or on a terminal error.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns the terminal error that stopped the client (ErrAuthFailed, ErrRevoked,
// ErrFrameTooBig, ErrRejected, ErrSubprotocol or ErrGaveUp, wrapped with details),
// or nil while it runs or after a plain Close.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close stops the client: the delivery in progress finishes, pending acks are
// flushed, and the connection is closed with a normal close frame. If ctx expires
// first, the connection is dropped at once, the handler's context is canceled, and
// Close returns ctx.Err(). Close is idempotent. Do not call it from the Handler
// (Close waits for the handler to return): cancel from another goroutine.
func (c *Client) Close(ctx context.Context) error {
	c.cancelClosing()
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		c.cancelHard()
		return fmt.Errorf("client: close: %w", ctx.Err())
	}
}

// waitSession returns the live session, waiting while the client reconnects.
func (c *Client) waitSession(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		s, ready := c.cur, c.ready
		c.mu.Unlock()
		if s != nil {
			return s, nil
		}
		select {
		case <-ready:
		case <-c.closing.Done():
			return nil, c.closedErr()
		case <-c.done:
			return nil, c.closedErr()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (c *Client) closedErr() error {
	if err := c.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return ErrClosed
}

func (c *Client) newID() uint32 {
	for {
		if id := c.nextID.Add(1); id != 0 {
			return id
		}
	}
}

// connect dials, authenticates, and returns a session ready to serve.
func (c *Client) connect(ctx context.Context) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.HandshakeTimeout)
	defer cancel()
	opts := &websocket.DialOptions{HTTPClient: c.cfg.HTTPClient, Subprotocols: []string{protocol.Subprotocol}}
	if c.cfg.Origin != "" {
		opts.HTTPHeader = http.Header{"Origin": {c.cfg.Origin}}
	}
	ws, resp, err := websocket.Dial(ctx, c.cfg.URL, opts)
	if err != nil {
		if resp != nil && resp.StatusCode >= 400 && resp.StatusCode < 500 &&
			resp.StatusCode != http.StatusRequestTimeout && resp.StatusCode != http.StatusTooManyRequests {
			return nil, fmt.Errorf("%w: HTTP %d: %w", ErrRejected, resp.StatusCode, err)
		}
		return nil, fmt.Errorf("client: dial: %w", err)
	}
	if ws.Subprotocol() != protocol.Subprotocol {
		ws.Close(websocket.StatusProtocolError, "subprotocol "+protocol.Subprotocol+" required")
		return nil, ErrSubprotocol
	}
	ws.SetReadLimit(c.cfg.ReadLimit)
	info, first, err := c.authenticate(ctx, ws)
	if err != nil {
		ws.CloseNow()
		return nil, err
	}
	c.adoptIncarnation(&info)
	c.connects.Add(1)
	c.log.Debug("client: connected", "client_id", info.ClientID, "pending", info.Pending)
	return newSession(c, ws, info, first), nil
}

// adoptIncarnation records the session and, when the server's store incarnation is
// not the one the marks belong to, drops the marks: the store went back (or was
// restored), so seqs the client handled may be handed out again to new entries,
// which the duplicate filter would otherwise drop unseen. It runs before the
// session's goroutines start, between sessions.
func (c *Client) adoptIncarnation(info *SessionInfo) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if info.Incarnation != "" && c.incarnation != "" && info.Incarnation != c.incarnation {
		info.StoreReset = true
		c.log.Warn("client: the provider's store has a new incarnation: starting the marks over",
			"was", c.incarnation, "now", info.Incarnation, "last_seq", c.lastHandled.Load())
		for _, m := range []*atomic.Uint64{&c.lastHandled, &c.seen, &c.ackWanted, &c.committed} {
			m.Store(0)
		}
		c.storeResets.Add(1)
	}
	if info.Incarnation != "" {
		c.incarnation = info.Incarnation
	}
	c.info = *info
}

// authenticate sends the auth frame and reads the answer, and returns the frames
// that shared auth_ok's WebSocket message (the server may pack the first deliver
// frames with it, docs/protocol.md §1.3). It runs before the session's reader and
// writer start, so it is the only goroutine using ws.
func (c *Client) authenticate(ctx context.Context, ws *websocket.Conn) (SessionInfo, []byte, error) {
	id := c.newID()
	if err := ws.Write(ctx, websocket.MessageBinary, protocol.Encode(&protocol.Auth{RequestID: id, Token: []byte(c.cfg.Token)})); err != nil {
		return SessionInfo{}, nil, fmt.Errorf("client: auth: %w", err)
	}
	typ, b, err := ws.Read(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return SessionInfo{}, nil, fmt.Errorf("client: auth: no answer: %w", ctx.Err())
		}
		return SessionInfo{}, nil, fmt.Errorf("client: auth: %w", classifyRead(err, nil))
	}
	if typ != websocket.MessageBinary {
		return SessionInfo{}, nil, fmt.Errorf("%w: auth answered with a text message", ErrProtocol)
	}
	f, rest, err := protocol.Next(b)
	if err != nil {
		return SessionInfo{}, nil, fmt.Errorf("%w: auth answer: %w", ErrProtocol, err)
	}
	switch f := f.(type) {
	case *protocol.AuthOK:
		if f.RequestID != id {
			return SessionInfo{}, nil, fmt.Errorf("%w: auth_ok for request %d, sent %d", ErrProtocol, f.RequestID, id)
		}
		return SessionInfo{ClientID: f.ClientID, UserID: f.UserID, Pending: f.Pending, MaxFrameSize: f.MaxFrameSize,
			Incarnation: hex.EncodeToString(f.Incarnation)}, rest, nil
	case *protocol.Error:
		return SessionInfo{}, nil, authRefused(ctx, ws, f)
	}
	return SessionInfo{}, nil, fmt.Errorf("%w: auth answered with %s", ErrProtocol, f.Type())
}

// authRefused classifies an error frame answering auth by the close code that
// follows it: 4001 (and a bare unauthorized error) is terminal, 4002 (the auth frame
// arrived too late) is not.
func authRefused(ctx context.Context, ws *websocket.Conn, f *protocol.Error) error {
	_, _, err := ws.Read(ctx)
	cause := classifyRead(err, f)
	var de *DisconnectError
	switch {
	case terminal(cause):
		return fmt.Errorf("client: auth: %w", cause)
	case errors.As(cause, &de) && de.Code == protocol.CloseAuthTimeout:
		return fmt.Errorf("client: auth: %w", de)
	case f.Code == protocol.CodeUnauthorized:
		return fmt.Errorf("%w: %w", ErrAuthFailed, cause)
	}
	return fmt.Errorf("client: auth: %w", cause)
}

// run serves sessions and reconnects between them until Close or a terminal error.
func (c *Client) run(s *session) {
	defer close(c.done)
	defer c.cancelHard()
	failures := 0
	for s != nil {
		c.setSession(s)
		if c.cfg.OnConnect != nil {
			c.cfg.OnConnect(s.info)
		}
		start := time.Now()
		cause := s.serve()
		c.setSession(nil)
		c.disconnects.Add(1)
		if c.closing.Err() != nil || errors.Is(cause, errClosing) {
			return
		}
		if c.cfg.OnDisconnect != nil {
			c.cfg.OnDisconnect(cause)
		}
		if terminal(cause) {
			c.log.Warn("client: stopped", "err", cause)
			c.finish(cause)
			return
		}
		if time.Since(start) >= stableSession {
			failures = 0
		}
		var delay time.Duration
		if errors.Is(cause, errResync) {
			c.resyncs.Add(1)
		} else {
			delay = c.backoff(failures)
			failures++
		}
		c.log.Info("client: disconnected, reconnecting", "err", cause, "delay", delay)
		var err error
		s, err = c.reconnect(delay, &failures)
		if err != nil {
			c.log.Warn("client: stopped", "err", err)
			c.finish(err)
			return
		}
	}
}

// reconnect waits delay, then connects with backoff until it succeeds, the client
// is closed (nil, nil), or the error is terminal.
func (c *Client) reconnect(delay time.Duration, failures *int) (*session, error) {
	for attempts := 1; ; attempts++ {
		t := time.NewTimer(delay)
		select {
		case <-c.closing.Done():
			t.Stop()
			return nil, nil
		case <-t.C:
		}
		s, err := c.connect(c.closing)
		switch {
		case err == nil:
			return s, nil
		case c.closing.Err() != nil:
			return nil, nil
		case terminal(err):
			return nil, err
		case c.cfg.MaxReconnectAttempts > 0 && attempts >= c.cfg.MaxReconnectAttempts:
			return nil, fmt.Errorf("%w after %d attempts: %w", ErrGaveUp, attempts, err)
		}
		delay = c.backoff(*failures)
		*failures++
		c.log.Debug("client: reconnect failed", "err", err, "attempt", attempts, "delay", delay)
	}
}

// backoff returns the delay before reconnect attempt n (from 0): exponential from
// MinBackoff, capped at MaxBackoff, with equal jitter.
func (c *Client) backoff(n int) time.Duration {
	return backoffDelay(n, c.cfg.MinBackoff, c.cfg.MaxBackoff)
}

func backoffDelay(n int, lo, hi time.Duration) time.Duration {
	d := hi
	if n < 32 && lo<<n > 0 && lo<<n < hi {
		d = lo << n
	}
	half := d / 2
	return half + rand.N(d-half+1)
}

func (c *Client) setSession(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s == c.cur {
		return
	}
	c.cur = s
	if s != nil {
		close(c.ready)
	} else {
		c.ready = make(chan struct{})
	}
}

func (c *Client) finish(err error) {
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
}
