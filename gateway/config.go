package gateway

import (
	"errors"
	"fmt"
	"strings"
	"time"
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
	}{{"write_timeout", c.WriteTimeout}, {"ping_interval", c.PingInterval}, {"auth_timeout", c.AuthTimeout}, {"shutdown_timeout", c.ShutdownTimeout}} {
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
	return errors.Join(errs...)
}
