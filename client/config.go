package client

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/mimids/mimids/protocol"
)

// Defaults applied by Dial to zero Config fields.
const (
	// DefaultReadLimit is the largest frame the client reads: the server's default
	// max_frame_size (1 MiB) plus slack for the frame header.
	DefaultReadLimit          = 1<<20 + 64<<10
	DefaultAckDelay           = 10 * time.Millisecond
	DefaultSendQueueLen       = 256
	DefaultSendQueueBytes     = 4 << 20
	DefaultDeliveryQueueLen   = 1024
	DefaultDeliveryQueueBytes = 16 << 20
	DefaultHandshakeTimeout   = 10 * time.Second
	DefaultWriteTimeout       = 10 * time.Second
	DefaultPingInterval       = 30 * time.Second
	DefaultMinBackoff         = 100 * time.Millisecond
	DefaultMaxBackoff         = 30 * time.Second
)

// maxTokenLen is the longest device token the server's auth frame decoder accepts.
const maxTokenLen = 1024

// Handler processes one delivery. It is called from a single goroutine, in strictly
// increasing seq order, never twice for the same seq within one Client. ctx is
// canceled when the connection that carried d is lost or the client is force-closed;
// the entry will then be redelivered unless it was acknowledged.
//
// Returning nil marks d handled (and, unless Config.ManualAck is set, acknowledged).
// Returning an error leaves d unacknowledged: the client closes the connection and
// reconnects with backoff, and the server replays d. The handler may call Client.Do.
// d.Payload belongs to the handler.
type Handler func(ctx context.Context, d *Delivery) error

// Config configures a Client. The zero value of every field except URL and Token
// means its default.
type Config struct {
	// URL is the socket endpoint, e.g. "ws://127.0.0.1:8080/v1/socket".
	// http and https URLs are accepted as ws and wss.
	URL string
	// Token is the device token ("mdt_...") sent in the auth frame.
	Token string

	// HTTPClient performs the WebSocket handshake. Nil: one built from TLSConfig.
	HTTPClient *http.Client
	// TLSConfig is used for wss URLs when HTTPClient is nil.
	TLSConfig *tls.Config
	// Origin, when set, is sent as the handshake's Origin header.
	Origin string

	// Handler receives the mailbox entries. Nil: the client does not consume the
	// mailbox (deliveries are read and dropped, never acknowledged).
	Handler Handler
	// ManualAck disables automatic acks: entries are acknowledged only by Client.Ack.
	ManualAck bool
	// LastSeq is the highest seq an earlier run already handled; deliveries up to it
	// are dropped as duplicates (and re-acknowledged).
	LastSeq uint64
	// Incarnation is the store incarnation LastSeq belongs to (Client.Incarnation of
	// the earlier run). When the server names another, LastSeq is dropped: its store
	// went back or was restored, and seqs up to LastSeq may be new entries. Empty:
	// LastSeq is trusted against any incarnation (a client that never saw one).
	Incarnation string
	// AckDelay is how long the writer waits to coalesce acks after a handled
	// delivery. Negative: ack at once.
	AckDelay time.Duration

	// ReadLimit is the largest frame the client accepts. A larger frame from the
	// server ends the client with ErrFrameTooBig.
	ReadLimit int64
	// SendQueueLen and SendQueueBytes bound the requests waiting for the writer;
	// Do blocks (honoring its context) while the queue is full.
	SendQueueLen   int
	SendQueueBytes int64
	// DeliveryQueueLen and DeliveryQueueBytes bound the deliveries read but not yet
	// handled. When they overflow, the client stops queueing, handles what it has,
	// and reconnects so that the server replays the rest (a resync).
	DeliveryQueueLen   int
	DeliveryQueueBytes int64

	// HandshakeTimeout bounds dialing plus authentication.
	HandshakeTimeout time.Duration
	// WriteTimeout bounds each frame write and each ping.
	WriteTimeout time.Duration
	// PingInterval is the period of client pings. Negative disables them.
	PingInterval time.Duration

	// MinBackoff and MaxBackoff bound the exponential, jittered reconnect delay.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// MaxReconnectAttempts ends the client after this many consecutive failed
	// reconnect attempts (0: unlimited).
	MaxReconnectAttempts int

	// OnPush receives the push and partition_event frames (*protocol.Push,
	// *protocol.PartitionEvent) of the partitions the client subscribed to. It runs on
	// the reader goroutine and must not block; its byte slices alias the message
	// buffer (copy what you keep). Nil: such frames are dropped.
	OnPush func(protocol.Frame)

	// OnConnect is called after every successful authentication.
	OnConnect func(SessionInfo)
	// OnDisconnect is called with the cause each time a connection ends (not when
	// the client is closed by Close).
	OnDisconnect func(error)
	// Logger receives connection events. Nil: discard.
	Logger *slog.Logger
}

