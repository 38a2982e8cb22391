// Package provider wires the parts of one mimids provider together: its
// configuration, the store, the directory, KeyPackages and discovery, the hub, the
// Oblivious HTTP gateway and relay, the client gateway and the federation links.
// Only cmd/ wires; the mimids command and tests start providers through this
// package.
package provider

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/follower"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/protocol"
)

// Config is the whole configuration of a provider. It is read from a JSON file
// (-config) and then overridden by flags; every field has a default that needs nothing.
type Config struct {
	// Domain is the provider's domain: it names users (mimi://<domain>/u/<user>).
	Domain string `json:"domain"`
	// Listen is the address of the HTTP server (client socket, admin API, dashboard).
	Listen string `json:"listen"`
	// DataDir holds the SQLite store (mimids.db).
	DataDir string      `json:"data_dir"`
	Log     LogConfig   `json:"log"`
	Store   StoreConfig `json:"store"`
	TLS     struct {
		CertFile string `json:"cert_file"`
		KeyFile  string `json:"key_file"`
	} `json:"tls"`
	Gateway gateway.Config `json:"gateway"`
	// Peers are the providers this one federates with: the relay forwards its
	// clients' Oblivious HTTP requests only to their gateways, and to our own
	// (in process, with no entry here).
	Peers       []PeerConfig      `json:"peers"`
	Discovery   DiscoveryConfig   `json:"discovery"`
	OHTTP       OHTTPConfig       `json:"ohttp"`
	KeyPackages KeyPackagesConfig `json:"key_packages"`
	Hub         HubConfig         `json:"hub"`
	Mailbox     MailboxConfig     `json:"mailbox"`
	// Federation configures the authenticated links to peer providers (federation/);
	// its peers are on the allow-list in the store (`mimids peer add`).
	Federation FederationConfig `json:"federation"`
	// Cluster makes this process one node of several that serve one provider
	// (scale-out): with cluster.nats_url, the nodes tell each other over NATS what
	// they commit (natsbus/). Without it, a single node.
	Cluster ClusterConfig `json:"cluster"`
	// Dashboard tunes the admin dashboard's sessions and logins.
	Dashboard DashboardConfig `json:"dashboard"`
	// Clock, if set, is the time of KeyPackage validation, claims and discovery
	// tokens (tests run real KeyPackages at their fixture time). Not configurable.
	Clock func() time.Time `json:"-"`
}

// StoreConfig chooses and tunes the store.
type StoreConfig struct {
	// Driver is "sqlite" (the embedded default: a file in the data directory) or
	// "postgres" (a PostgreSQL database that several nodes of the provider share).
	Driver string `json:"driver"`
	// DSN names the PostgreSQL database (postgres://user:password@host:port/db or
	// key=value pairs); postgres only.
	DSN string `json:"dsn"`
	// MaxConns is the size of each node's PostgreSQL connection pool (0: 16).
	MaxConns int32 `json:"max_conns"`
	// The rest tunes the SQLite store.
	// Synchronous is "full" (a commit survives power loss) or "normal" (it
	// survives a crash of the process).
	Synchronous string `json:"synchronous"`
	// IntegrityCheck is run on the store when the server starts: "quick"
	// (PRAGMA quick_check), "full" (PRAGMA integrity_check) or "off". A store that
	// fails it is not served.
	IntegrityCheck string `json:"integrity_check"`
	// MinFreeBytes: /readyz reports store_disk down while the file system holding
	// the store has less free space (0: not checked).
	MinFreeBytes int64 `json:"min_free_bytes"`
	// ForceNew lets the server create a new, empty store where a missing or empty
	// store file sits beside the remains of one, setting them aside (mimids serve
	// -force-new-store). Not configurable in the file.
	ForceNew bool `json:"-"`
}

// PeerConfig names a peer provider and its base URL.
type PeerConfig struct {
	Domain string `json:"domain"`
	URL    string `json:"url"` // e.g. https://b.example; the gateway is at /.well-known/ohttp-gateway
}

