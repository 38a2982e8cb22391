package federation

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/mimids/mimids/protocol"
)

// Config configures Links. The zero value of every tuning field takes its default
// (WithDefaults).
type Config struct {
	// Domain is this provider's domain: what its certificate proves.
	Domain string
	// Certificate is this provider's certificate for Domain with its key, presented
	// on both sides of every link.
	Certificate tls.Certificate
	// Listen is the address of the federation listener; "" does not listen: the
	// provider then only dials its peers.
	Listen string
	// Listener, if set, is served instead of listening on Listen (tests).
	Listener net.Listener

	// Window and WindowBytes bound the envelopes in flight (sent, not yet answered)
	// on one link, by count and by body bytes. Defaults 64 and 16 MiB; at most
	// protocol.MaxWindow and protocol.MaxWindowBytes.
	Window      int
	WindowBytes int
	// MinBackoff and MaxBackoff bound the wait between dials of a peer that is away:
	// it doubles after each failure, with jitter. Defaults 500ms and 30s.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// DialTimeout bounds a dial: TCP, TLS and the WebSocket handshake (also the
	// listener's handshake timeout). Default 10s.
	DialTimeout time.Duration
	// WriteTimeout bounds one write and the wait for a pong. Default 10s.
	WriteTimeout time.Duration
	// PingInterval is how often a link is pinged. Default 15s.
	PingInterval time.Duration
	// ProbeTimeout bounds the ping that decides, when a peer's new link would
	// lose to the link that is up (§5.2), whether that link is still alive; one
	// that does not answer in time is replaced. Default 1s.
	ProbeTimeout time.Duration
	// PeerRefresh is how often the allow-list is read again from the store (peers
	// added or removed by `mimids peer` in another process). Default 2s.
	PeerRefresh time.Duration
	// Owns, if set, says whether this node runs the link with a peer, on a
	// provider of several nodes (scale-out): Leaser.Holds. A node that does not
	// neither dials the peer nor accepts its link (HTTP 503), so one node at a
	// time runs it. Nil: this node runs every link.
	Owns func(peer string) bool
	// ForwardCall, if set with Owns, runs a Call made on a node that does not run
	// the peer's link: it hands the call to the node that does (which runs it with
	// CallHere) and returns its answer, so that the Call does not wait here for an
	// answer that reaches the owner. Nil: such a Call waits here (and times out).
	ForwardCall func(ctx context.Context, peer string, typ protocol.EnvelopeType, body []byte) ([]byte, error)
	// Enqueued, if set with Owns, is called after an envelope for peer committed
	// to the queue on a node that does not run peer's link: tell the owner node,
	// whose Links.Wake sends it at once. Owners also read their queues every
	// PeerRefresh, so an envelope whose notice is lost waits that long at most.
	Enqueued func(peer string)
	// Logger receives the link layer's logs; nil discards them.
	Logger *slog.Logger
}

// WithDefaults returns c with every unset tuning field at its default.
func (c Config) WithDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Window == 0 {
		c.Window = 64
	}
	if c.WindowBytes == 0 {
		c.WindowBytes = 16 << 20
	}
	def(&c.MinBackoff, 500*time.Millisecond)
	def(&c.MaxBackoff, 30*time.Second)
	def(&c.DialTimeout, 10*time.Second)
	def(&c.WriteTimeout, 10*time.Second)
	def(&c.PingInterval, 15*time.Second)
	def(&c.PeerRefresh, 2*time.Second)
	def(&c.ProbeTimeout, time.Second)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Validate reports every problem of c (after WithDefaults) at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("federation: "+format, args...)) }
	if err := checkDomain(c.Domain); err != nil {
		bad("domain: %v", err)
	}
	if len(c.Certificate.Certificate) == 0 || c.Certificate.PrivateKey == nil {
		bad("a certificate with its private key is required")
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			bad("listen %q is not host:port", c.Listen)
		}
	}
	if c.Window < 1 || c.Window > protocol.MaxWindow {
		bad("window %d must be 1..%d", c.Window, protocol.MaxWindow)
	}
	if c.WindowBytes < 1 || c.WindowBytes > protocol.MaxWindowBytes {
		bad("window bytes %d must be 1..%d", c.WindowBytes, protocol.MaxWindowBytes)
	}
	if c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff {
		bad("backoff %v..%v: min must be positive and max at least min", c.MinBackoff, c.MaxBackoff)
	}
	if c.DialTimeout <= 0 || c.WriteTimeout <= 0 || c.PingInterval <= 0 || c.PeerRefresh <= 0 || c.ProbeTimeout <= 0 {
		bad("dial timeout, write timeout, ping interval, peer refresh and probe timeout must be positive")
	}
	return errors.Join(errs...)
}
