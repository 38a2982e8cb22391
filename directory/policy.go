package directory

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/mimids/mimids/protocol"
)

// Provider-wide policy: what this provider enforces on its own users whichever
// provider hosts their groups (the draft's §Policy Enforcement), and what its admins
// see. The hub applies the bans to every member identity it can see and the rate
// limit to this provider's senders; a follower applies both to its users before it
// forwards (and the hub's terms, handed over the federation link, besides).

// Ban is a provider-wide admin ban of a user.
type Ban struct {
	UserURI string
	Reason  string
	At      time.Time
}

// Reporter is the local client that files a report.
type Reporter struct {
	ClientID int64
	UserURI  string
}

// StoredReport is a Report as filed.
type StoredReport struct {
	ID             int64
	At             time.Time
	ReporterClient int64
	ReporterUser   string
	protocol.Report
}

// PolicyStore is what Policy needs from storage.
type PolicyStore interface {
	// AddBan records or replaces a ban.
	AddBan(ctx context.Context, b Ban) error
	// RemoveBan lifts a ban; removed is false if there was none.
	RemoveBan(ctx context.Context, userURI string) (removed bool, err error)
	Bans(ctx context.Context) ([]Ban, error)
	AddReport(ctx context.Context, r StoredReport) (id int64, err error)
	// Reports lists up to limit reports, newest first.
	Reports(ctx context.Context, limit int) ([]StoredReport, error)
}

// PolicyConfig configures a Policy.
type PolicyConfig struct {
	// RatePerSecond and RateBurst are the token bucket of each own user's sends;
	// RatePerSecond of zero or less disables the limit.
	RatePerSecond float64
	RateBurst     int
	// ReportRate and ReportBurst are the token bucket of each reporting client's
	// reports; ReportRate of zero or less disables the limit (the provider's
	// configuration defaults to DefaultReportRate and DefaultReportBurst).
	ReportRate  float64
	ReportBurst int
	// BanCacheTTL is how long bans are cached before they are read again, so that
	// bans the admin CLI writes from another process apply (default 5 s).
	BanCacheTTL time.Duration
	Now         func() time.Time // default time.Now
	Logger      *slog.Logger     // default: discard
	// Changed, if set, is called after a ban is added or lifted through this
	// Policy (the provider then hands its peers its new terms at once).
	Changed func()
}

// ErrRateLimitConfig reports a rate limit without a burst.
var ErrRateLimitConfig = errors.New("directory: policy: rate burst < 1 with a rate limit")

// ErrReportRateLimited refuses a report over the reporting client's rate limit; it was
// not stored.
var ErrReportRateLimited = protocol.NewError(protocol.CodeRateLimited, "directory: too many reports")

// Defaults of the per-client report limit that the provider's configuration uses: a
// person reports a few times a minute at most, and every report is a stored row.
const (
	DefaultReportRate  = 0.2
	DefaultReportBurst = 20
)

// Policy holds the provider-wide bans, the own users' rate limits and the reports.
// It is safe for concurrent use.
type Policy struct {
	// Static after construction.
	store   PolicyStore
	cfg     PolicyConfig
	limits  *TokenBuckets
	reports *TokenBuckets // per reporting client

	mu     sync.Mutex
	banned map[string]bool // Guarded by mu: the cached bans, nil when stale.
	loaded time.Time       // Guarded by mu.
}

// maxRateKeys bounds the rate limiter's memory (one bucket per active user).
const maxRateKeys = 100_000

