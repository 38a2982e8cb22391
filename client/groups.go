package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mimids/mimids/protocol"
)

// Group methods of the client socket (docs/protocol.md, groups). The bodies are the
// hub package's structs; a refusal is a *protocol.Error whose code says why (ErrorCode):
// CodeNotFound (unknown group or partition), CodeTreeRequired (resend the GroupInfo
// with its ratchet_tree), CodeTerminated (the partition was terminated),
// CodeWrongPartition, CodePolicy (banned, muted or removed), CodeInvalidMLS,
// CodeConflict (the group or partition exists), CodeRateLimited.

// maxMaskedLen bounds a masked partition key: the longest suite hash (SHA-512).
const maxMaskedLen = 64

// ErrorCode returns the code of the *protocol.Error in err's chain, or 0 when there is
// none (a transport failure, a local error).
func ErrorCode(err error) protocol.Code {
	var we *protocol.Error
	if errors.As(err, &we) {
		return we.Code
	}
	return 0
}

// CreateGroup makes this client's provider the hub of a new group: the request
// carries the first GroupInfo (and its ratchet tree unless the GroupInfo has one),
// the first partition key and optionally the Welcome for members already added.
// The answer names the first partition by its masked key.
func (c *Client) CreateGroup(ctx context.Context, req *protocol.CreateGroupRequest) (protocol.CreateGroupResponse, error) {
	var resp protocol.CreateGroupResponse
	err := c.call(ctx, "create group", protocol.MethodCreateGroup, req, &resp)
	return resp, err
}

// Send sequences a message to the partition req.PartitionKey names (the draft's
// SendRequest; commits carry CommitData) and returns its counter in that partition.
// A retry of the same request is answered with the same counter and not sequenced
// twice, so a Send that failed with ErrDisconnected may be repeated.
func (c *Client) Send(ctx context.Context, req *protocol.SendRequest) (uint32, error) {
	var resp protocol.SendResponse
	err := c.call(ctx, "send", protocol.MethodSend, req, &resp)
	return resp.Counter, err
}

