package gateway

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mimids/mimids/ohttp"
)

// Config tunes the client gateway. The zero value of every field means its default.
type Config struct {
	// AllowedOrigins are the browser origins (host patterns, as in
	// coder/websocket.AcceptOptions.OriginPatterns) allowed to open the client socket
	// besides the server's own host. "*" is refused: list origins explicitly.
	AllowedOrigins []string `json:"allowed_origins"`
	// MaxFrameSize is the read limit of a client socket, in bytes.
	MaxFrameSize int `json:"max_frame_size"`
	// SendQueueMessages and SendQueueBytes bound what waits to be written to one socket.
	SendQueueMessages int `json:"send_queue_messages"`
	SendQueueBytes    int `json:"send_queue_bytes"`
	// WriteTimeout bounds one write; a client that does not read for this long is a
	// slow consumer and is disconnected.
	WriteTimeout Duration `json:"write_timeout"`
	// PingInterval is how often the server pings an idle socket.
	PingInterval Duration `json:"ping_interval"`
	// AuthTimeout is how long a new socket may take to send its auth frame.
	AuthTimeout Duration `json:"auth_timeout"`
	// MaxInflightRequests bounds the requests one socket may have in progress.
	MaxInflightRequests int `json:"max_inflight_requests"`
	// ReplayBatch is how many stored mailbox entries are read per query on catch-up.
	ReplayBatch int `json:"replay_batch"`
	// MaxSubscriptions bounds the partitions one socket may subscribe to.
	MaxSubscriptions int `json:"max_subscriptions"`
	// ShutdownTimeout bounds the drain on shutdown.
	ShutdownTimeout Duration `json:"shutdown_timeout"`

	// MaxAuthFrameSize is the read limit of a socket before it has authenticated
	// (the auth frame is small); it rises to MaxFrameSize after auth_ok.
	MaxAuthFrameSize int `json:"max_auth_frame_size"`
	// MaxUnauthenticated and MaxUnauthenticatedPerAddress bound the sockets accepted
	// but not yet authenticated, in total (beyond: HTTP 503 before the upgrade) and
	// per source IP address (beyond: HTTP 429).
	MaxUnauthenticated           int `json:"max_unauthenticated"`
	MaxUnauthenticatedPerAddress int `json:"max_unauthenticated_per_address"`
	// MaxSocketsPerClient and MaxSocketsPerUser bound the authenticated sockets of
	// one client (device token) and of all the clients of one user; a socket past
	// either is closed with 4009 after its auth frame.
	MaxSocketsPerClient int `json:"max_sockets_per_client"`
	MaxSocketsPerUser   int `json:"max_sockets_per_user"`
	// ClientQueueBytes bounds the bytes queued for all the sockets of one client:
	// past it, mailbox deliveries and partition pushes wait in the store until one
	// of the client's queues drains.
	ClientQueueBytes int `json:"client_queue_bytes"`
	// TotalQueueBytes is the budget of the bytes queued for every socket of the
	// server: past it, the sockets with the largest queues are closed with 4010.
	TotalQueueBytes int64 `json:"total_queue_bytes"`
	// HTTP tunes the HTTP server every route is served on.
	HTTP HTTPConfig `json:"http"`
}

// HTTPConfig tunes the HTTP server. Its timeouts end at the WebSocket upgrade: a
// socket's connection is the gateway's from then on (auth_timeout, write_timeout,
// ping_interval).
type HTTPConfig struct {
	// ReadHeaderTimeout bounds reading a request's headers; ReadTimeout the whole
	// request, body included (a body trickled slower is cut).
	ReadHeaderTimeout Duration `json:"read_header_timeout"`
	ReadTimeout       Duration `json:"read_timeout"`
	// WriteTimeout bounds a request's handling and answer, from the end of its
	// headers; it must exceed the relay's 10 s wait for a peer.
	WriteTimeout Duration `json:"write_timeout"`
	// IdleTimeout is how long a keep-alive connection may wait for its next request.
	IdleTimeout Duration `json:"idle_timeout"`
	// MaxBodyBytes bounds every request body but the Oblivious HTTP gateway's and
	// relay's, which bound their own (64 KiB): a larger one is refused with 413, by
	// its Content-Length before anything is read, or as soon as it goes past.
	MaxBodyBytes int64 `json:"max_body_bytes"`
}

// Duration is a time.Duration that reads and writes JSON as a Go duration string.
type Duration time.Duration

