package federation

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/gateway/conn"
	"github.com/mimids/mimids/protocol"
)

// Inbound is an envelope a peer sent, as a handler sees it.
type Inbound struct {
	// Peer is the sender's domain, proven by its certificate: a handler decides
	// what the peer may do from it, never from the body.
	Peer string
	ID   uint64
	Type protocol.EnvelopeType
	Body []byte
}

// Handler applies an envelope. It returns the ack's body, or an error: one that
// carries a wire code other than internal (protocol.NewError, protocol.CodeOf) is
// the final answer, sent as an error envelope; any other error means "not now": the
// link closes with 1013 try_again_later and the peer sends the envelope again later.
// A handler must return when ctx ends (the provider is stopping).
type Handler func(ctx context.Context, in *Inbound) ([]byte, error)

// Answer is a peer's answer to an envelope this provider sent.
type Answer struct {
	Peer string
	ID   uint64
	Type protocol.EnvelopeType
	Sent []byte // the envelope's body
	Body []byte // the ack's body; nil when refused
	// Err is the refusal, if the peer answered with an error envelope.
	Err *protocol.EnvelopeError
}

// AnswerFunc handles the answers to one envelope type this provider sent, once per
// envelope (also when it was answered on two links). It runs in the store
// transaction that removes the envelope from the queue, with a
// context that the store's other writes join (the constraints of HandleAtomic
// apply); an error undoes the removal, closes the link and the envelope is sent
// again, to be answered the same way.
type AnswerFunc func(ctx context.Context, a *Answer) error

type handler struct {
	fn     Handler
	atomic bool
}

// Stats are counters of the link layer since New.
type Stats struct {
	Refused    uint64 // TLS handshakes refused: the certificate proved no allowed peer
	Links      uint64 // links established (both directions)
	Applied    uint64 // envelopes applied (a reply recorded for the first time)
	Duplicates uint64 // retried envelopes answered from the dedup records
	Answered   uint64 // answers to our envelopes committed (queue entries removed)
}

// Links is a provider's link layer: its listener, a dialer per allowed peer, the
// one link per peer, and the handlers of what peers send.
type Links struct {
	// Static after New.
	cfg     Config
	store   Store
	log     *slog.Logger
	connCfg *conn.Config
	ln      net.Listener // nil when not listening

	// Registered before Run; read-only after.
	handlers     map[protocol.EnvelopeType]handler
	answers      map[protocol.EnvelopeType]AnswerFunc
	httpHandlers []httpHandler // served on the listener (http.go)

	trustSet  atomic.Pointer[trustSet]
	refreshMu sync.Mutex // one Refresh at a time, so the newest allow-list wins

	mu       sync.Mutex
	peers    map[string]*peerState    // by domain; Guarded by mu.
	waiters  map[waitKey]chan *Answer // Call waiters; Guarded by mu.
	runCtx   context.Context          // set by Run; Guarded by mu.
	state    int                      // 0 new, 1 running, 2 stopping; Guarded by mu.
	closes   map[string]uint64        // link closes by reason; Guarded by mu.
	work     sync.WaitGroup           // dialers and links; Add under mu while running
	counters struct{ refused, links, applied, dupes, answered atomic.Uint64 }
}

type waitKey struct {
	peer string
	id   uint64
}

// New makes the link layer of the provider cfg.Domain over store. It listens at
// once when cfg.Listen (or cfg.Listener) is set, so that Addr is known before Run.
func New(cfg Config, store Store) (*Links, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	l := &Links{cfg: cfg, store: store, log: cfg.Logger.With("part", "federation"),
		handlers: map[protocol.EnvelopeType]handler{}, answers: map[protocol.EnvelopeType]AnswerFunc{},
		peers: map[string]*peerState{}, waiters: map[waitKey]chan *Answer{}, closes: map[string]uint64{}}
	l.trustSet.Store(&trustSet{})
	l.connCfg = &conn.Config{
		MaxMessageBytes:  protocol.MaxLinkMessage,
		MaxQueueMessages: 2*protocol.MaxWindow + 16,
		MaxQueueBytes:    2*protocol.MaxWindowBytes + protocol.MaxLinkMessage,
		MaxBatchBytes:    64 << 10,
		WriteTimeout:     cfg.WriteTimeout,
		PingInterval:     cfg.PingInterval,
		SlowConsumer:     protocol.CloseSlowConsumer,
		CloseName:        func(c websocket.StatusCode) string { return protocol.LinkCloseReason(int(c)) },
		Closed:           l.closed,
	}
	l.ln = cfg.Listener
	if l.ln == nil && cfg.Listen != "" {
		ln, err := net.Listen("tcp", cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("federation: listen: %w", err)
		}
		l.ln = ln
	}
	return l, nil
}

