// Package natsbus is the fan-out between the nodes of one provider (scale-out) on
// NATS: when a node sequences a partition message or terminates a partition,
// enqueues mailbox entries or revokes a token, the other nodes whose sockets care
// learn it within milliseconds. It implements hub.Bus, mailbox.Bus and
// gateway.Revocations.
//
// The store stays the source of truth. NATS carries notifications (a partition
// entry whole when it is small, else its counter), and a node that may have missed
// some refetches from the store: after every (re)connect and every slow-consumer
// drop, all its subscribers re-read from their last counter, and a periodic poll
// compares each followed partition's length in the store with what the bus saw. So
// nothing is lost, reordered or duplicated when NATS drops a message: subscribers
// drop what they already have by counter and catch up from the store on a gap.
//
// Subjects, under Config.Subject (one provider's nodes share it):
//
//	<prefix>.p.<hex masked key>  a partition's entries (nodes subscribe while they have sinks)
//	<prefix>.m.<client id>       a client's mailbox has new entries (likewise)
//	<prefix>.m.all               every mailbox may have new entries (large fan-outs)
//	<prefix>.r                   a client's token was revoked (every node)
//
// and those of the federation links among the nodes (calls.go).
package natsbus

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/hub"
)

var (
	_ hub.Bus             = (*Bus)(nil)
	_ mailbox.Bus         = (*Bus)(nil)
	_ gateway.Revocations = (*Bus)(nil)
)

// Config configures a node's bus.
type Config struct {
	// URL is the NATS server (or comma-separated servers), e.g. nats://10.0.0.5:4222.
	URL string
	// NodeID names this node in its NATS connection and logs.
	NodeID string
	// Subject is the prefix of the provider's subjects (default "mimids").
	// Providers that share a NATS server need different prefixes.
	Subject string
	// PollInterval is how often the safety-net poll compares followed partitions
	// with the store and makes live mailboxes refetch (default 10 s).
	PollInterval time.Duration
	// MaxInline bounds the encoded partition entry carried whole (default 8 KiB:
	// most application messages);
	// a larger one is announced by its counter, and subscribers read it from the
	// store.
	MaxInline int
	// ReconnectWait is the pause between reconnect attempts (default 250 ms).
	ReconnectWait time.Duration
	// Logger receives the bus's logs (default: discard).
	Logger *slog.Logger
}

func (c *Config) applyDefaults() {
	if c.Subject == "" {
		c.Subject = "mimids"
	}
	if c.PollInterval <= 0 {
		c.PollInterval = 10 * time.Second
	}
	if c.MaxInline <= 0 {
		c.MaxInline = 8 << 10
	}
	if c.ReconnectWait <= 0 {
		c.ReconnectWait = 250 * time.Millisecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem of the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("natsbus: url is required"))
	}
	if c.Subject != "" && (strings.ContainsAny(c.Subject, " \t\r\n*>") || strings.HasPrefix(c.Subject, ".") || strings.HasSuffix(c.Subject, ".")) {
		errs = append(errs, fmt.Errorf("natsbus: subject prefix %q: want dot-separated tokens without wildcards", c.Subject))
	}
	if c.MaxInline < 0 {
		errs = append(errs, fmt.Errorf("natsbus: max inline %d, want >= 0", c.MaxInline))
	}
	return errors.Join(errs...)
}

// Targets are this node's parts that the other nodes' notifications reach; Run
// takes them, since the parts are built with the bus. Any may be nil.
type Targets struct {
	Hub        HubTarget
	Mailbox    MailboxTarget
	Sockets    SocketTarget
	Federation FederationTarget // calls.go
	Copies     CopyTarget       // calls.go
}

// HubTarget is what the bus needs from the hub (*hub.Hub).
type HubTarget interface {
	Deliver(e hub.Entry)
	Poke(masked []byte)
	Partition(ctx context.Context, masked []byte) (hub.PartitionInfo, error)
}

// MailboxTarget is what the bus needs from the mailbox (*mailbox.Mailbox).
type MailboxTarget interface{ Poke(clientID int64) }

// SocketTarget is what the bus needs from the gateway (*gateway.Server).
type SocketTarget interface {
	CloseClient(clientID int64, code int, reason string) int
}

// Stats are the bus's running totals.
type Stats struct {
	Published, PublishErrors, Received, Resyncs, Polled, PollPokes int64
}

