package natsbus

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mimids/mimids/protocol"
)

// Federation between the nodes of one provider (docs/scale-out.md "Federation link
// leases"): one node at a time runs a peer's link (it holds the peer's lease).
//
//	<prefix>.q                 peer P's queue has new envelopes (every node; the owner sends them)
//	<prefix>.call.<hex node>   a Call for the node that runs the peer's link (request/reply)
//	<prefix>.c.<hex masked>    a followed partition's local copy grew (nodes subscribe while they have sinks)

// Kinds of the federation messages (after those of wire.go).
const (
	kindQueued    = 6 // peer's outbound queue has more: peer
	kindCall      = 7 // a Call to run on the owner: peer, type, timeout (ms), body
	kindCallReply = 8 // the Call's outcome: status, then its body, refusal or failure
	kindCopy      = 9 // a followed partition's copy grew: masked
)

// Outcomes of a forwarded Call.
const (
	callOK       = 0 // the peer's ack: body
	callRefused  = 1 // the peer's refusal (or the owner's): code, message
	callNotOwner = 2 // the node does not run the peer's link (any more)
	callFailed   = 3 // another failure: message
)

// defaultCallTimeout bounds a forwarded Call whose context has no deadline.
const defaultCallTimeout = 30 * time.Second

// maxCallsServed bounds the forwarded Calls a node runs at once; past it the
// caller is told to try later.
const maxCallsServed = 256

// Errors of forwarded Calls. A caller may try again (after the leases moved) on
// either: the Call was not queued.
var (
	// ErrNotOwner: the node asked does not run the peer's link.
	ErrNotOwner = errors.New("natsbus: the node does not run the peer's link")
	// ErrNoNode: no node answered (none listens on the owner's subject).
	ErrNoNode = errors.New("natsbus: no node answered the call")
)

// FederationTarget is what the bus needs from the link layer (*federation.Links).
type FederationTarget interface{ Wake(peer string) }

// CopyTarget is what the bus needs from the follower's copies (*follower.Copies):
// Poke(nil) makes every copy's sinks read the store.
type CopyTarget interface{ Poke(masked []byte) }

// CallHandler runs a forwarded Call on the node that runs the peer's link.
type CallHandler func(ctx context.Context, peer string, typ protocol.EnvelopeType, body []byte) ([]byte, error)

// PeerQueued tells the other nodes that peer's outbound queue has more: the one
// that runs its link sends it.
func (b *Bus) PeerQueued(peer string) {
	w := protocol.NewWriter(nil)
	w.U8(kindQueued)
	w.String(peer)
	b.publish(b.cfg.Subject+".q", w.Bytes())
}

func (b *Bus) callSubject(node string) string {
	return b.cfg.Subject + ".call." + hex.EncodeToString([]byte(node))
}

// ServeCalls runs h for the Calls other nodes forward to this one (Config.NodeID),
// each in its own goroutine, at most maxCallsServed at once, until ctx ends; it
// returns once they have. h returns ErrNotOwner when this node does not run the
// peer's link.
func (b *Bus) ServeCalls(ctx context.Context, h CallHandler) error {
	sem := make(chan struct{}, maxCallsServed)
	var wg sync.WaitGroup
	var mu sync.Mutex
	stopped := false // Guarded by mu.
	sub, err := b.nc.Subscribe(b.callSubject(b.cfg.NodeID), func(m *nats.Msg) {
		select {
		case sem <- struct{}{}:
		default:
			b.reply(m, nil, errors.New("natsbus: too many forwarded calls; try again"))
			return
		}
		mu.Lock()
		if stopped {
			mu.Unlock()
			<-sem
			b.reply(m, nil, errors.New("natsbus: the node is stopping"))
			return
		}
		wg.Add(1)
		mu.Unlock()
		go func() {
			defer func() { <-sem; wg.Done() }()
			b.serveCall(ctx, m, h)
		}()
	})
	if err != nil {
		return fmt.Errorf("natsbus: serve calls: %w", err)
	}
	<-ctx.Done()
	unsubscribe(sub)
	mu.Lock()
	stopped = true
	mu.Unlock()
	wg.Wait() // the Calls end with ctx
	return nil
}

func (b *Bus) serveCall(ctx context.Context, m *nats.Msg, h CallHandler) {
	r := protocol.NewReader(m.Data)
	kind := r.U8("kind")
	peer := string(r.OpaqueMax("peer", 255))
	typ := protocol.EnvelopeType(r.U16("type"))
	timeout := time.Duration(r.U64("timeout_ms")) * time.Millisecond
	body := r.OpaqueMax("body", protocol.MaxEnvelopeBody)
	if err := r.Done(); err != nil || kind != kindCall {
		b.reply(m, nil, fmt.Errorf("natsbus: bad call: %v", err))
		return
	}
	cctx, cancel := context.WithTimeout(ctx, min(timeout, time.Minute))
	defer cancel()
	out, err := h(cctx, peer, typ, body)
	b.reply(m, out, err)
}

