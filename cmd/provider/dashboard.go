package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/ohttp"
	"github.com/mimids/mimids/web"
)

// DashboardConfig tunes the admin dashboard (web/): its sessions and logins.
type DashboardConfig struct {
	// IdleTimeout ends a session unused for this long; MaxAge ends any session
	// this long after its login.
	IdleTimeout gateway.Duration `json:"idle_timeout"`
	MaxAge      gateway.Duration `json:"max_age"`
	// LoginsPerMinute and LoginBurst bound login attempts per source address.
	LoginsPerMinute float64 `json:"logins_per_minute"`
	LoginBurst      int     `json:"login_burst"`
	// MaxSessions bounds the open sessions; a login beyond it is refused.
	MaxSessions int `json:"max_sessions"`
}

func (c DashboardConfig) validate(bad func(string, ...any)) {
	if c.IdleTimeout < gateway.Duration(time.Minute) || c.MaxAge < c.IdleTimeout {
		bad("dashboard: idle_timeout >= 1m and max_age >= idle_timeout")
	}
	if c.LoginsPerMinute <= 0 || c.LoginBurst < 1 || c.MaxSessions < 1 {
		bad("dashboard: logins_per_minute > 0, login_burst >= 1, max_sessions >= 1")
	}
}

// newDashboard wires the admin dashboard over the provider's parts. The gateway is
// made after it (it serves the dashboard), so its sockets are reached through p.
func (p *Provider) newDashboard(reg *prometheus.Registry) (*web.Dashboard, error) {
	cfg := p.Config
	p.admins = directory.NewAdmins(p.Dir, p.DB)
	var peers web.Peers
	if cfg.Federation.Enabled() {
		peers = dashPeers{p}
	}
	dc := cfg.Dashboard
	return web.New(web.Config{Domain: cfg.Domain, Logger: p.Log, IdleTimeout: dc.IdleTimeout.D(), MaxAge: dc.MaxAge.D(),
		LoginRate: dc.LoginsPerMinute / 60, LoginBurst: dc.LoginBurst, MaxSessions: dc.MaxSessions,
		LowStock: cfg.KeyPackages.LowThreshold, Limits: []web.Limit{
			{Name: "messages per second per user", Value: fmt.Sprint(cfg.Hub.RatePerSecond)},
			{Name: "message burst per user", Value: fmt.Sprint(cfg.Hub.RateBurst)},
			{Name: "reports per second per client", Value: fmt.Sprint(cfg.Hub.ReportRate)},
			{Name: "sockets per client", Value: fmt.Sprint(cfg.Gateway.MaxSocketsPerClient)},
			{Name: "sockets per user", Value: fmt.Sprint(cfg.Gateway.MaxSocketsPerUser)},
			{Name: "discovery requests per second per source", Value: fmt.Sprint(cfg.Discovery.RatePerSource)},
		}}, web.Deps{
		Admins: p.admins, Users: p.Dir, Sockets: dashSockets{p}, KeyPackages: p.KPs,
		Groups: p.Hub, Policy: p.Policy, Keys: dashKeys{p}, Peers: peers, Metrics: dashMetrics{p, reg},
	})
}

// auditAPI writes a change made through the admin API to the audit log; a failure
// to write it is logged (the change is made).
func (p *Provider) auditAPI(ctx context.Context, actor, action, detail string) {
	if err := p.admins.Record(ctx, actor, action, detail); err != nil {
		p.Log.Error("audit", "action", action, "err", err)
	}
}

// dashSockets reaches the gateway's sockets once it exists.
type dashSockets struct{ p *Provider }

func (s dashSockets) ClientSockets(id int64) (int, time.Time) { return s.p.Gateway.ClientSockets(id) }

func (s dashSockets) Revoke(id int64, reason string) int { return s.p.Gateway.Revoke(id, reason) }

type dashKeys struct{ p *Provider }

func (k dashKeys) OHTTPKeys() []ohttp.KeyState { return k.p.Keys.States() }

func (k dashKeys) RotateOHTTPKey(ctx context.Context) (uint8, error) {
	key, err := k.p.GatewayKeys.Rotate(ctx, k.p.Keys, time.Now())
	if err != nil {
		return 0, err
	}
	return key.ID(), nil
}