// Domain is this provider's domain.
func (l *Links) Domain() string { return l.cfg.Domain }

// Addr is the federation listener's address, or nil when not listening.
func (l *Links) Addr() net.Addr {
	if l.ln == nil {
		return nil
	}
	return l.ln.Addr()
}

// Handle registers h for envelopes of type typ. h runs outside the store
// transaction that records its answer, so it must be idempotent for (in.Peer,
// in.ID) (package doc). Envelopes of one peer are applied one at a time, in id
// order. Register before Run; a type is registered once.
func (l *Links) Handle(typ protocol.EnvelopeType, h Handler) { l.register(typ, h, false) }

// HandleAtomic registers h for envelopes of type typ and runs it inside the store
// transaction that records its answer: writes of the store made with ctx commit
// with the answer, once, or not at all. h must do only store work with ctx,
// synchronously and quickly (the store's one writer waits for it): no network, no
// Call, no write with another context (which would deadlock); reads through the
// store do not see the transaction's writes.
func (l *Links) HandleAtomic(typ protocol.EnvelopeType, h Handler) { l.register(typ, h, true) }

func (l *Links) register(typ protocol.EnvelopeType, h Handler, atomic bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, dup := l.handlers[typ]; dup || typ == 0 || h == nil || l.state != 0 {
		panic(fmt.Sprintf("federation: handler for type 0x%04x registered twice, for type 0, nil, or after Run", uint16(typ)))
	}
	l.handlers[typ] = handler{fn: h, atomic: atomic}
}

// OnAnswer registers f for the answers to envelopes of type typ that this provider
// sends. Register before Run; a type is registered once.
func (l *Links) OnAnswer(typ protocol.EnvelopeType, f AnswerFunc) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, dup := l.answers[typ]; dup || typ == 0 || f == nil || l.state != 0 {
		panic(fmt.Sprintf("federation: answer function for type 0x%04x registered twice, for type 0, nil, or after Run", uint16(typ)))
	}
	l.answers[typ] = f
}

// Send queues an envelope for peer and returns its id once it is committed to the
// queue; the link delivers it, retrying while the peer is away, until the peer
// answers (OnAnswer sees the answer). If ctx carries a store transaction (an
// atomic handler's or an answer function's context), the envelope commits with
// it. It fails with ErrUnknownPeer for a peer not on the allow-list and
// ErrTooLarge for a body over protocol.MaxEnvelopeBody.
func (l *Links) Send(ctx context.Context, peer string, typ protocol.EnvelopeType, body []byte) (uint64, error) {
	return l.enqueue(ctx, peer, typ, body, nil)
}

// Call is Send, then waits for the peer's answer: the ack's body, or the refusal as
// a *protocol.EnvelopeError (protocol.CodeOf reports its code). If ctx ends first,
// Call returns ctx's error and the envelope stays queued: it is delivered later,
// and only OnAnswer sees its answer. ctx must not carry a store transaction. On a
// node that does not run peer's link (Config.Owns), Config.ForwardCall runs it.
func (l *Links) Call(ctx context.Context, peer string, typ protocol.EnvelopeType, body []byte) ([]byte, error) {
	if l.cfg.ForwardCall != nil && !l.owns(peer) {
		return l.cfg.ForwardCall(ctx, peer, typ, body)
	}
	return l.CallHere(ctx, peer, typ, body)
}

// CallHere is Call on this node, whether or not it runs peer's link: the node
// that does runs the calls other nodes forward to it (Config.ForwardCall) with it.
func (l *Links) CallHere(ctx context.Context, peer string, typ protocol.EnvelopeType, body []byte) ([]byte, error) {
	ch := make(chan *Answer, 1)
	id, err := l.enqueue(ctx, peer, typ, body, ch)
	if err != nil {
		return nil, err
	}
	select {
	case a := <-ch:
		if a.Err != nil {
			return nil, a.Err
		}
		return a.Body, nil
	case <-ctx.Done():
		l.mu.Lock()
		delete(l.waiters, waitKey{peer, id})
		l.mu.Unlock()
		return nil, fmt.Errorf("federation: call %s type 0x%04x: %w", peer, uint16(typ), ctx.Err())
	}
}