// reply answers a forwarded Call with its outcome.
func (b *Bus) reply(m *nats.Msg, out []byte, err error) {
	w := protocol.NewWriter(nil)
	w.U8(kindCallReply)
	code, coded := protocol.CodeOf(err)
	switch {
	case err == nil:
		w.U8(callOK)
		w.Opaque(out)
	case errors.Is(err, ErrNotOwner):
		w.U8(callNotOwner)
	case coded && code != protocol.CodeInternal:
		w.U8(callRefused)
		w.U16(uint16(code))
		w.String(refusalText(err))
	default:
		w.U8(callFailed)
		w.String(err.Error())
	}
	data, werr := w.Result()
	if werr != nil {
		w = protocol.NewWriter(nil)
		w.U8(kindCallReply)
		w.U8(callFailed)
		w.String(werr.Error())
		data = w.Bytes()
	}
	if err := m.Respond(data); err != nil {
		b.log.Debug("natsbus: reply to a call", "err", err)
	}
}

// refusalText is the message of a refusal: the peer's own, or the error's text.
func refusalText(err error) string {
	var ee *protocol.EnvelopeError
	if errors.As(err, &ee) {
		return ee.Message
	}
	return err.Error()
}

// Call forwards a Call to node, the one that runs peer's link, and returns its
// answer: the ack's body, a refusal as a *protocol.EnvelopeError, ErrNotOwner or
// ErrNoNode (nothing was queued: try again once the leases moved), or another
// error (the envelope may be queued, as when a Call times out).
func (b *Bus) Call(ctx context.Context, node, peer string, typ protocol.EnvelopeType, body []byte) ([]byte, error) {
	timeout := defaultCallTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	} else { // an owner that dies with the Call must not hold the caller forever
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	w := protocol.NewWriter(nil)
	w.U8(kindCall)
	w.String(peer)
	w.U16(uint16(typ))
	w.U64(uint64(max(timeout.Milliseconds(), 1)))
	w.Opaque(body)
	data, err := w.Result()
	if err != nil {
		return nil, fmt.Errorf("natsbus: call %s: %w", peer, err)
	}
	if len(data) > int(b.nc.MaxPayload()) {
		return nil, fmt.Errorf("natsbus: call %s: %d bytes, over the NATS server's max_payload (%d)", peer, len(data), b.nc.MaxPayload())
	}
	m, err := b.nc.RequestWithContext(ctx, b.callSubject(node), data)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, fmt.Errorf("%w (%s)", ErrNoNode, node)
	}
	if err != nil {
		return nil, fmt.Errorf("natsbus: call %s via %s: %w", peer, node, err)
	}
	return decodeReply(m.Data)
}

func decodeReply(data []byte) ([]byte, error) {
	r := protocol.NewReader(data)
	if r.U8("kind") != kindCallReply {
		return nil, errors.New("natsbus: call: bad reply")
	}
	var out []byte
	var err error
	switch st := r.U8("status"); st {
	case callOK:
		out = r.OpaqueMax("body", protocol.MaxEnvelopeBody)
	case callRefused:
		code := protocol.Code(r.U16("code"))
		err = &protocol.EnvelopeError{Code: code, Message: string(r.OpaqueMax("message", protocol.MaxEnvelopeBody))}
	case callNotOwner:
		err = ErrNotOwner
	case callFailed:
		err = fmt.Errorf("natsbus: call failed on the owner: %s", r.OpaqueMax("message", protocol.MaxEnvelopeBody))
	default:
		return nil, fmt.Errorf("natsbus: call: bad reply status %d", st)
	}
	if derr := r.Done(); derr != nil {
		return nil, fmt.Errorf("natsbus: call: bad reply: %w", derr)
	}
	return out, err
}

func (b *Bus) copySubject(masked []byte) string {
	return b.cfg.Subject + ".c." + hex.EncodeToString(masked)
}

// CopyCommitted tells the other nodes that the local copy of a partition followed
// elsewhere has new entries: their sinks of it read the store.
func (b *Bus) CopyCommitted(masked []byte) {
	w := protocol.NewWriter(nil)
	w.U8(kindCopy)
	w.Opaque(masked)
	b.publish(b.copySubject(masked), w.Bytes())
}

// WatchCopy subscribes to a followed partition's copy subject while this node has
// sinks of it; once the server confirms it, the sinks read the store.
func (b *Bus) WatchCopy(masked []byte) (cancel func()) {
	sub, err := b.nc.ChanSubscribe(b.copySubject(masked), b.in)
	if err != nil {
		b.log.Warn("natsbus: subscribe copy", "partition", fmt.Sprintf("%x", masked), "err", err)
	}
	b.mu.Lock()
	b.pendingCopies = append(b.pendingCopies, append([]byte(nil), masked...))
	b.copies++
	b.mu.Unlock()
	b.kickConfirm()
	return func() {
		b.mu.Lock()
		b.copies--
		b.mu.Unlock()
		unsubscribe(sub)
	}
}
