package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/follower"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/protocol"
)

// Partition subscriptions across providers (docs/protocol.md §5.12). The follower
// side is follower.Copies; the hub side below keeps one pusher per (follower,
// partition): it reads the hub's log from where the follower's copy stands and
// sends it in push envelopes of up to pushBatch entries, one envelope in flight,
// woken by the hub's live offers.
const (
	// pushBatch is how many entries one push envelope carries at most.
	pushBatch = 1024
	// pushBytes bounds the messages of one push envelope (one larger message goes
	// alone). A push is one WebSocket message written within the link's write
	// timeout: a smaller bound keeps a slow link moving.
	pushBytes = 1 << 20
	// pushRetry is the pause after a push the link could not deliver or the
	// follower could not apply.
	pushRetry = time.Second
)

// newCopies makes the follower's partition copies; nil without federation.
func (p *Provider) newCopies(ctx context.Context) (*follower.Copies, error) {
	if !p.Config.Federation.Enabled() {
		return nil, nil
	}
	f := p.Config.Federation
	var bus follower.CopyBus
	if p.Bus != nil {
		bus = p.Bus
	}
	return follower.NewCopies(ctx, follower.CopiesConfig{Store: p.DB, Link: peerLink{p}, Routes: p.DB,
		Idle: f.CopyIdle.D(), Retention: f.CopyRetention.D(), Logger: p.Log, Bus: bus})
}

// partitions is what the gateway serves subscriptions from.
func (p *Provider) partitions() gateway.Partitions {
	if p.copies == nil {
		return p.Hub.Log()
	}
	return gateway.RoutedPartitions{Hosted: p.Hub.Log(), Remote: p.copies}
}

// registerSubscriptions installs both sides of partition subscriptions.
func (p *Provider) registerSubscriptions() {
	p.pushers = &pushers{db: p.DB, log: p.Hub.Log(), link: p.Federation, logger: p.Log.With("part", "pushes"),
		owns: p.owns, running: map[string]*pusher{}}
	p.Federation.Handle(protocol.EnvelopeSubscribe, p.pushers.subscribe)
	p.Federation.Handle(protocol.EnvelopeUnsubscribe, p.pushers.unsubscribe)
	p.Federation.Handle(protocol.EnvelopePush, func(ctx context.Context, in *federation.Inbound) ([]byte, error) {
		return p.copies.Push(ctx, in.Peer, in.Body)
	})
}

// pushers is the hub side: the running pusher of each follower subscription.
type pushers struct {
	// Static after registerSubscriptions.
	db     Store
	log    hub.PartitionLog
	link   *federation.Links
	logger *slog.Logger
	// owns says whether this node runs the peer's link: only that node pushes to
	// the peer (leaseChanged starts and stops the pushers of a peer).
	owns func(peer string) bool

	mu      sync.Mutex
	ctx     context.Context    // the Run context; nil before Run; Guarded by mu.
	running map[string]*pusher // by peer and masked key; Guarded by mu.
	wg      sync.WaitGroup
}

// subscribe answers a follower's subscribe: the partition must be hosted here.
func (ps *pushers) subscribe(ctx context.Context, in *federation.Inbound) ([]byte, error) {
	var q protocol.PartitionSubscribe
	if err := q.UnmarshalBinary(in.Body); err != nil {
		return nil, protocol.NewError(protocol.CodeMalformed, "provider: subscribe: "+err.Error())
	}
	masked, err := ps.log.Masked(ctx, q.PartitionKey)
	if err != nil {
		return nil, err
	}
	s, err := ps.db.AddPushSub(ctx, in.Peer, masked, q.From)
	if err != nil {
		return nil, err
	}
	ps.start(s)
	w := protocol.NewWriter(nil)
	w.Opaque(masked)
	return w.Result()
}

// unsubscribe answers a follower's unsubscribe: its subscription is forgotten and
// its pusher stopped (an unknown one is not an error: the envelope may be a retry).
func (ps *pushers) unsubscribe(ctx context.Context, in *federation.Inbound) ([]byte, error) {
	var u protocol.PartitionUnsubscribe
	if err := u.UnmarshalBinary(in.Body); err != nil {
		return nil, protocol.NewError(protocol.CodeMalformed, "provider: unsubscribe: "+err.Error())
	}
	k := in.Peer + "\x00" + string(u.Masked)
	ps.mu.Lock()
	if pu := ps.running[k]; pu != nil {
		pu.stop()
		delete(ps.running, k)
	}
	ps.mu.Unlock()
	removed, err := ps.db.RemovePushSub(ctx, in.Peer, u.Masked)
	if err != nil {
		return nil, err
	}
	if removed {
		ps.logger.Info("follower unsubscribed from a partition", "peer", in.Peer, "partition", fmt.Sprintf("%x", u.Masked))
	}
	return nil, nil
}

// run starts a pusher for every recorded subscription and waits for ctx.
func (ps *pushers) run(ctx context.Context) error {
	ps.mu.Lock()
	ps.ctx = ctx
	ps.mu.Unlock()
	subs, err := ps.db.PushSubs(ctx)
	if err != nil {
		return err
	}
	for _, s := range subs {
		ps.start(s)
	}
	<-ctx.Done()
	ps.wg.Wait()
	return nil
}

