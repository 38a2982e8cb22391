// Package conn is one WebSocket connection as every edge of a provider serves it: a
// reader goroutine (the only Read caller) that hands each message to the protocol on
// top, a send queue bounded in count and bytes whose Enqueue never blocks (and, across
// connections, by shared byte budgets: Budget), a writer
// goroutine (the only caller of Write for queued messages) that exists only while
// something is queued, a write timeout, a periodic ping, and a close reason that is
// logged and counted once.
//
// A connection made from an accepted Socket (Accept, NewSocket) also writes without
// ever blocking its caller, so Flush lets a fan-out write on its own goroutine
// (socket.go).
//
// An idle connection costs one goroutine (its reader) and, on a Socket, no read or
// write buffer of its own (buffers.go); on other connections the socket's buffers. The
// protocol on top (client sockets in gateway/, federation sockets later) implements
// Handler and, if it keeps what the queue cannot hold elsewhere, Refiller. The
// package knows no protocol: close codes and their names come in through Config.
package conn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// Config tunes connections. One Config is shared by every connection of a server and
// must not change once a connection uses it.
type Config struct {
	// MaxMessageBytes is the read limit of one received message; 0 keeps
	// coder/websocket's default (32 KiB).
	MaxMessageBytes int64
	// MaxQueueMessages and MaxQueueBytes bound what waits to be written.
	MaxQueueMessages int
	MaxQueueBytes    int
	// Total, if set, is charged for what every connection sharing this Config has
	// queued and not yet written; it never refuses a message. OverBudget, if set, is
	// called (outside any lock; it must not block) whenever a message queued takes
	// Total over its limit, so the server can close the largest queues (Queued).
	Total      *Budget
	OverBudget func()
	// MaxBatchBytes, if positive, lets the writer pack consecutive queued messages
	// into one WebSocket message of up to this size; the protocol on top must then
	// delimit what it queues. 0 writes each queued message on its own.
	MaxBatchBytes int
	// WriteTimeout bounds one write (on a Socket's connection: the write of its
	// backlog) and the wait for one pong: a peer that does not read for this long is
	// a slow consumer and is disconnected.
	WriteTimeout time.Duration
	// PingInterval is how often the connection is pinged; 0 never pings.
	PingInterval time.Duration
	// MaxInflight bounds the functions started with Go that run at once; 0 means 1.
	MaxInflight int
	// Pool, if set, runs the functions started with Go on its workers instead of a
	// new goroutine each.
	Pool *Pool
	// SlowConsumer is the close code for a peer that does not read fast enough.
	SlowConsumer websocket.StatusCode
	// CloseName names a close code in the log; nil uses the code's String.
	CloseName func(websocket.StatusCode) string
	// Closed, if set, is called once per connection with its close reason, to count
	// it. It must be cheap and safe for concurrent use.
	Closed func(Reason)
}

// Validate reports every problem with c at once.
func (c *Config) Validate() error {
	var errs []error
	if c.MaxMessageBytes < 0 {
		errs = append(errs, fmt.Errorf("conn: max message bytes %d is negative", c.MaxMessageBytes))
	}
	if c.MaxQueueMessages < 1 || c.MaxQueueBytes < 1 {
		errs = append(errs, fmt.Errorf("conn: send queue bounds %d messages, %d bytes must be positive", c.MaxQueueMessages, c.MaxQueueBytes))
	}
	if c.WriteTimeout <= 0 {
		errs = append(errs, fmt.Errorf("conn: write timeout %v must be positive", c.WriteTimeout))
	}
	if c.PingInterval < 0 || c.MaxInflight < 0 || c.MaxBatchBytes < 0 {
		errs = append(errs, errors.New("conn: ping interval, max inflight and max batch bytes must not be negative"))
	}
	if c.SlowConsumer < 1000 || c.SlowConsumer > 4999 {
		errs = append(errs, fmt.Errorf("conn: slow consumer close code %d is not a close code", c.SlowConsumer))
	}
	return errors.Join(errs...)
}

func (c *Config) name(code websocket.StatusCode) string {
	if c.CloseName != nil {
		return c.CloseName(code)
	}
	return code.String()
}

// Reason is why a connection ended: the close code sent (or, when the peer or the
// network ended it, received) and the text of the close frame.
type Reason struct {
	Code websocket.StatusCode
	Text string
}

// Handler is the protocol on top of a connection.
type Handler interface {
	// Receive handles one message on the reader goroutine; msg is the handler's to
	// keep. An error ends the connection: Run returns it. (Close the connection
	// first with the code the peer should see; otherwise it ends as 1006.)
	Receive(ctx context.Context, typ websocket.MessageType, msg []byte) error
}

// Refiller is a Handler that keeps elsewhere (a store) what the queue could not hold.
// Whenever the writer has written what was queued it asks for more.
type Refiller interface {
	// RefillPending reports whether Refill has work. It is called on every pass of
	// the writer and must be cheap. The Conn never holds its own lock while calling
	// the Handler, so both may take the lock the Handler holds around TryEnqueue.
	RefillPending() bool
	// Refill queues more with TryEnqueue, on the writer goroutine. An error stops the
	// writer; close the connection first with the code the peer should see.
	Refill(ctx context.Context) error
}