func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// WithDefaults returns c with every unset field given its default.
func (c Config) WithDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defD := func(v *Duration, d time.Duration) {
		if *v == 0 {
			*v = Duration(d)
		}
	}
	def(&c.MaxFrameSize, 1<<20)
	def(&c.SendQueueMessages, 1024)
	def(&c.SendQueueBytes, 8<<20)
	def(&c.MaxInflightRequests, 16)
	def(&c.ReplayBatch, 256)
	def(&c.MaxSubscriptions, 1024)
	def(&c.MaxAuthFrameSize, 4096)
	def(&c.MaxUnauthenticated, 2048)
	def(&c.MaxUnauthenticatedPerAddress, 256)
	def(&c.MaxSocketsPerClient, 8)
	def(&c.MaxSocketsPerUser, 16384)
	def(&c.ClientQueueBytes, 16<<20) // not derived: the config file is read over the defaults
	if c.TotalQueueBytes == 0 {
		c.TotalQueueBytes = 512 << 20
	}
	if c.HTTP.MaxBodyBytes == 0 {
		c.HTTP.MaxBodyBytes = 64 << 10
	}
	defD(&c.HTTP.ReadHeaderTimeout, 10*time.Second)
	defD(&c.HTTP.ReadTimeout, 30*time.Second)
	defD(&c.HTTP.WriteTimeout, 30*time.Second)
	defD(&c.HTTP.IdleTimeout, 30*time.Second)
	defD(&c.WriteTimeout, 10*time.Second)
	defD(&c.PingInterval, 30*time.Second)
	defD(&c.AuthTimeout, 10*time.Second)
	defD(&c.ShutdownTimeout, 10*time.Second)
	return c
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("gateway: "+format, args...)) }
	for _, o := range c.AllowedOrigins {
		if strings.TrimSpace(o) == "" || o == "*" {
			bad("allowed_origins: %q is not allowed; list each origin", o)
		}
	}
	if c.MaxFrameSize < 4096 || c.MaxFrameSize > 64<<20 {
		bad("max_frame_size %d must be between 4096 and 64 MiB", c.MaxFrameSize)
	}
	if c.SendQueueMessages < 1 {
		bad("send_queue_messages %d must be positive", c.SendQueueMessages)
	}
	if c.SendQueueBytes < c.MaxFrameSize {
		bad("send_queue_bytes %d must be at least max_frame_size %d", c.SendQueueBytes, c.MaxFrameSize)
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{{"write_timeout", c.WriteTimeout}, {"ping_interval", c.PingInterval}, {"auth_timeout", c.AuthTimeout}, {"shutdown_timeout", c.ShutdownTimeout},
		{"http.read_header_timeout", c.HTTP.ReadHeaderTimeout}, {"http.read_timeout", c.HTTP.ReadTimeout},
		{"http.write_timeout", c.HTTP.WriteTimeout}, {"http.idle_timeout", c.HTTP.IdleTimeout}} {
		if d.v <= 0 {
			bad("%s %s must be positive", d.name, d.v.D())
		}
	}
	if c.MaxInflightRequests < 1 || c.MaxInflightRequests > 1024 {
		bad("max_inflight_requests %d must be between 1 and 1024", c.MaxInflightRequests)
	}
	if c.MaxSubscriptions < 1 || c.MaxSubscriptions > 1<<16 {
		bad("max_subscriptions %d must be between 1 and 65536", c.MaxSubscriptions)
	}
	if c.ReplayBatch < 1 || c.ReplayBatch > c.SendQueueMessages {
		bad("replay_batch %d must be between 1 and send_queue_messages", c.ReplayBatch)
	}
	c.validateLimits(bad)
	return errors.Join(errs...)
}

// validateLimits checks the resource limits (docs/protocol.md §1.10, §2.1).
func (c Config) validateLimits(bad func(format string, args ...any)) {
	if c.MaxAuthFrameSize < 256 || c.MaxAuthFrameSize > c.MaxFrameSize {
		bad("max_auth_frame_size %d must be between 256 and max_frame_size", c.MaxAuthFrameSize)
	}
	if c.MaxUnauthenticated < 1 || c.MaxUnauthenticatedPerAddress < 1 || c.MaxUnauthenticatedPerAddress > c.MaxUnauthenticated {
		bad("max_unauthenticated %d and max_unauthenticated_per_address %d must be positive, the second at most the first",
			c.MaxUnauthenticated, c.MaxUnauthenticatedPerAddress)
	}
	if c.MaxSocketsPerClient < 1 || c.MaxSocketsPerUser < 1 {
		bad("max_sockets_per_client %d and max_sockets_per_user %d must be positive", c.MaxSocketsPerClient, c.MaxSocketsPerUser)
	}
	if c.ClientQueueBytes < c.SendQueueBytes {
		bad("client_queue_bytes %d must be at least send_queue_bytes %d (raise them together)", c.ClientQueueBytes, c.SendQueueBytes)
	}
	if c.TotalQueueBytes < int64(c.ClientQueueBytes) {
		bad("total_queue_bytes %d must be at least client_queue_bytes %d", c.TotalQueueBytes, c.ClientQueueBytes)
	}
	if c.HTTP.MaxBodyBytes < 1024 {
		bad("http.max_body_bytes %d must be at least 1024", c.HTTP.MaxBodyBytes)
	}
	if c.HTTP.WriteTimeout.D() <= ohttp.DefaultRelayTimeout {
		bad("http.write_timeout %s must be longer than the relay's %s wait for a peer", c.HTTP.WriteTimeout.D(), ohttp.DefaultRelayTimeout)
	}
}