// Receive reads a partition from counter on (the draft's ReceiveRequest): its
// messages in processing order, and hints with the first messages of the
// partitions its commits opened.
func (c *Client) Receive(ctx context.Context, partitionKey []byte, counter uint32) (*protocol.ReceiveResponse, error) {
	resp := new(protocol.ReceiveResponse)
	err := c.call(ctx, "receive", protocol.MethodReceive, &protocol.ReceiveRequest{PartitionKey: partitionKey, Counter: counter}, resp)
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// GroupInfo asks the hub for a group's newest GroupInfo and ratchet tree (the
// draft's GroupInfoRequest), to join it with an external commit.
func (c *Client) GroupInfo(ctx context.Context, groupID []byte) (*protocol.GroupInfoResponse, error) {
	resp := new(protocol.GroupInfoResponse)
	if err := c.call(ctx, "group info", protocol.MethodGroupInfo, &protocol.GroupInfoRequest{GroupID: groupID}, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// ExternalJoin sequences an external commit to the group's newest partition (the
// draft's ExternalJoinRequest); the answer names that partition and the counter.
func (c *Client) ExternalJoin(ctx context.Context, req *protocol.ExternalJoinRequest) (protocol.ExternalJoinResponse, error) {
	var resp protocol.ExternalJoinResponse
	err := c.call(ctx, "external join", protocol.MethodExternalJoin, req, &resp)
	return resp, err
}

// GroupInfoAt is GroupInfo for a group this client's provider may never have
// seen: it names the group's hub (group_info_at, docs/protocol.md §4).
func (c *Client) GroupInfoAt(ctx context.Context, hub string, groupID []byte) (*protocol.GroupInfoResponse, error) {
	inner, err := (&protocol.GroupInfoRequest{GroupID: groupID}).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("client: group info at: %w", err)
	}
	resp := new(protocol.GroupInfoResponse)
	if err := c.call(ctx, "group info at", protocol.MethodGroupInfoAt, &protocol.HubHinted{Hub: hub, Body: inner}, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// ExternalJoinAt is ExternalJoin naming the group's hub (external_join_at,
// docs/protocol.md §4).
func (c *Client) ExternalJoinAt(ctx context.Context, hub string, req *protocol.ExternalJoinRequest) (protocol.ExternalJoinResponse, error) {
	var resp protocol.ExternalJoinResponse
	inner, err := req.MarshalBinary()
	if err != nil {
		return resp, fmt.Errorf("client: external join at: %w", err)
	}
	err = c.call(ctx, "external join at", protocol.MethodExternalJoinAt, &protocol.HubHinted{Hub: hub, Body: inner}, &resp)
	return resp, err
}

// Report files a report with this client's provider (about a member, a message, a
// hub or a follower) and returns its ID.
func (c *Client) Report(ctx context.Context, r *protocol.Report) (uint64, error) {
	var id reportAnswer
	err := c.call(ctx, "report", protocol.MethodReport, r, &id)
	return uint64(id), err
}

// Subscribe asks the provider to push the partition's messages to this socket from
// counter on, as protocol.Push frames to Config.OnPush (stored ones first, then live
// ones, in order), and a protocol.PartitionEvent when it is terminated. It returns the
// partition's masked key, which the frames carry. Subscribing again moves the
// position. The subscription ends with the connection: after a reconnect, subscribe
// again from the next counter wanted. Feed does all of this.
func (c *Client) Subscribe(ctx context.Context, partitionKey []byte, counter uint32) ([]byte, error) {
	w := protocol.NewWriter(make([]byte, 0, len(partitionKey)+6))
	w.Opaque(partitionKey)
	w.U32(counter)
	b, err := c.Do(ctx, protocol.MethodSubscribe, w.Bytes())
	if err != nil {
		return nil, fmt.Errorf("client: subscribe: %w", err)
	}
	masked, err := decodeMasked(b)
	if err != nil {
		return nil, fmt.Errorf("%w: subscribe: %w", ErrProtocol, err)
	}
	return masked, nil
}

// SubscribeAt is Subscribe naming the partition's hub (subscribe_at,
// docs/protocol.md §5.12), for a partition of a group hosted elsewhere whose hub
// this client's provider may not know yet (a client just welcomed).
func (c *Client) SubscribeAt(ctx context.Context, hub string, partitionKey []byte, counter uint32) ([]byte, error) {
	w := protocol.NewWriter(make([]byte, 0, len(partitionKey)+6))
	w.Opaque(partitionKey)
	w.U32(counter)
	body, err := (&protocol.HubHinted{Hub: hub, Body: w.Bytes()}).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("client: subscribe at: %w", err)
	}
	b, err := c.Do(ctx, protocol.MethodSubscribeAt, body)
	if err != nil {
		return nil, fmt.Errorf("client: subscribe at: %w", err)
	}
	masked, err := decodeMasked(b)
	if err != nil {
		return nil, fmt.Errorf("%w: subscribe at: %w", ErrProtocol, err)
	}
	return masked, nil
}

// Unsubscribe stops the pushes of a partition on this socket.
func (c *Client) Unsubscribe(ctx context.Context, masked []byte) error {
	w := protocol.NewWriter(make([]byte, 0, len(masked)+2))
	w.Opaque(masked)
	if _, err := c.Do(ctx, protocol.MethodUnsubscribe, w.Bytes()); err != nil {
		return fmt.Errorf("client: unsubscribe: %w", err)
	}
	return nil
}

// Welcome decodes the payload of a protocol.KindWelcome entry: a Welcome for this
// client, with the KeyPackageRefs of this client it names.
func (d *Delivery) Welcome() (*protocol.WelcomeDelivery, error) {
	if d.Kind != protocol.KindWelcome {
		return nil, fmt.Errorf("%w: delivery %d is %s, not a welcome", ErrProtocol, d.Seq, d.Kind)
	}
	w := new(protocol.WelcomeDelivery)
	if err := w.UnmarshalBinary(d.Payload); err != nil {
		return nil, fmt.Errorf("%w: delivery %d: %w", ErrProtocol, d.Seq, err)
	}
	return w, nil
}

// decodeMasked decodes struct { opaque masked_partition_key<V>; }.
func decodeMasked(b []byte) ([]byte, error) {
	r := protocol.NewReader(b)
	masked := r.OpaqueMax("masked_partition_key", maxMaskedLen)
	if err := r.Done(); err != nil {
		return nil, err
	}
	if len(masked) == 0 {
		return nil, errors.New("empty masked_partition_key")
	}
	return masked, nil
}

// reportAnswer is struct { uint64 report_id; }.
type reportAnswer uint64

func (a *reportAnswer) UnmarshalBinary(b []byte) error {
	r := protocol.NewReader(b)
	*a = reportAnswer(r.U64("report_id"))
	return r.Done()
}

type binaryMarshaler interface{ MarshalBinary() ([]byte, error) }
type binaryUnmarshaler interface{ UnmarshalBinary([]byte) error }

// call encodes req, sends it and decodes the answer into resp.
func (c *Client) call(ctx context.Context, op string, m protocol.Method, req binaryMarshaler, resp binaryUnmarshaler) error {
	body, err := req.MarshalBinary()
	if err != nil {
		return fmt.Errorf("client: %s: %w", op, err)
	}
	b, err := c.Do(ctx, m, body)
	if err != nil {
		return fmt.Errorf("client: %s: %w", op, err)
	}
	if err := resp.UnmarshalBinary(b); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrProtocol, op, err)
	}
	return nil
}

// Feed defaults.
const (
	DefaultFeedQueueLen   = 4096
	DefaultFeedQueueBytes = 16 << 20
	// feedParallel bounds the subscribe and receive requests a Feed has in flight.
	feedParallel = 8
	// feedRetryDelay is the wait before a failed resubscription is tried again.
	feedRetryDelay = time.Second
)

// Errors of Feed.
var (
	// ErrFeedSubscribed: the Feed already follows that partition.
	ErrFeedSubscribed = errors.New("client: feed: partition already subscribed")
	// ErrFeedNotSubscribed: the Feed does not follow that partition.
	ErrFeedNotSubscribed = errors.New("client: feed: partition not subscribed")
	// ErrFeedUnbound: the Feed has no Client yet (see Bind).
	ErrFeedUnbound = errors.New("client: feed: no client bound")
	// ErrFeedClosed: the Feed was closed, or its Client stopped.
	ErrFeedClosed = errors.New("client: feed: closed")
)

// FeedEvent is one event of a partition a Feed follows: a message (Message set,
// Counter its position in the partition's log), the partition's end (Terminated
// set, Counter the final length of its log), or a reset (Reset set, Counter the
// next counter the Feed expected).
//
// A reset comes when the provider's store has a new incarnation (it lost committed
// writes or was restored; SessionInfo.StoreReset): the hub's log may be shorter
// than what the handler saw, and new messages may take counters it already
// handled. After the reset the partition starts over: its log is delivered again
// from counter 0, as the hub now holds it, and may end again.
type FeedEvent struct {
	Masked     []byte // the partition's masked key
	Counter    uint32
	Message    []byte // the draft's Message struct, encoded (see Decode)
	Terminated bool
	Reset      bool
}

// Decode decodes the message.
func (e *FeedEvent) Decode() (*protocol.Message, error) {
	if e.Terminated || e.Reset {
		return nil, fmt.Errorf("client: feed: event of partition %x is its end or a reset, not a message", e.Masked)
	}
	m := new(protocol.Message)
	if err := m.UnmarshalBinary(e.Message); err != nil {
		return nil, fmt.Errorf("%w: push of partition %x counter %d: %w", ErrProtocol, e.Masked, e.Counter, err)
	}
	return m, nil
}

// FeedHandler receives a Feed's events. It is called from one goroutine: for each
// partition in counter order, without gap or duplicate, and the end last. ctx is
// canceled when the Feed closes. The event belongs to the handler, except Masked,
// which the partition's events share (do not modify it).
type FeedHandler func(ctx context.Context, ev *FeedEvent)

// FeedConfig configures a Feed.
type FeedConfig struct {
	// Handler receives the events. Required.
	Handler FeedHandler
	// QueueLen and QueueBytes bound the messages received but not yet handled. A
	// message that does not fit is dropped and its partition subscribed again, from
	// that message, once the handler has caught up to half the bounds.
	QueueLen   int
	QueueBytes int64
	// Logger receives resubscription failures. Nil: discard.
	Logger *slog.Logger
}

// FeedStats are cumulative counters of a Feed.
type FeedStats struct {
	Delivered    uint64 // events passed to the handler
	Duplicates   uint64 // pushes dropped because their counter was already queued
	Dropped      uint64 // pushes dropped for a full queue or a gap (fetched again)
	Resubscribes uint64 // subscribe requests after the first one of a partition
	Verified     uint64 // partition ends confirmed with a Receive
}

// Feed follows partitions over a Client's socket: it subscribes, queues the pushed
// messages, hands them to a handler in order without duplicates, and keeps the
// subscriptions alive across reconnects by subscribing again from the next counter
// of each partition (the server drops subscriptions with the socket). A message
// that was lost (a full queue, a dropped subscription) is fetched again by
// subscribing from it; a partition's end is confirmed with a Receive before it is
// delivered, so it is never delivered ahead of a message. Nothing of a Feed is
// durable: persist the counters the handler processed and pass them to Subscribe in
// the next process.
//
// Wire it with DialFeed, or NewFeed, Hook (before Dial) and Bind (after).
type Feed struct {
	cfg    FeedConfig   // Static after NewFeed.
	log    *slog.Logger // Static.
	ctx    context.Context
	cancel context.CancelFunc
	bound  chan struct{} // closed by Bind
	client *Client       // set by Bind before bound is closed
	work   chan struct{} // cap 1: a partition may need a request
	ready  chan struct{} // cap 1: the queue has events
	wg     sync.WaitGroup

	mu      sync.Mutex
	gen     uint64               // connection generation, raised by every authentication
	parts   map[string]*feedPart // by masked key; by candidate masked keys until the first answer
	byKey   map[string]*feedPart // by partition key
	queue   []feedItem
	qbytes  int64
	lowWait bool // a stalled partition waits for the queue to drain
	stats   FeedStats
}

type feedItem struct {
	p  *feedPart
	ev FeedEvent
}

// feedPart is one followed partition. Guarded by Feed.mu.
type feedPart struct {
	key     []byte   // partition key
	masked  []byte   // nil until the first subscribe is answered
	cands   [][]byte // masked key candidates (one per suite hash) until then
	next    uint32   // the next counter to queue
	subGen  uint64   // the generation whose socket holds our subscription (0: none)
	stalls  uint64   // raised whenever a push of this partition is dropped
	stalled bool     // pushes were dropped on this socket: subscribe again from next
	sawEnd  bool     // a terminated event arrived: confirm it, then end
	ended   bool     // the end was queued; nothing more
	busy    bool     // a request of the worker is in flight for it
	removed bool
}

// NewFeed returns a Feed that is not yet bound to a Client.
func NewFeed(cfg FeedConfig) (*Feed, error) {
	var errs []error
	if cfg.Handler == nil {
		errs = append(errs, errors.New("client: feed: Handler is nil"))
	}
	if cfg.QueueLen < 0 || cfg.QueueBytes < 0 {
		errs = append(errs, errors.New("client: feed: negative QueueLen or QueueBytes"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = DefaultFeedQueueLen
	}
	if cfg.QueueBytes == 0 {
		cfg.QueueBytes = DefaultFeedQueueBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Feed{cfg: cfg, log: cfg.Logger, bound: make(chan struct{}), work: make(chan struct{}, 1),
		ready: make(chan struct{}, 1), parts: make(map[string]*feedPart), byKey: make(map[string]*feedPart)}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.wg.Add(2)
	go f.dispatchLoop()
	go f.workLoop()
	return f, nil
}

// DialFeed dials a Client whose pushes go to a new Feed.
func DialFeed(ctx context.Context, cfg Config, fcfg FeedConfig) (*Client, *Feed, error) {
	f, err := NewFeed(fcfg)
	if err != nil {
		return nil, nil, err
	}
	c, err := Dial(ctx, f.Hook(cfg))
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if err := f.Bind(c); err != nil {
		f.Close()
		c.Close(ctx)
		return nil, nil, err
	}
	return c, f, nil
}

// Hook returns cfg with OnPush and OnConnect routed to the Feed first (cfg's own
// hooks, if any, are called after).
func (f *Feed) Hook(cfg Config) Config {
	push, conn := cfg.OnPush, cfg.OnConnect
	cfg.OnPush = func(fr protocol.Frame) {
		f.onPush(fr)
		if push != nil {
			push(fr)
		}
	}
	cfg.OnConnect = func(si SessionInfo) {
		f.onConnect(si.StoreReset)
		if conn != nil {
			conn(si)
		}
	}
	return cfg
}

// Bind gives the Feed the Client whose Config went through Hook.
func (f *Feed) Bind(c *Client) error {
	select {
	case <-f.bound:
		return errors.New("client: feed: already bound")
	default:
	}
	f.client = c
	close(f.bound)
	return nil
}

// Close stops the Feed: events still queued are not delivered. It does not close
// the Client. Do not call it from the handler.
func (f *Feed) Close() {
	f.cancel()
	f.wg.Wait()
}

// Stats returns the Feed's counters.
func (f *Feed) Stats() FeedStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Next returns the next counter the Feed expects for a partition (by masked key).
func (f *Feed) Next(masked []byte) (uint32, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.parts[string(masked)]; p != nil {
		return p.next, true
	}
	return 0, false
}

func (f *Feed) boundClient() (*Client, error) {
	select {
	case <-f.bound:
		if f.ctx.Err() != nil {
			return nil, ErrFeedClosed
		}
		return f.client, nil
	default:
		return nil, ErrFeedUnbound
	}
}

// Subscribe follows a partition from counter on and returns its masked key. Events
// arrive at the handler; the subscription is renewed after every reconnect.
func (f *Feed) Subscribe(ctx context.Context, partitionKey []byte, counter uint32) ([]byte, error) {
	c, err := f.boundClient()
	if err != nil {
		return nil, err
	}
	if len(partitionKey) != protocol.PartitionKeySize {
		return nil, fmt.Errorf("client: feed: partition key of %d bytes, want %d", len(partitionKey), protocol.PartitionKeySize)
	}
	f.mu.Lock()
	if f.byKey[string(partitionKey)] != nil {
		f.mu.Unlock()
		return nil, ErrFeedSubscribed
	}
	p := &feedPart{key: bytes.Clone(partitionKey), next: counter, cands: maskCandidates(partitionKey)}
	for _, m := range p.cands { // pushes may come before the answer
		f.parts[string(m)] = p
	}
	f.byKey[string(p.key)] = p
	gen := f.gen
	f.mu.Unlock()

	masked, err := c.Subscribe(ctx, partitionKey, counter)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.removeLocked(p)
		return nil, err
	}
	f.setMaskedLocked(p, masked)
	if f.gen == gen {
		p.subGen = gen
	}
	f.signal(f.work) // an end that came before the answer waits for the worker
	return masked, nil
}

// Unsubscribe stops following a partition. Events of it still queued are dropped.
func (f *Feed) Unsubscribe(ctx context.Context, masked []byte) error {
	c, err := f.boundClient()
	if err != nil {
		return err
	}
	f.mu.Lock()
	p := f.parts[string(masked)]
	if p == nil || p.masked == nil {
		f.mu.Unlock()
		return ErrFeedNotSubscribed
	}
	f.removeLocked(p)
	f.mu.Unlock()
	if err := c.Unsubscribe(ctx, masked); err != nil && ErrorCode(err) != protocol.CodeNotFound {
		return err
	}
	return nil
}

func (f *Feed) setMaskedLocked(p *feedPart, masked []byte) {
	if p.removed || p.masked != nil {
		return
	}
	for _, m := range p.cands {
		if f.parts[string(m)] == p {
			delete(f.parts, string(m))
		}
	}
	p.cands, p.masked = nil, bytes.Clone(masked)
	f.parts[string(p.masked)] = p
}

func (f *Feed) removeLocked(p *feedPart) {
	if p.removed {
		return
	}
	p.removed = true
	for _, m := range append(p.cands, p.masked) {
		if m != nil && f.parts[string(m)] == p {
			delete(f.parts, string(m))
		}
	}
	delete(f.byKey, string(p.key))
}

// maskCandidates are the masked keys a partition key may have: the hub masks with
// the group's suite hash, one of SHA-256, -384 and -512.
func maskCandidates(pk []byte) [][]byte {
	a, b, c := sha256.Sum256(pk), sha512.Sum384(pk), sha512.Sum512(pk)
	return [][]byte{a[:], b[:], c[:]}
}

func (f *Feed) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// onConnect runs on the client's run goroutine after every authentication, before
// the connection is served: every partition must be subscribed again, from counter
// 0 after a store reset (FeedEvent.Reset).
func (f *Feed) onConnect(storeReset bool) {
	f.mu.Lock()
	f.gen++
	for _, p := range f.byKey {
		p.stalled = false // no frame of an earlier socket can come any more
		if storeReset && p.masked != nil {
			f.pushLocked(p, FeedEvent{Masked: p.masked, Counter: p.next, Reset: true})
			p.next, p.sawEnd, p.ended = 0, false, false
		}
	}
	f.mu.Unlock()
	f.signal(f.work)
}

// onPush runs on the reader goroutine and must not block; the frame's bytes alias
// the read buffer.
func (f *Feed) onPush(fr protocol.Frame) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch fr := fr.(type) {
	case *protocol.Push:
		p := f.parts[string(fr.Masked)]
		switch {
		case p == nil || p.ended:
		case fr.Counter < p.next:
			f.stats.Duplicates++
		case fr.Counter > p.next || !f.roomLocked(len(fr.Message)):
			// A gap (what came before was dropped) or no room: subscribe again
			// from next; until then only next itself is taken.
			f.stats.Dropped++
			p.stalls++
			if !p.stalled {
				p.stalled = true
				f.signal(f.work)
			}
		default:
			f.pushLocked(p, FeedEvent{Masked: p.maskedOr(fr.Masked), Counter: fr.Counter, Message: bytes.Clone(fr.Message)})
			p.next++
		}
	case *protocol.PartitionEvent:
		p := f.parts[string(fr.Masked)]
		if p == nil || p.ended {
			return
		}
		switch fr.Event {
		case protocol.EventTerminated:
			p.sawEnd = true
		case protocol.EventDropped:
			p.subGen = 0
		default:
			return
		}
		f.signal(f.work)
	}
}

func (p *feedPart) maskedOr(m []byte) []byte {
	if p.masked != nil {
		return p.masked
	}
	return bytes.Clone(m)
}

func (f *Feed) roomLocked(n int) bool {
	return len(f.queue) < f.cfg.QueueLen && (len(f.queue) == 0 || f.qbytes+int64(n) <= f.cfg.QueueBytes)
}

func (f *Feed) lowLocked() bool {
	return len(f.queue) <= f.cfg.QueueLen/2 && f.qbytes <= f.cfg.QueueBytes/2
}

func (f *Feed) pushLocked(p *feedPart, ev FeedEvent) {
	f.queue = append(f.queue, feedItem{p: p, ev: ev})
	f.qbytes += int64(len(ev.Message))
	f.signal(f.ready)
}

// dispatchLoop hands queued events to the handler, one at a time.
func (f *Feed) dispatchLoop() {
	defer f.wg.Done()
	for {
		select {
		case <-f.ready:
		case <-f.ctx.Done():
			return
		}
		for f.ctx.Err() == nil {
			it, ok := f.pop()
			if !ok {
				break
			}
			f.cfg.Handler(f.ctx, &it.ev)
		}
	}
}

// pop takes the next event of a partition still followed.
func (f *Feed) pop() (feedItem, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.queue) > 0 {
		it := f.queue[0]
		f.queue[0] = feedItem{}
		f.queue = f.queue[1:]
		f.qbytes -= int64(len(it.ev.Message))
		if f.lowWait && f.lowLocked() {
			f.lowWait = false
			f.signal(f.work)
		}
		if !it.p.removed {
			f.stats.Delivered++
			return it, true
		}
	}
	return feedItem{}, false
}

// feedJob is one request of the worker for a partition: subscribe again from
// counter, or confirm the partition's end at counter with a Receive.
type feedJob struct {
	p       *feedPart
	verify  bool
	counter uint32
	gen     uint64
	stalls  uint64
}

// workLoop subscribes partitions again after reconnects and drops, and confirms
// partition ends. Requests run in parallel, at most feedParallel at a time.
func (f *Feed) workLoop() {
	defer f.wg.Done()
	select {
	case <-f.bound:
	case <-f.ctx.Done():
		return
	}
	c := f.client
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-f.work:
		case <-retry.C:
		case <-c.Done():
			return
		case <-f.ctx.Done():
			return
		}
		jobs := f.jobs()
		var g errgroup.Group
		g.SetLimit(feedParallel)
		var failed atomic.Bool
		for _, j := range jobs {
			g.Go(func() error {
				if !f.run(c, j) {
					failed.Store(true)
				}
				return nil
			})
		}
		_ = g.Wait()
		if failed.Load() {
			retry.Reset(feedRetryDelay)
		}
	}
}