func (l *Links) enqueue(ctx context.Context, peer string, typ protocol.EnvelopeType, body []byte, wait chan *Answer) (uint64, error) {
	if typ == 0 {
		return 0, fmt.Errorf("federation: send to %s: envelope type 0", peer)
	}
	if len(body) > protocol.MaxEnvelopeBody {
		return 0, fmt.Errorf("%w: %d bytes for %s, limit %d", ErrTooLarge, len(body), peer, protocol.MaxEnvelopeBody)
	}
	// The waiter is registered, and the link woken, when the envelope commits:
	// before any answer to it can be committed (the store commits in order).
	committed := func(id uint64) {
		if wait != nil {
			l.mu.Lock()
			l.waiters[waitKey{peer, id}] = wait
			l.mu.Unlock()
		}
		l.wake(peer)
		if l.cfg.Enqueued != nil && !l.owns(peer) {
			l.cfg.Enqueued(peer)
		}
	}
	id, err := l.store.Enqueue(ctx, peer, typ, body, time.Now(), committed)
	if err != nil {
		return 0, fmt.Errorf("federation: send to %s: %w", peer, err)
	}
	return id, nil
}

// owns reports whether this node runs the link with peer (Config.Owns).
func (l *Links) owns(peer string) bool { return l.cfg.Owns == nil || l.cfg.Owns(peer) }

// Handover closes the link with peer, if one is up, with 1001 for another node of
// this provider to run it (call it when this node lost the peer's lease: Owns says
// no from now on), and forgets what this node read of the peer's inbox, which the
// other node changes meanwhile.
func (l *Links) Handover(peer string) {
	l.mu.Lock()
	ps := l.peers[peer]
	l.mu.Unlock()
	if ps == nil {
		return
	}
	ps.inStale.Store(true)
	ps.mu.Lock()
	cur := ps.cur
	ps.mu.Unlock()
	if cur != nil {
		cur.c.Close(protocol.CloseGoingAway, "handed over to another node")
	}
}

// Wake tells peer's link, if this node runs it, that the queue has more: another
// node of this provider enqueued (Config.Enqueued).
func (l *Links) Wake(peer string) { l.wake(peer) }

func (l *Links) wake(peer string) {
	l.mu.Lock()
	ps := l.peers[peer]
	l.mu.Unlock()
	if ps != nil {
		ps.wake()
	}
}

// answered hands committed answers to the Calls waiting for them.
func (l *Links) answered(as []*Answer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, a := range as {
		k := waitKey{a.Peer, a.ID}
		if ch, ok := l.waiters[k]; ok {
			delete(l.waiters, k)
			ch <- a
		}
	}
}

// Stats returns the counters.
func (l *Links) Stats() Stats {
	c := &l.counters
	return Stats{Refused: c.refused.Load(), Links: c.links.Load(), Applied: c.applied.Load(),
		Duplicates: c.dupes.Load(), Answered: c.answered.Load()}
}

// Closes returns how many links closed, by close reason (protocol.LinkCloseReason).
func (l *Links) Closes() map[string]uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]uint64, len(l.closes))
	for k, v := range l.closes {
		out[k] = v
	}
	return out
}

func (l *Links) closed(r conn.Reason) {
	l.mu.Lock()
	l.closes[protocol.LinkCloseReason(int(r.Code))]++
	l.mu.Unlock()
}

// Status returns the state of the link with peer as this process knows it.
func (l *Links) Status(peer string) (PeerStatus, bool) {
	l.mu.Lock()
	ps := l.peers[peer]
	l.mu.Unlock()
	if ps == nil {
		return PeerStatus{}, false
	}
	return ps.snapshot(), true
}

func (l *Links) trust() *trustSet { return l.trustSet.Load() }