// WriteObserver is a Handler that sees what the writer writes.
type WriteObserver interface {
	// Writing is called on the writer goroutine just before msgs (queued messages)
	// are written as one WebSocket message.
	Writing(msgs [][]byte)
	// Wrote is called once they are.
	Wrote(msgs [][]byte)
}

type state uint8

const (
	stateNew     state = iota // before Run: nothing may start the writer
	stateRunning              // Run is serving
	stateDone                 // Run is ending: no writer may start any more
)

// Conn is one WebSocket connection. Its methods are safe for concurrent use unless
// they say otherwise.
type Conn struct {
	// Static after construction.
	ws   *websocket.Conn
	cfg  *Config
	h    Handler // and maybe a Refiller and a WriteObserver, asserted on use
	ctx  context.Context
	stop context.CancelFunc

	out    *outConn               // set by NewSocket (nil for New); read-only after
	log    *slog.Logger           // set before Run (SetLogger); read-only after
	group  *Budget                // set before anything is queued (LimitBy); read-only after
	reason atomic.Pointer[Reason] // the first close wins
	ended  atomic.Bool            // the reason was logged and counted

	// The writer goroutine runs only while there is something to write: Wake starts
	// it when none runs, and it exits once the queue is empty and nothing is to be
	// refilled, so an idle connection has just its reader goroutine.
	writing atomic.Bool
	writers sync.WaitGroup
	// starved is set while the group budget refused what TryEnqueue offered: the
	// writer then does not ask the Refiller again until the budget has room.
	starved atomic.Bool

	sem      chan struct{} // slots for Go; made by the reader on first use
	inflight sync.WaitGroup

	mu        sync.Mutex
	queue     [][]byte    // messages waiting for the writer; Guarded by mu.
	rest      [][]byte    // of a batch taken from the queue, what the socket did not take yet; Guarded by mu.
	restSize  int         // bytes of that whole batch, charged until it is all written; Guarded by mu.
	qbytes    int         // Guarded by mu.
	charged   int64       // bytes queued or being written, charged to the budgets; Guarded by mu.
	state     state       // Guarded by mu.
	pingTimer *time.Timer // set by Run; Guarded by mu.
}

// New wraps an accepted or dialled WebSocket. cfg must be valid (Config.Validate)
// and is shared, not copied. Call Run, or End if the connection will not be served.
func New(ws *websocket.Conn, cfg *Config, h Handler, log *slog.Logger) *Conn {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, stop := context.WithCancel(context.Background())
	c := &Conn{ws: ws, cfg: cfg, h: h, ctx: ctx, stop: stop, log: log}
	if cfg.MaxMessageBytes > 0 {
		ws.SetReadLimit(cfg.MaxMessageBytes)
	}
	return c
}

// SetReadLimit changes the read limit from the next message on (e.g. a small limit
// for a handshake, then Config.MaxMessageBytes).
func (c *Conn) SetReadLimit(n int64) { c.ws.SetReadLimit(n) }

// LimitBy makes what this connection queues count against b too, which it shares
// with other connections (the sockets of one client): TryEnqueue is refused while b
// has no room, and the Refiller is asked again once b releases bytes; Enqueue is
// charged to b but never refused by it (the connection's own queue bounds it). Call
// it once, before anything is queued.
func (c *Conn) LimitBy(b *Budget) { c.group = b }

// Queued returns the bytes queued or being written.
func (c *Conn) Queued() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.charged
}

// Context is the connection's context: it ends when the reader stops, so work done
// for the connection (requests, store reads) stops with it.
func (c *Conn) Context() context.Context { return c.ctx }

// SetLogger replaces the connection's logger (to add what a handshake learnt). Call
// it only before Run.
func (c *Conn) SetLogger(l *slog.Logger) { c.log = l }

// Read reads one message on the caller's goroutine. It is for a handshake before Run,
// e.g. authentication on the goroutine that accepted the socket; once Run starts,
// its reader is the only caller.
func (c *Conn) Read(ctx context.Context) (websocket.MessageType, []byte, error) {
	typ, msg, err := c.ws.Read(ctx)
	if err != nil {
		return typ, msg, fmt.Errorf("conn: read: %w", err)
	}
	return typ, msg, nil
}

// Run serves the connection until it closes: it starts the writer for what is
// queued, pings, and hands every message to the Handler. When ctx ends the
// connection closes with 1001 going away. Run returns the error that ended the
// reader, once the functions started with Go and the writer have returned, and after
// logging and counting the close reason. Call Run once, on its own goroutine.
func (c *Conn) Run(ctx context.Context) error {
	if ctx.Done() != nil { // a context that never ends costs nothing
		stopAfter := context.AfterFunc(ctx, func() { c.Close(websocket.StatusGoingAway, "going away") })
		defer stopAfter()
	}
	c.mu.Lock()
	if c.state != stateNew {
		c.mu.Unlock()
		return errors.New("conn: Run after Run or End")
	}
	c.state = stateRunning
	if c.cfg.PingInterval > 0 {
		c.pingTimer = time.AfterFunc(c.cfg.PingInterval, c.ping)
	}
	c.mu.Unlock()
	c.Wake() // what was queued before Run (a handshake's answer)
	err := c.readLoop()
	c.inflight.Wait()
	c.stop()
	c.mu.Lock()
	c.state = stateDone
	if c.pingTimer != nil {
		c.pingTimer.Stop()
	}
	c.mu.Unlock()
	c.writers.Wait()
	c.end(err)
	return err
}