// DiscoveryConfig sets the bearer-token policy of discovery.
type DiscoveryConfig struct {
	TokenPolicy string           `json:"token_policy"` // per_requester or shared
	TokenTTL    gateway.Duration `json:"token_ttl"`    // per-requester token lifetime
	// RatePerSource and BurstPerSource bound the discoveries of one source (a client of
	// our relay, or the address of a peer's relay); a rate of 0 or less: no limit.
	RatePerSource  float64 `json:"rate_per_source"`
	BurstPerSource int     `json:"burst_per_source"`
}

// OHTTPConfig tunes the Oblivious HTTP gateway and relay.
type OHTTPConfig struct {
	KeyGrace   gateway.Duration `json:"key_grace"`   // how long a rotated-out key keeps working
	RelayRate  float64          `json:"relay_rate"`  // requests per second per client through the relay
	RelayBurst int              `json:"relay_burst"` // burst of the same
	// ReplayCapacity bounds the gateway's replay cache (requests per 2-minute window);
	// ReplayPerSource bounds one source's share of it.
	ReplayCapacity  int `json:"replay_capacity"`
	ReplayPerSource int `json:"replay_per_source"`
}

// KeyPackagesConfig tunes the KeyPackage store.
type KeyPackagesConfig struct {
	MaxPerUpload  int              `json:"max_per_upload"`
	MaxPerClient  int              `json:"max_per_client"`
	LowThreshold  int              `json:"low_threshold"`
	PurgeInterval gateway.Duration `json:"purge_interval"`
	UploadRate    float64          `json:"upload_rate"` // uploads per second per client; negative disables
	UploadBurst   int              `json:"upload_burst"`
	// TokenClaimsPerHour and TokenClaimBurst bound the claims one per-requester bearer
	// token makes of its user (over: rate_limited); UserClaimsPerHour and UserClaimBurst
	// the claims of one user's one-time KeyPackages by everyone (over: the last resort is
	// served). A rate of 0 or less: no limit.
	TokenClaimsPerHour float64 `json:"token_claims_per_hour"`
	TokenClaimBurst    int     `json:"token_claim_burst"`
	UserClaimsPerHour  float64 `json:"user_claims_per_hour"`
	UserClaimBurst     int     `json:"user_claim_burst"`
}

// HubConfig tunes the hub.
type HubConfig struct {
	RatePerSecond  float64 `json:"rate_per_second"` // per local user; negative disables
	RateBurst      int     `json:"rate_burst"`
	MaxMessageSize int     `json:"max_message_size"`
	StateCacheSize int     `json:"state_cache_size"`
	ReportRate     float64 `json:"report_rate"` // reports per second per client; negative disables
	ReportBurst    int     `json:"report_burst"`
}

// MailboxConfig bounds each client's mailbox: entries not yet acknowledged and the sum
// of their payload bytes.
type MailboxConfig struct {
	MaxEntries int64 `json:"max_entries"`
	MaxBytes   int64 `json:"max_bytes"`
}

// Quota is the mailbox quota the configuration sets.
func (m MailboxConfig) Quota() mailbox.Quota {
	return mailbox.Quota{MaxEntries: m.MaxEntries, MaxBytes: m.MaxBytes}
}

// FederationConfig configures the links to peer providers. They are on when a
// certificate is set; the listener only when Listen is set too (a provider without
// one only dials).
type FederationConfig struct {
	Listen       string           `json:"listen"`        // federation listener host:port; "" (default) does not listen
	CertFile     string           `json:"cert_file"`     // PEM certificate for the provider's domain (DNS SAN)
	KeyFile      string           `json:"key_file"`      // its PEM private key
	Window       int              `json:"window"`        // envelopes in flight per link
	WindowBytes  int              `json:"window_bytes"`  // their bodies
	MinBackoff   gateway.Duration `json:"min_backoff"`   // first wait between dials of a peer that is away
	MaxBackoff   gateway.Duration `json:"max_backoff"`   // the longest wait
	DialTimeout  gateway.Duration `json:"dial_timeout"`  // TCP + TLS + WebSocket handshake
	WriteTimeout gateway.Duration `json:"write_timeout"` // one write, one pong
	PingInterval gateway.Duration `json:"ping_interval"` // link pings
	PeerRefresh  gateway.Duration `json:"peer_refresh"`  // how often the allow-list is read again
	// CopyIdle and CopyRetention: a local copy of a partition followed elsewhere
	// that no local client subscribes to is unsubscribed at its hub after
	// CopyIdle, and deleted after CopyRetention (docs/protocol.md §5.14).
	CopyIdle      gateway.Duration `json:"copy_idle"`
	CopyRetention gateway.Duration `json:"copy_retention"`
}