// refused logs and counts a handshake whose client certificate proves no allowed
// peer.
func (l *Links) refused(remote string, certs []*x509.Certificate) {
	l.counters.refused.Add(1)
	var names []string
	if len(certs) > 0 {
		names = certs[0].DNSNames
	}
	l.log.Warn("federation handshake refused: the certificate proves no allowed peer", "remote", remote, "dns_names", names)
}

// Refresh reads the allow-list from the store: new peers get a dialer, removed
// peers lose their link (closed with 4021) and dialer, and a peer whose URL or
// trust changed has its link closed so that the next one is checked anew.
func (l *Links) Refresh(ctx context.Context) error {
	l.refreshMu.Lock()
	defer l.refreshMu.Unlock()
	peers, err := l.store.Peers(ctx)
	if err != nil {
		return fmt.Errorf("federation: refresh: %w", err)
	}
	ts, bad := newTrustSet(l.cfg.Domain, peers)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == 2 {
		return nil
	}
	l.trustSet.Store(ts)
	for _, err := range bad {
		l.log.Warn("federation: allow-list entry ignored", "err", err)
	}
	for d, tr := range ts.byDomain {
		ps := l.peers[d]
		if ps == nil {
			ps = newPeerState(l, tr.peer)
			l.peers[d] = ps
			if l.state == 1 {
				l.startDialer(ps)
			}
			continue
		}
		ps.update(tr.peer)
	}
	for d, ps := range l.peers {
		if ts.byDomain[d] == nil {
			delete(l.peers, d)
			ps.remove()
		}
	}
	return nil
}

// startDialer runs ps's dialer until Run ends or the peer is removed. Call with
// l.mu held, while running.
func (l *Links) startDialer(ps *peerState) {
	ctx, cancel := context.WithCancel(l.runCtx)
	ps.stopDialer = cancel
	l.work.Add(1)
	go func() {
		defer l.work.Done()
		ps.dialLoop(ctx)
	}()
}

// Run serves the listener and dials every allowed peer until ctx ends; then it
// closes every link with 1001 going away, records the links as stopped and
// returns. Call it once.
func (l *Links) Run(ctx context.Context) error {
	l.mu.Lock()
	if l.state != 0 {
		l.mu.Unlock()
		return errors.New("federation: Run called twice")
	}
	l.state, l.runCtx = 1, ctx
	l.mu.Unlock()
	if err := l.Refresh(ctx); err != nil {
		l.stopAll()
		return err
	}
	l.mu.Lock()
	for _, ps := range l.peers {
		if ps.stopDialer == nil {
			l.startDialer(ps)
		}
	}
	l.mu.Unlock()
	srvDone := make(chan error, 1)
	stopSrv := func() {}
	if l.ln != nil {
		stopSrv = l.serve(srvDone)
	}
	t := time.NewTicker(l.cfg.PeerRefresh)
	defer t.Stop()
	var err error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-srvDone:
			break loop
		case <-t.C:
			if rerr := l.Refresh(ctx); rerr != nil && ctx.Err() == nil {
				l.log.Warn("federation: refresh the allow-list", "err", rerr)
			}
			if l.cfg.Owns != nil {
				l.wakeAll() // envelopes other nodes queued, should their notice be lost
			}
		}
	}
	stopSrv()
	l.stopAll()
	return err
}

// wakeAll makes every link that is up read its queue again.
func (l *Links) wakeAll() {
	l.mu.Lock()
	peers := make([]*peerState, 0, len(l.peers))
	for _, ps := range l.peers {
		peers = append(peers, ps)
	}
	l.mu.Unlock()
	for _, ps := range peers {
		ps.wake()
	}
}

// stopAll ends every dialer and link and waits for them; links close with 1001
// (their context is Run's) or, when Run failed early, at once.
func (l *Links) stopAll() {
	l.mu.Lock()
	l.state = 2
	peers := make([]*peerState, 0, len(l.peers))
	for _, ps := range l.peers {
		peers = append(peers, ps)
	}
	l.mu.Unlock()
	for _, ps := range peers {
		ps.shutdown()
		ps.mu.Lock()
		ps.dropHTTP()
		ps.mu.Unlock()
	}
	l.work.Wait()
	for _, ps := range peers {
		ps.recordStopped()
	}
}

// track registers a link's goroutine with Run; it fails once Run is stopping.
func (l *Links) track() (context.Context, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state != 1 {
		return nil, false
	}
	l.work.Add(1)
	return l.runCtx, true
}