// start runs s's pusher, or wakes it if it runs. Before Run, run starts it.
func (ps *pushers) start(s PushSub) {
	if s.Done || !ps.owns(s.Peer) {
		return
	}
	k := s.Peer + "\x00" + string(s.Masked)
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if pu := ps.running[k]; pu != nil {
		pu.wake()
		return
	}
	if ps.ctx == nil {
		return
	}
	ctx, cancel := context.WithCancel(ps.ctx)
	pu := &pusher{ps: ps, peer: s.Peer, masked: s.Masked, next: s.Next, woken: make(chan struct{}, 1), stop: cancel}
	ps.running[k] = pu
	ps.wg.Add(1)
	go func() {
		defer ps.wg.Done()
		defer cancel()
		pu.run(ctx)
		ps.mu.Lock()
		if ps.running[k] == pu {
			delete(ps.running, k)
		}
		ps.mu.Unlock()
	}()
}

// startPeer starts the pushers of peer's subscriptions: this node took its link.
func (ps *pushers) startPeer(peer string) {
	ps.mu.Lock()
	ctx := ps.ctx
	ps.mu.Unlock()
	if ctx == nil {
		return // run starts them
	}
	subs, err := ps.db.PushSubs(ctx)
	if err != nil {
		ps.logger.Warn("push subscriptions", "peer", peer, "err", err)
		return
	}
	for _, s := range subs {
		if s.Peer == peer {
			ps.start(s)
		}
	}
}

// stopPeer stops the pushers of peer: another node runs its link now.
func (ps *pushers) stopPeer(peer string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for k, pu := range ps.running {
		if pu.peer == peer {
			pu.stop()
			delete(ps.running, k)
		}
	}
}

// pusher sends one partition to one follower. Its fields are its goroutine's.
type pusher struct {
	ps     *pushers
	peer   string
	masked []byte
	next   uint32
	woken  chan struct{}
	stop   context.CancelFunc // ends run (an unsubscribe)
}

func (pu *pusher) wake() {
	select {
	case pu.woken <- struct{}{}:
	default:
	}
}

// Notify and Refetch (protocol.PartitionSink) only wake the pusher: it reads the log.
func (pu *pusher) Notify(protocol.PartitionEntry) { pu.wake() }
func (pu *pusher) Refetch()                       { pu.wake() }

func (pu *pusher) run(ctx context.Context) {
	cancel := pu.ps.log.Subscribe(pu.masked, pu)
	defer cancel()
	for ctx.Err() == nil {
		body, n, err := pu.batch(ctx)
		if err == nil && n == 0 {
			select {
			case <-ctx.Done():
			case <-pu.woken:
			}
			continue
		}
		var a protocol.PushAnswer
		if err == nil {
			var out []byte
			out, err = pu.ps.link.Call(ctx, pu.peer, protocol.EnvelopePush, body)
			if err == nil {
				err = a.UnmarshalBinary(out)
			}
		}
		if protocol.Refusal(err) {
			// The follower does not follow the partition here (yet): wait for its
			// next subscribe.
			pu.ps.logger.Warn("follower refused a push", "peer", pu.peer, "err", err)
			select {
			case <-ctx.Done():
			case <-pu.woken:
			}
			continue
		}
		if err != nil {
			if ctx.Err() == nil {
				pu.ps.logger.Warn("push", "peer", pu.peer, "err", err)
				sleep(ctx, pushRetry)
			}
			continue
		}
		pu.next = a.Next
		if err := pu.ps.db.SetPushProgress(ctx, pu.peer, pu.masked, a.Next, a.Done); err != nil && ctx.Err() == nil {
			pu.ps.logger.Warn("push progress", "peer", pu.peer, "err", err)
		}
		if a.Done {
			return
		}
	}
}

// batch reads the log from next on and encodes a push of what it read.
func (pu *pusher) batch(ctx context.Context) ([]byte, int, error) {
	es, err := pu.ps.log.Fetch(ctx, pu.masked, int64(pu.next)-1, pushBatch)
	if err != nil {
		if errors.Is(err, hub.ErrUnknownPartition) {
			return nil, 0, protocol.NewError(protocol.CodeNotFound, "partition gone")
		}
		return nil, 0, err
	}
	p := protocol.PartitionPush{Masked: pu.masked}
	size := 0
	for _, e := range es {
		pe := protocol.PushEntry{Counter: e.Counter, Terminated: e.Terminated}
		if !e.Terminated {
			if pe.Message, err = e.Message.MarshalBinary(); err != nil {
				return nil, 0, fmt.Errorf("provider: push: %w", err)
			}
		}
		if len(p.Entries) > 0 && size+len(pe.Message) > pushBytes {
			break
		}
		size += len(pe.Message)
		p.Entries = append(p.Entries, pe)
	}
	if len(p.Entries) == 0 {
		return nil, 0, nil
	}
	body, err := p.MarshalBinary()
	return body, len(p.Entries), err
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