// Enabled reports whether the provider federates (a certificate is configured).
func (f FederationConfig) Enabled() bool { return f.CertFile != "" }

func (f FederationConfig) validate(domain string, bad func(string, ...any)) {
	if (f.CertFile == "") != (f.KeyFile == "") {
		bad("federation.cert_file and federation.key_file must be set together")
	}
	if f.Listen != "" {
		if f.CertFile == "" {
			bad("federation.listen needs federation.cert_file and federation.key_file")
		}
		if _, port, err := net.SplitHostPort(f.Listen); err != nil || port == "" {
			bad("federation.listen %q is not host:port", f.Listen)
		}
	}
	if f.Enabled() && strings.Contains(domain, ":") {
		bad("domain %q: a federating provider's domain is a DNS name without a port (its certificate names it)", domain)
	}
	if f.Window < 1 || f.Window > protocol.MaxWindow || f.WindowBytes < 1 || f.WindowBytes > protocol.MaxWindowBytes {
		bad("federation.window must be 1..%d and federation.window_bytes 1..%d", protocol.MaxWindow, protocol.MaxWindowBytes)
	}
	if f.MinBackoff <= 0 || f.MaxBackoff < f.MinBackoff {
		bad("federation.min_backoff must be positive and federation.max_backoff at least min_backoff")
	}
	if f.CopyIdle <= 0 || f.CopyRetention < f.CopyIdle {
		bad("federation.copy_idle must be positive and federation.copy_retention at least copy_idle")
	}
	if f.DialTimeout <= 0 || f.WriteTimeout <= 0 || f.PingInterval <= 0 || f.PeerRefresh <= 0 {
		bad("federation.dial_timeout, write_timeout, ping_interval and peer_refresh must be positive")
	}
}

// ClusterConfig joins the nodes of one provider over NATS (docs/scale-out.md).
type ClusterConfig struct {
	NATSURL string `json:"nats_url"` // e.g. nats://10.0.0.5:4222; "" (default): a single node
	NodeID  string `json:"node_id"`  // names this node in NATS and logs (default: the host name)
	// Subject is the prefix of the provider's NATS subjects (default
	// "mimids.<domain>", so providers can share a NATS server).
	Subject string `json:"subject"`
	// PollInterval: how often a node compares the partitions its sockets follow with
	// the store and makes live mailboxes refetch, in case a notification was lost.
	PollInterval gateway.Duration `json:"poll_interval"`
	// LeaseTTL is how long a node's lease of a peer's link lasts unrenewed
	// (renewed every third of it): a node that dies hands its links over to the
	// others within it (docs/scale-out.md "Federation link leases").
	LeaseTTL gateway.Duration `json:"lease_ttl"`
}

// Enabled reports whether this process is one node of several.
func (c ClusterConfig) Enabled() bool { return c.NATSURL != "" }

func (c ClusterConfig) validate(bad func(string, ...any)) {
	if c.PollInterval < gateway.Duration(100*time.Millisecond) {
		bad("cluster.poll_interval must be at least 100ms")
	}
	if c.LeaseTTL < gateway.Duration(time.Second) {
		bad("cluster.lease_ttl must be at least 1s")
	}
	if strings.ContainsAny(c.Subject, " \t\r\n*>") || strings.HasPrefix(c.Subject, ".") || strings.HasSuffix(c.Subject, ".") {
		bad("cluster.subject %q must be dot-separated NATS tokens without wildcards", c.Subject)
	}
	if c.NATSURL != "" {
		for _, u := range strings.Split(c.NATSURL, ",") {
			if pu, err := url.Parse(strings.TrimSpace(u)); err != nil || pu.Host == "" {
				bad("cluster.nats_url %q is not a URL list (nats://host:port,...)", c.NATSURL)
				break
			}
		}
	}
}