// Validate reports every invalid setting at once.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("client: config: "+format, args...))
	}
	if c.URL == "" {
		bad("URL is empty")
	} else if u, err := url.Parse(c.URL); err != nil {
		bad("URL: %v", err)
	} else {
		switch u.Scheme {
		case "ws", "wss", "http", "https":
		default:
			bad("URL scheme %q: want ws, wss, http or https", u.Scheme)
		}
		if u.Host == "" {
			bad("URL %q has no host", c.URL)
		}
	}
	if _, err := hex.DecodeString(c.Incarnation); err != nil {
		bad("Incarnation %q is not hex", c.Incarnation)
	}
	if c.Token == "" {
		bad("Token is empty")
	} else if len(c.Token) > maxTokenLen {
		bad("Token is %d bytes, limit %d", len(c.Token), maxTokenLen)
	}
	if c.ReadLimit < 0 || (c.ReadLimit > 0 && c.ReadLimit < 1024) {
		bad("ReadLimit %d: want 0 (default) or at least 1024", c.ReadLimit)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"SendQueueLen", int64(c.SendQueueLen)}, {"SendQueueBytes", c.SendQueueBytes},
		{"DeliveryQueueLen", int64(c.DeliveryQueueLen)}, {"DeliveryQueueBytes", c.DeliveryQueueBytes},
		{"HandshakeTimeout", int64(c.HandshakeTimeout)}, {"WriteTimeout", int64(c.WriteTimeout)},
		{"MinBackoff", int64(c.MinBackoff)}, {"MaxBackoff", int64(c.MaxBackoff)},
		{"MaxReconnectAttempts", int64(c.MaxReconnectAttempts)},
	} {
		if f.v < 0 {
			bad("%s is negative", f.name)
		}
	}
	if c.MinBackoff > 0 && c.MaxBackoff > 0 && c.MinBackoff > c.MaxBackoff {
		bad("MinBackoff %v exceeds MaxBackoff %v", c.MinBackoff, c.MaxBackoff)
	}
	return errors.Join(errs...)
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	setDur := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	if c.ReadLimit == 0 {
		c.ReadLimit = DefaultReadLimit
	}
	if c.SendQueueLen == 0 {
		c.SendQueueLen = DefaultSendQueueLen
	}
	if c.SendQueueBytes == 0 {
		c.SendQueueBytes = DefaultSendQueueBytes
	}
	if c.DeliveryQueueLen == 0 {
		c.DeliveryQueueLen = DefaultDeliveryQueueLen
	}
	if c.DeliveryQueueBytes == 0 {
		c.DeliveryQueueBytes = DefaultDeliveryQueueBytes
	}
	setDur(&c.AckDelay, DefaultAckDelay)
	setDur(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	setDur(&c.WriteTimeout, DefaultWriteTimeout)
	setDur(&c.PingInterval, DefaultPingInterval)
	setDur(&c.MinBackoff, DefaultMinBackoff)
	setDur(&c.MaxBackoff, DefaultMaxBackoff)
	if c.MinBackoff > c.MaxBackoff {
		c.MaxBackoff = c.MinBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.HTTPClient == nil {
		if c.TLSConfig == nil {
			c.HTTPClient = defaultHTTPClient
		} else {
			c.HTTPClient = &http.Client{Transport: &http.Transport{
				Proxy:               http.ProxyFromEnvironment,
				TLSClientConfig:     c.TLSConfig,
				TLSHandshakeTimeout: c.HandshakeTimeout,
			}}
		}
	}
	return c
}

// defaultHTTPClient is shared by every Client without its own HTTPClient or TLSConfig.
// HTTP/2 is not attempted: WebSocket handshakes need HTTP/1.1.
var defaultHTTPClient = &http.Client{Transport: &http.Transport{
	Proxy:               http.ProxyFromEnvironment,
	TLSHandshakeTimeout: DefaultHandshakeTimeout,
}}