// Bus is one node's connection to the provider's NATS subjects.
type Bus struct {
	// Static after Connect.
	cfg    Config
	nc     *nats.Conn
	in     chan *nats.Msg // every subscription's messages, in arrival order
	resync chan struct{}  // 1-buffered: make every subscriber refetch (reconnect, drop)
	fresh  chan struct{}  // 1-buffered: new watches wait for their confirmation
	log    *slog.Logger
	bufs   sync.Pool // *[]byte encode buffers

	published, publishErrors, received, resyncs, polled, pollPokes atomic.Int64

	mu            sync.Mutex
	parts         map[string]*partWatch        // by masked key; Guarded by mu.
	mboxes        map[int64]*nats.Subscription // Guarded by mu.
	pendingParts  []*partWatch                 // watches not yet confirmed by a flush; Guarded by mu.
	pendingMboxes []int64                      // the same for mailboxes; Guarded by mu.
	pendingCopies [][]byte                     // the same for copies (calls.go); Guarded by mu.
	copies        int                          // copy watches (calls.go); Guarded by mu.
}

// partWatch is this node's NATS subscription to one partition. Guarded by Bus.mu.
type partWatch struct {
	sub        *nats.Subscription
	masked     []byte
	next       int64 // the length the bus knows of (-1: not yet polled)
	terminated bool
}

// inboxSize bounds the messages received and not yet dispatched (with MaxInline's
// default, 64 MiB at most); past it NATS drops, reports a slow consumer, and the bus
// resyncs from the store.
const inboxSize = 8192

// Connect dials the NATS server. It returns at once if the server is down: the
// connection retries in the background, and the node works alone (from the store
// and its poll) until it is up.
func Connect(ctx context.Context, cfg Config) (*Bus, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.applyDefaults()
	b := &Bus{cfg: cfg, in: make(chan *nats.Msg, inboxSize), resync: make(chan struct{}, 1),
		fresh: make(chan struct{}, 1), log: cfg.Logger.With("part", "natsbus"),
		parts: make(map[string]*partWatch), mboxes: make(map[int64]*nats.Subscription)}
	name := "mimids"
	if cfg.NodeID != "" {
		name += " " + cfg.NodeID
	}
	nc, err := nats.Connect(cfg.URL, nats.Name(name), nats.NoEcho(), nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1), nats.ReconnectWait(cfg.ReconnectWait), nats.ReconnectJitter(cfg.ReconnectWait/2, cfg.ReconnectWait/2),
		nats.ConnectHandler(func(*nats.Conn) { b.signalResync("connected") }),
		nats.ReconnectHandler(func(*nats.Conn) { b.signalResync("reconnected") }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { b.log.Warn("natsbus: disconnected", "err", err) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			b.log.Warn("natsbus: async error", "err", err)
			if errors.Is(err, nats.ErrSlowConsumer) {
				b.signalResync("slow consumer")
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("natsbus: connect: %w", err)
	}
	b.nc = nc
	if ctx.Err() != nil {
		nc.Close()
		return nil, ctx.Err()
	}
	return b, nil
}

// Close closes the connection; Run closes it too when it returns.
func (b *Bus) Close() { b.nc.Close() }

// Health reports whether the node is connected to NATS (for /readyz). A node that
// is not still serves its own sockets, and the others' changes through its poll.
func (b *Bus) Health() error {
	if b.nc.IsConnected() {
		return nil
	}
	return fmt.Errorf("natsbus: not connected (%s)", b.nc.Status())
}

// Stats returns the bus's counters.
func (b *Bus) Stats() Stats {
	return Stats{Published: b.published.Load(), PublishErrors: b.publishErrors.Load(), Received: b.received.Load(),
		Resyncs: b.resyncs.Load(), Polled: b.polled.Load(), PollPokes: b.pollPokes.Load()}
}

func (b *Bus) signalResync(why string) {
	b.log.Info("natsbus: resync from the store", "reason", why)
	select {
	case b.resync <- struct{}{}:
	default:
	}
}

func (b *Bus) partSubject(masked []byte) string {
	s := make([]byte, 0, len(b.cfg.Subject)+3+2*len(masked))
	s = append(s, b.cfg.Subject...)
	s = append(s, ".p."...)
	s = hex.AppendEncode(s, masked)
	return string(s)
}

func (b *Bus) mailboxSubject(clientID int64) string {
	return b.cfg.Subject + ".m." + strconv.FormatInt(clientID, 10)
}

func (b *Bus) publish(subject string, data []byte) {
	if err := b.nc.Publish(subject, data); err != nil {
		// Buffered while reconnecting; past the buffer the others learn it
		// from the store (their resync after reconnecting, or their poll).
		b.publishErrors.Add(1)
		b.log.Debug("natsbus: publish", "subject", subject, "err", err)
		return
	}
	b.published.Add(1)
}