// NewPolicy returns the provider's policy over store.
func NewPolicy(store PolicyStore, cfg PolicyConfig) (*Policy, error) {
	if store == nil {
		return nil, errors.New("directory: policy: no store")
	}
	if cfg.RatePerSecond > 0 && cfg.RateBurst < 1 {
		return nil, ErrRateLimitConfig
	}
	if cfg.ReportRate > 0 && cfg.ReportBurst < 1 {
		return nil, ErrRateLimitConfig
	}
	if cfg.BanCacheTTL <= 0 {
		cfg.BanCacheTTL = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Policy{store: store, cfg: cfg,
		limits:  NewTokenBuckets(cfg.RatePerSecond, cfg.RateBurst, maxRateKeys, cfg.Now),
		reports: NewTokenBuckets(cfg.ReportRate, cfg.ReportBurst, maxRateKeys, cfg.Now)}, nil
}

// Banned reports whether the provider banned the user URI (a client URI names its
// user).
func (p *Policy) Banned(ctx context.Context, userURI string) (bool, error) {
	user := protocol.UserOf(userURI)
	if user == "" {
		return false, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.banned == nil || p.cfg.Now().Sub(p.loaded) >= p.cfg.BanCacheTTL {
		bans, err := p.store.Bans(ctx)
		if err != nil {
			return false, fmt.Errorf("directory: bans: %w", err)
		}
		p.banned = make(map[string]bool, len(bans))
		for _, b := range bans {
			p.banned[b.UserURI] = true
		}
		p.loaded = p.cfg.Now()
	}
	return p.banned[user], nil
}

// Allow takes one request from the rate limit of key (an own user's URI).
func (p *Policy) Allow(key string) bool { return p.limits.Allow(key) }

// Ban bans a user URI provider-wide (a client URI bans its user).
func (p *Policy) Ban(ctx context.Context, userURI, reason string) error {
	if userURI == "" || len(userURI) > protocol.MaxUserIDLen {
		return fmt.Errorf("%w: user URI of %d bytes", protocol.ErrMalformed, len(userURI))
	}
	defer p.invalidate()
	return p.store.AddBan(ctx, Ban{UserURI: protocol.UserOf(userURI), Reason: reason, At: p.cfg.Now()})
}

// Unban lifts a ban; ok is false if there was none.
func (p *Policy) Unban(ctx context.Context, userURI string) (ok bool, err error) {
	defer p.invalidate()
	return p.store.RemoveBan(ctx, protocol.UserOf(userURI))
}

// ListBans lists the provider-wide bans.
func (p *Policy) ListBans(ctx context.Context) ([]Ban, error) { return p.store.Bans(ctx) }

func (p *Policy) invalidate() {
	p.mu.Lock()
	p.banned = nil
	p.mu.Unlock()
	if p.cfg.Changed != nil {
		p.cfg.Changed()
	}
}

// FileReport stores a local client's report for the admins. Each reporting client has
// a token bucket of reports (ErrReportRateLimited beyond it), taken before anything
// else is done.
func (p *Policy) FileReport(ctx context.Context, reporter Reporter, r protocol.Report) (int64, error) {
	if reporter.ClientID == 0 && reporter.UserURI == "" {
		return 0, fmt.Errorf("%w: reports come from this provider's clients", protocol.ErrMalformed)
	}
	if !p.reports.Allow(reporterKey(reporter)) {
		return 0, fmt.Errorf("%w: client %d over %g reports/s (burst %d)", ErrReportRateLimited, reporter.ClientID, p.cfg.ReportRate, p.cfg.ReportBurst)
	}
	if err := r.Validate(); err != nil {
		return 0, err
	}
	id, err := p.store.AddReport(ctx, StoredReport{At: p.cfg.Now(), ReporterClient: reporter.ClientID,
		ReporterUser: reporter.UserURI, Report: r})
	if err != nil {
		return 0, fmt.Errorf("directory: report: %w", err)
	}
	p.cfg.Logger.Info("report filed", "kind", r.Kind.String(), "group_id", fmt.Sprintf("%x", r.GroupID), "client", reporter.ClientID)
	return id, nil
}

// ListReports lists up to limit reports, newest first.
func (p *Policy) ListReports(ctx context.Context, limit int) ([]StoredReport, error) {
	return p.store.Reports(ctx, limit)
}

// reporterKey names the bucket of a reporter: its client, else its user.
func reporterKey(r Reporter) string {
	if r.ClientID != 0 {
		return "c" + strconv.FormatInt(r.ClientID, 10)
	}
	return "u" + r.UserURI
}