// jobs lists what the partitions need and marks them busy.
func (f *Feed) jobs() []feedJob {
	f.mu.Lock()
	defer f.mu.Unlock()
	var jobs []feedJob
	low := f.lowLocked()
	for _, p := range f.byKey {
		if p.busy || p.removed || p.ended || p.masked == nil {
			continue
		}
		switch {
		case p.subGen != f.gen || p.stalled:
			if p.stalled && p.subGen == f.gen && !low {
				f.lowWait = true // pushes would only be dropped again
				continue
			}
			jobs = append(jobs, feedJob{p: p, counter: p.next, gen: f.gen, stalls: p.stalls})
		case p.sawEnd:
			jobs = append(jobs, feedJob{p: p, verify: true, counter: p.next, gen: f.gen})
		default:
			continue
		}
		p.busy = true
	}
	return jobs
}

// run performs one job; false means it failed and should be tried again later.
func (f *Feed) run(c *Client, j feedJob) bool {
	if j.verify {
		return f.verify(c, j)
	}
	_, err := c.Subscribe(f.ctx, j.p.key, j.counter)
	defer f.signal(f.work) // the partition may need more
	f.mu.Lock()
	j.p.busy = false
	removed := j.p.removed
	if err == nil && !removed {
		f.stats.Resubscribes++
		if f.gen == j.gen {
			j.p.subGen = j.gen
		}
		if j.p.stalls == j.stalls {
			j.p.stalled = false
		}
	}
	f.mu.Unlock()
	switch {
	case err == nil && removed: // raced with Unsubscribe
		_ = c.Unsubscribe(f.ctx, j.p.masked)
	case err == nil:
	case f.ctx.Err() != nil || errors.Is(err, ErrDisconnected) || errors.Is(err, ErrClosed):
		// The next connection subscribes again, or there is none.
	default:
		f.log.Warn("client: feed: subscribe again", "masked", fmt.Sprintf("%x", j.p.masked), "counter", j.counter, "err", err)
		return false
	}
	return true
}