// End accounts for a connection that will not be served (its handshake failed):
// unless closed already it closes with the status err carries (1006 if none), and
// it logs and counts the close reason. Call it instead of Run, never with it.
func (c *Conn) End(err error) {
	c.mu.Lock()
	if c.state == stateNew {
		c.state = stateDone
	}
	c.mu.Unlock()
	c.end(err)
}

func (c *Conn) end(err error) {
	if !c.ended.CompareAndSwap(false, true) {
		return
	}
	code := websocket.CloseStatus(err)
	if code == -1 {
		code = websocket.StatusAbnormalClosure
	}
	c.Close(code, "")
	c.dropQueue()
	r := *c.reason.Load()
	if c.cfg.Closed != nil {
		c.cfg.Closed(r)
	}
	c.log.Debug("socket closed", "reason", c.cfg.name(r.Code), "detail", r.Text, "err", err)
}

// Reason returns the close reason once the connection is closing.
func (c *Conn) Reason() (Reason, bool) {
	if r := c.reason.Load(); r != nil {
		return *r, true
	}
	return Reason{}, false
}

// Close closes the connection with code and text unless it is closing already: the
// first reason is the one sent, logged and counted. It never blocks. The close
// handshake runs on its own goroutine and makes the reader's Read fail, which ends
// Run; the connection's context is not cancelled here, because coder/websocket
// drops a connection without a close frame when a Read's context ends.
func (c *Conn) Close(code websocket.StatusCode, text string) {
	if !c.reason.CompareAndSwap(nil, &Reason{Code: code, Text: text}) {
		return
	}
	go c.ws.Close(code, text)
}

// Abort ends the connection at once, with code and text as its reason unless it
// is closing already, without a close handshake: for a peer that stopped
// answering (a close frame would wait for it in vain). It never blocks.
func (c *Conn) Abort(code websocket.StatusCode, text string) {
	c.reason.CompareAndSwap(nil, &Reason{Code: code, Text: text})
	c.stop() // coder/websocket drops the connection when the reader's context ends
}

// CloseWith writes last at once, ahead of the queue and within a second, then
// closes: for a final error the peer should read before the close frame. It blocks
// the caller for up to that second. (This is the one Write that is not the writer's;
// coder/websocket serializes it with the writer's.)
func (c *Conn) CloseWith(last []byte, code websocket.StatusCode, text string) {
	ctx, cancel := context.WithTimeout(c.ctx, time.Second)
	_ = c.ws.Write(ctx, websocket.MessageBinary, last) // best effort: the close follows
	cancel()
	c.Close(code, text)
}

// Go runs f on its own goroutine with the connection's context, waiting while
// Config.MaxInflight others run; Run waits for them before it stops the writer, so
// what they queue is still written. It returns the context's error if the connection
// ends first. Call it only from Receive.
func (c *Conn) Go(f func(ctx context.Context)) error {
	if c.sem == nil {
		c.sem = make(chan struct{}, max(c.cfg.MaxInflight, 1))
	}
	select {
	case c.sem <- struct{}{}:
	case <-c.ctx.Done():
		return c.ctx.Err()
	}
	c.inflight.Add(1)
	run := func() {
		defer func() { <-c.sem; c.inflight.Done() }()
		f(c.ctx)
	}
	if c.cfg.Pool != nil {
		c.cfg.Pool.run(run)
	} else {
		go run()
	}
	return nil
}

func (c *Conn) readLoop() error {
	for {
		typ, msg, err := c.ws.Read(c.ctx)
		if err != nil {
			c.stop()
			return fmt.Errorf("conn: read: %w", err)
		}
		if err := c.h.Receive(c.ctx, typ, msg); err != nil {
			return err
		}
	}
}

// Ping sends a ping and waits for its pong until ctx ends or the connection does
// (an error then). The pong is taken by Run's reader: on a connection that is not
// running yet, Ping waits for Run.
func (c *Conn) Ping(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()
	if err := c.ws.Ping(ctx); err != nil {
		return fmt.Errorf("conn: ping: %w", err)
	}
	return nil
}

// ping runs on its own timer goroutine: a ping needs the reader to see the pong,
// and must not hold up the writer.
func (c *Conn) ping() {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.WriteTimeout)
	defer cancel()
	if err := c.ws.Ping(ctx); err != nil {
		if c.ctx.Err() == nil {
			c.log.Debug("ping failed", "err", err)
			c.Close(c.cfg.SlowConsumer, "ping timeout")
		}
		return
	}
	c.mu.Lock()
	if c.state == stateRunning {
		c.pingTimer.Reset(c.cfg.PingInterval)
	}
	c.mu.Unlock()
}