// LogConfig selects the log format and level.
type LogConfig struct {
	Format string `json:"format"` // text or json
	Level  string `json:"level"`  // debug, info, warn, error
}

// DefaultConfig is the configuration that needs nothing: localhost on
// 127.0.0.1:8080 with the store under ./data.
func DefaultConfig() Config {
	c := Config{Domain: "localhost", Listen: "127.0.0.1:8080", DataDir: "./data", Log: LogConfig{Format: "text", Level: "info"}}
	c.Store = StoreConfig{Driver: DriverSQLite, Synchronous: "full", IntegrityCheck: "quick", MinFreeBytes: 16 << 20}
	c.Gateway = c.Gateway.WithDefaults()
	c.Discovery = DiscoveryConfig{TokenPolicy: "per_requester", TokenTTL: gateway.Duration(30 * 24 * time.Hour),
		RatePerSource: 10, BurstPerSource: 100}
	c.OHTTP = OHTTPConfig{KeyGrace: gateway.Duration(24 * time.Hour), RelayRate: 20, RelayBurst: 40,
		ReplayCapacity: 1 << 18, ReplayPerSource: 1 << 14}
	c.KeyPackages = KeyPackagesConfig{MaxPerUpload: 100, MaxPerClient: 1000, LowThreshold: 5, PurgeInterval: gateway.Duration(10 * time.Minute),
		UploadRate: directory.DefaultUploadRate, UploadBurst: directory.DefaultUploadBurst,
		TokenClaimsPerHour: 30, TokenClaimBurst: 10, UserClaimsPerHour: 60, UserClaimBurst: 20}
	c.Hub = HubConfig{RatePerSecond: 50, RateBurst: 200, MaxMessageSize: 1 << 20, StateCacheSize: 1024,
		ReportRate: directory.DefaultReportRate, ReportBurst: directory.DefaultReportBurst}
	c.Mailbox = MailboxConfig{MaxEntries: mailbox.DefaultQuota.MaxEntries, MaxBytes: mailbox.DefaultQuota.MaxBytes}
	c.Federation = FederationConfig{Window: 64, WindowBytes: 16 << 20, MinBackoff: gateway.Duration(500 * time.Millisecond),
		MaxBackoff: gateway.Duration(30 * time.Second), DialTimeout: gateway.Duration(10 * time.Second),
		WriteTimeout: gateway.Duration(10 * time.Second), PingInterval: gateway.Duration(15 * time.Second),
		PeerRefresh: gateway.Duration(2 * time.Second), CopyIdle: gateway.Duration(follower.DefaultCopyIdle),
		CopyRetention: gateway.Duration(follower.DefaultCopyRetention)}
	c.Cluster = ClusterConfig{PollInterval: gateway.Duration(10 * time.Second), LeaseTTL: gateway.Duration(15 * time.Second)}
	c.Dashboard = DashboardConfig{IdleTimeout: gateway.Duration(30 * time.Minute), MaxAge: gateway.Duration(12 * time.Hour),
		LoginsPerMinute: 10, LoginBurst: 10, MaxSessions: 1000}
	return c
}

var domainRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:[0-9]{1,5})?$`)

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !domainRE.MatchString(c.Domain) {
		bad("domain %q is not a lower-case DNS name", c.Domain)
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" {
		bad("listen %q is not host:port", c.Listen)
	}
	if c.DataDir == "" {
		bad("data_dir is empty")
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format %q must be text or json", c.Log.Format)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Log.Level)); err != nil {
		bad("log.level %q must be debug, info, warn or error", c.Log.Level)
	}
	switch c.Store.Driver {
	case DriverSQLite:
	case DriverPostgres:
		if c.Store.DSN == "" {
			bad("store.dsn must be set for store.driver postgres")
		}
	default:
		bad("store.driver %q must be sqlite or postgres", c.Store.Driver)
	}
	if c.Store.MaxConns < 0 {
		bad("store.max_conns must not be negative")
	}
	switch c.Store.Synchronous {
	case "full", "normal":
	default:
		bad("store.synchronous %q must be full or normal", c.Store.Synchronous)
	}
	switch c.Store.IntegrityCheck {
	case "quick", "full", "off":
	default:
		bad("store.integrity_check %q must be quick, full or off", c.Store.IntegrityCheck)
	}
	if c.Store.MinFreeBytes < 0 {
		bad("store.min_free_bytes must not be negative")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls.cert_file and tls.key_file must be set together")
	}
	if err := c.Gateway.Validate(); err != nil {
		errs = append(errs, err)
	}
	seen := map[string]bool{}
	for i, p := range c.Peers {
		if !domainRE.MatchString(p.Domain) || p.Domain == c.Domain || seen[p.Domain] {
			bad("peers[%d].domain %q must be a lower-case DNS name, not ours, listed once", i, p.Domain)
		}
		seen[p.Domain] = true
		if u, err := url.Parse(p.URL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad("peers[%d].url %q must be an http(s) URL", i, p.URL)
		}
	}
	switch c.Discovery.TokenPolicy {
	case "per_requester", "shared":
	default:
		bad("discovery.token_policy %q must be per_requester or shared", c.Discovery.TokenPolicy)
	}
	if c.Discovery.TokenTTL <= 0 {
		bad("discovery.token_ttl must be positive")
	}
	if c.Discovery.RatePerSource > 0 && c.Discovery.BurstPerSource < 1 {
		bad("discovery.burst_per_source must be at least 1 with a rate_per_source")
	}
	if c.OHTTP.ReplayCapacity < 1 || c.OHTTP.ReplayPerSource < 1 || c.OHTTP.ReplayPerSource > c.OHTTP.ReplayCapacity {
		bad("ohttp.replay_capacity and ohttp.replay_per_source must be positive, replay_per_source at most replay_capacity")
	}
	if c.OHTTP.KeyGrace < gateway.Duration(5*time.Minute) {
		bad("ohttp.key_grace %s must be at least 5m", c.OHTTP.KeyGrace.D())
	}
	if c.OHTTP.RelayRate <= 0 || c.OHTTP.RelayBurst < 1 {
		bad("ohttp.relay_rate and ohttp.relay_burst must be positive")
	}
	kp := c.KeyPackages
	if kp.MaxPerUpload < 1 || kp.MaxPerUpload > 1000 || kp.MaxPerClient < kp.MaxPerUpload || kp.LowThreshold < 0 || kp.PurgeInterval <= 0 {
		bad("key_packages: max_per_upload 1..1000, max_per_client >= max_per_upload, low_threshold >= 0, purge_interval > 0")
	}
	if kp.TokenClaimsPerHour > 0 && kp.TokenClaimBurst < 1 || kp.UserClaimsPerHour > 0 && kp.UserClaimBurst < 1 {
		bad("key_packages: token_claim_burst and user_claim_burst must be at least 1 with their rate")
	}
	if c.Hub.RateBurst < 1 && c.Hub.RatePerSecond >= 0 || c.Hub.MaxMessageSize < 1024 || c.Hub.StateCacheSize < 1 {
		bad("hub: rate_burst >= 1 (unless rate_per_second < 0), max_message_size >= 1024, state_cache_size >= 1")
	}
	if c.Hub.ReportRate == 0 || c.Hub.ReportRate > 0 && c.Hub.ReportBurst < 1 {
		bad("hub: report_rate must be positive with report_burst >= 1, or negative to disable the limit")
	}
	if c.KeyPackages.UploadRate == 0 || c.KeyPackages.UploadRate > 0 && c.KeyPackages.UploadBurst < 1 {
		bad("key_packages: upload_rate must be positive with upload_burst >= 1, or negative to disable the limit")
	}
	if err := c.Mailbox.Quota().Validate(); err != nil {
		bad("mailbox: %v (max_entries, max_bytes)", err)
	}
	c.Federation.validate(c.Domain, bad)
	c.Cluster.validate(bad)
	c.Dashboard.validate(bad)
	return errors.Join(errs...)
}

// StorePath is the SQLite file of the provider.
func (c Config) StorePath() string { return filepath.Join(c.DataDir, "mimids.db") }