// verify confirms a partition's end: it is delivered only when the hub has no
// message from next on, so the end never overtakes a message lost on the way.
func (f *Feed) verify(c *Client, j feedJob) bool {
	resp, err := c.Receive(f.ctx, j.p.key, j.counter)
	f.mu.Lock()
	defer f.mu.Unlock()
	j.p.busy = false
	if err != nil {
		if f.ctx.Err() != nil || errors.Is(err, ErrClosed) {
			return true
		}
		if !errors.Is(err, ErrDisconnected) {
			f.log.Warn("client: feed: confirm partition end", "masked", fmt.Sprintf("%x", j.p.masked), "err", err)
		}
		return false
	}
	switch {
	case j.p.removed || j.p.ended:
	case j.p.next != j.counter || j.p.stalled || j.p.subGen != f.gen:
		f.signal(f.work) // things moved meanwhile: look again
	case len(resp.Epoch.Messages) == 0:
		f.stats.Verified++
		j.p.ended = true
		f.pushLocked(j.p, FeedEvent{Masked: j.p.masked, Counter: j.counter, Terminated: true})
	default:
		// The end came from a stale stream: fetch the rest by subscribing again;
		// the stream ends with the end again.
		j.p.sawEnd, j.p.stalled = false, true
		j.p.stalls++
		f.signal(f.work)
	}
	return true
}