func (k dashKeys) DiscoveryTokens(ctx context.Context) (directory.TokenList, error) {
	return k.p.Disc.Tokens(ctx)
}

func (k dashKeys) RevokeDiscoveryToken(ctx context.Context, id int64) error {
	_, err := k.p.Disc.RevokeToken(ctx, id)
	return err
}

func (k dashKeys) RotateDiscoverySecret(ctx context.Context) error {
	_, err := k.p.Disc.RotateSecret(ctx, false)
	return err
}

type dashPeers struct{ p *Provider }

func (d dashPeers) Peers(ctx context.Context) ([]web.Peer, error) {
	ps, err := d.p.DB.Peers(ctx)
	if err != nil {
		return nil, err
	}
	qs, err := d.p.DB.QueueStats(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := make([]web.Peer, 0, len(ps))
	for _, pe := range ps {
		w := web.Peer{Domain: pe.Domain, URL: pe.URL, State: "unknown"}
		for _, q := range qs {
			if q.Peer == pe.Domain && q.Depth > 0 {
				w.Queue, w.Lag = int64(q.Depth), now.Sub(q.Oldest).Round(time.Second)
			}
		}
		if d.p.Federation != nil {
			if st, ok := d.p.Federation.Status(pe.Domain); ok {
				w.State, w.Since, w.LastError, w.LastErrorAt, w.Attempts = string(st.State), st.Since, st.LastError, st.LastErrorAt, st.Attempts
			}
		}
		out = append(out, w)
	}
	return out, nil
}

func (d dashPeers) AddPeer(ctx context.Context, domain, url, pin, caPEM string) error {
	pe := federation.Peer{Domain: domain, URL: url}
	if pin != "" {
		b, err := federation.ParsePin(pin)
		if err != nil {
			return fmt.Errorf("%w: %w", web.ErrBadPeer, err)
		}
		pe.Pin = b
	} else {
		pe.CA = []byte(caPEM)
	}
	if _, err := federation.AddPeer(ctx, d.p.DB, d.p.Config.Domain, pe); err != nil {
		if errors.Is(err, federation.ErrBadPeer) {
			return fmt.Errorf("%w: %w", web.ErrBadPeer, err)
		}
		return err
	}
	if d.p.Federation != nil {
		return d.p.Federation.Refresh(ctx)
	}
	return nil
}

func (d dashPeers) RemovePeer(ctx context.Context, domain string) (bool, error) {
	ok, err := d.p.DB.RemovePeer(ctx, domain)
	if err != nil || !ok || d.p.Federation == nil {
		return ok, err
	}
	return true, d.p.Federation.Refresh(ctx)
}

// dashMetrics reads the overview's numbers from the Prometheus registry and the
// store's queue depths (sums over the clients' running counts and the federation
// queue: a few milliseconds at 10,000 clients).
type dashMetrics struct {
	p   *Provider
	reg prometheus.Gatherer
}

func (m dashMetrics) Sample(ctx context.Context) (web.Sample, error) {
	fams, err := m.reg.Gather()
	if err != nil {
		return web.Sample{}, err
	}
	s := web.Sample{Connections: m.p.Gateway.Connected(), Errors: map[string]float64{}}
	for _, f := range fams {
		switch f.GetName() {
		case "mimids_hub_sequenced_total":
			s.Sequenced = f.GetMetric()[0].GetCounter().GetValue()
		case "mimids_mailbox_delivered_total":
			s.Delivered = f.GetMetric()[0].GetCounter().GetValue()
		case "mimids_requests_total":
			for _, mt := range f.GetMetric() {
				for _, l := range mt.GetLabel() {
					if l.GetName() == "code" && l.GetValue() != "ok" {
						s.Errors[l.GetValue()] += mt.GetCounter().GetValue()
					}
				}
			}
		}
	}
	if s.MailboxDepth, err = m.p.DB.MailboxDepth(ctx); err != nil {
		return s, err
	}
	qs, err := m.p.DB.QueueStats(ctx)
	for _, q := range qs {
		s.FederationDepth += int64(q.Depth)
	}
	return s, err
}
