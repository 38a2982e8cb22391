package hub

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/protocol"
)

// Config configures a Hub. Zero fields take the defaults of DefaultConfig
// (applied by New); Validate reports every problem at once.
type Config struct {
	// Domain is this provider's ServiceProviderId: Welcomes for it go to
	// local mailboxes.
	Domain string
	// MaxMessageSize bounds an MLSMessage in a SendRequest or
	// ExternalJoinRequest (default 1 MiB).
	MaxMessageSize int
	// MaxGroupInfoSize bounds a GroupInfo, and a ratchet tree given beside
	// one (default 4 MiB).
	MaxGroupInfoSize int
	// MaxWelcomeSize bounds a Welcome (default 4 MiB).
	MaxWelcomeSize int
	// StateCacheSize is how many partitions' public group states are kept
	// in memory (default 1024); others are rebuilt from the store.
	StateCacheSize int
	// Policy is the provider's own policy: provider-wide bans and own users'
	// rate limits (directory.Policy). Nil: nothing is banned or limited.
	Policy ProviderPolicy
	// Receive bounds a ReceiveResponse: messages and bytes of the requested
	// partition (defaults 1000, 8 MiB), hinted partitions (default 8), and
	// messages per hinted partition (default 64); a negative value gives
	// no hints.
	ReceiveMaxMessages int
	ReceiveMaxBytes    int
	HintPartitions     int
	HintMessages       int
	// WelcomeRetry is how often Run retries local Welcomes whose mailbox
	// delivery failed (default 30 s).
	WelcomeRetry time.Duration
	// MLS tunes how public group states judge messages.
	MLS mls.Options
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives the hub's logs (default: discard).
	Logger *slog.Logger
	// Bus, if set, tells the other nodes of this provider what this hub
	// commits (scale-out, package natsbus); nil: a single node.
	Bus Bus
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		MaxMessageSize:     1 << 20,
		MaxGroupInfoSize:   4 << 20,
		MaxWelcomeSize:     4 << 20,
		StateCacheSize:     1024,
		ReceiveMaxMessages: 1000,
		ReceiveMaxBytes:    8 << 20,
		HintPartitions:     8,
		HintMessages:       64,
		WelcomeRetry:       30 * time.Second,
	}
}

func (c *Config) applyDefaults() {
	if c.Policy == nil {
		c.Policy = noPolicy{}
	}
	d := DefaultConfig()
	setInt := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setInt(&c.MaxMessageSize, d.MaxMessageSize)
	setInt(&c.MaxGroupInfoSize, d.MaxGroupInfoSize)
	setInt(&c.MaxWelcomeSize, d.MaxWelcomeSize)
	setInt(&c.StateCacheSize, d.StateCacheSize)
	setInt(&c.ReceiveMaxMessages, d.ReceiveMaxMessages)
	setInt(&c.ReceiveMaxBytes, d.ReceiveMaxBytes)
	setInt(&c.HintPartitions, d.HintPartitions)
	setInt(&c.HintMessages, d.HintMessages)
	if c.WelcomeRetry == 0 {
		c.WelcomeRetry = d.WelcomeRetry
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem of c (after defaults) at once.
func (c Config) Validate() error {
	c.applyDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("hub: config: "+format, args...)) }
	if c.Domain == "" || len(c.Domain) > protocol.MaxProviderLen {
		bad("domain must be 1-%d bytes", protocol.MaxProviderLen)
	}
	if c.MaxMessageSize < 1024 || c.MaxMessageSize > protocol.MaxVarint {
		bad("max message size %d outside [1 KiB, 2^30-1]", c.MaxMessageSize)
	}
	if c.MaxGroupInfoSize < 1024 || c.MaxGroupInfoSize > protocol.MaxVarint {
		bad("max GroupInfo size %d outside [1 KiB, 2^30-1]", c.MaxGroupInfoSize)
	}
	if c.MaxWelcomeSize < 1024 || c.MaxWelcomeSize > protocol.MaxVarint {
		bad("max Welcome size %d outside [1 KiB, 2^30-1]", c.MaxWelcomeSize)
	}
	if c.StateCacheSize < 1 {
		bad("state cache size %d < 1", c.StateCacheSize)
	}
	if c.ReceiveMaxMessages < 1 || c.ReceiveMaxBytes < 1 || c.HintMessages < 0 {
		bad("receive limits must be positive")
	}
	if c.WelcomeRetry < 0 {
		bad("durations must not be negative")
	}
	return errors.Join(errs...)
}
