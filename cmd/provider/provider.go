package provider

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/follower"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/natsbus"
	"github.com/mimids/mimids/ohttp"
	"github.com/mimids/mimids/web"
)

// Provider is every part of one running provider, wired together. The fields are
// static after New.
type Provider struct {
	Config  Config
	Log     *slog.Logger
	DB      Store
	Dir     *directory.Directory
	Mailbox *mailbox.Mailbox
	Disc    *directory.Discovery
	KPs     *directory.KeyPackages
	Policy  *directory.Policy
	Hub     *hub.Hub
	Keys    *ohttp.KeySet
	// GatewayKeys loads and rotates Keys in the store.
	GatewayKeys *directory.GatewayKeys
	Gateway     *gateway.Server
	// Dashboard is the admin dashboard the gateway serves under /dashboard/.
	Dashboard *web.Dashboard
	// Federation is the link layer to peer providers, nil unless federation is
	// configured (federation.cert_file). Later parts register their envelope
	// handlers on it (Handle, HandleAtomic, OnAnswer) in New, before Run.
	Federation *federation.Links
	// Bus tells the other nodes of this provider what this one commits (scale-out);
	// nil unless cluster.nats_url is set.
	Bus *natsbus.Bus
	// Leaser holds this node's leases of peer links (federation.Leaser); nil
	// unless both federation and cluster.nats_url are set.
	Leaser *federation.Leaser

	welcomes *welcomeSender // offers stored Welcomes to peers; nil without federation
	// Terms are the hubs' terms this provider enforces on its users as a
	// follower; nil without federation.
	Terms   *follower.Terms
	terms   *termsSender     // hands this provider's terms to peers; nil without federation
	copies  *follower.Copies // local copies of partitions followed elsewhere; nil without federation
	pushers *pushers         // pushes hosted partitions to followers; nil without federation

	enqueued func(n int)       // counts the admin CLI's mailbox entries (mailboxMetrics)
	admins   *directory.Admins // admin logins and the audit log
}

// New wires the parts of a provider over an open store.
func New(ctx context.Context, cfg Config, db Store, log *slog.Logger) (_ *Provider, err error) {
	p := &Provider{Config: cfg, Log: log, DB: db, Dir: directory.New(db, cfg.Domain)}
	reg := gateway.NewRegistry()
	mm, cli := mailboxMetrics(reg, cfg.Cluster.Enabled())
	p.enqueued = cli
	var hubBus hub.Bus
	var mailboxBus mailbox.Bus
	var revocations gateway.Revocations
	if cfg.Cluster.Enabled() {
		if p.Bus, err = connectBus(ctx, cfg, log); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				p.Bus.Close()
			}
		}()
		hubBus, mailboxBus, revocations = p.Bus, p.Bus, p.Bus
	}
	p.Mailbox = mailbox.NewClustered(db, mm, cfg.Mailbox.Quota(), mailboxBus)
	now := cfg.Clock
	if now == nil {
		now = time.Now
	}
	p.Disc, err = directory.NewDiscovery(p.Dir, db, directory.DiscoveryConfig{
		Policy: directory.TokenPolicy(cfg.Discovery.TokenPolicy), TokenTTL: cfg.Discovery.TokenTTL.D(),
		RatePerSource: cfg.Discovery.RatePerSource, BurstPerSource: cfg.Discovery.BurstPerSource, Clock: now})
	if err != nil {
		return nil, err
	}
	if err := p.Disc.Reload(ctx); err != nil { // the first secret, before the first request
		return nil, err
	}
	kc := cfg.KeyPackages
	p.KPs, err = directory.NewKeyPackages(p.Dir, db, p.Disc, p.Mailbox, directory.KeyPackageConfig{
		MaxPerUpload: kc.MaxPerUpload, MaxPerClient: kc.MaxPerClient, LowThreshold: kc.LowThreshold, Clock: now,
		UploadRate: kc.UploadRate, UploadBurst: kc.UploadBurst, Metrics: keyPackageMetrics(reg),
		Claims: directory.ClaimLimits{TokenPerHour: kc.TokenClaimsPerHour, TokenBurst: kc.TokenClaimBurst,
			UserPerHour: kc.UserClaimsPerHour, UserBurst: kc.UserClaimBurst}}, log)
	if err != nil {
		return nil, err
	}
	p.Policy, err = directory.NewPolicy(db, directory.PolicyConfig{RatePerSecond: cfg.Hub.RatePerSecond,
		RateBurst: cfg.Hub.RateBurst, ReportRate: cfg.Hub.ReportRate, ReportBurst: cfg.Hub.ReportBurst, Logger: log, Changed: p.termsChanged})
	if err != nil {
		return nil, err
	}
	p.Hub, err = hub.New(hub.Config{Domain: cfg.Domain, Policy: p.Policy,
		MaxMessageSize: cfg.Hub.MaxMessageSize, StateCacheSize: cfg.Hub.StateCacheSize, Logger: log, Bus: hubBus},
		db, HubRouter{p.KPs}, HubMailbox{p.Mailbox})
	if err != nil {
		return nil, err
	}
	p.GatewayKeys = directory.NewGatewayKeys(db, cfg.OHTTP.KeyGrace.D())
	p.Keys, err = p.GatewayKeys.Load(ctx, time.Now())
	if err != nil {
		return nil, err
	}
	if p.copies, err = p.newCopies(ctx); err != nil {
		return nil, err
	}
	if p.Dashboard, err = p.newDashboard(reg); err != nil {
		return nil, err
	}
	p.Gateway = gateway.New(cfg.Gateway, gateway.Deps{
		Directory: p.Dir, Mailbox: p.Mailbox, Ready: p.readiness(), Incarnation: db.IncarnationID(), Logger: log, Registry: reg,
		Revocations: revocations,
		Dashboard:   p.Dashboard, OnChange: p.onChange, Audit: p.auditAPI,
		Groups:     &gateway.Router{Hub: p.Hub.Methods(), Follower: p.newFollower().Methods(), NotHosted: hub.NotHosted},
		Partitions: p.partitions(), Reports: p.Policy, KeyPackages: p.KPs,
	})
	registerHubMetrics(reg, p.Hub)
	if p.Bus != nil {
		registerClusterMetrics(reg, p.Bus)
	}
	// The relay's hop to a peer on the federation allow-list goes to the peer's
	// federation listener, its certificate checked against the entry (relay.go);
	// the configured peers (cfg.Peers) serve providers without federation.
	peers := make(map[string]string, len(cfg.Peers))
	for _, peer := range cfg.Peers {
		peers[peer.Domain] = peer.URL
	}
	if err := p.Gateway.MountOHTTP(gateway.OHTTP{Keys: p.Keys, KeyPackages: p.KPs, Discovery: p.Disc, Peers: peers, Now: now,
		Route:          p.relayRoute,
		RelayLimiter:   directory.NewTokenBuckets(cfg.OHTTP.RelayRate, cfg.OHTTP.RelayBurst, 100_000, nil),
		ReplayCapacity: cfg.OHTTP.ReplayCapacity, ReplayPerSource: cfg.OHTTP.ReplayPerSource}); err != nil {
		return nil, err
	}
	if cfg.Federation.Enabled() {
		// Last: New binds the federation listener.
		var fc federation.Config
		if p.Bus != nil {
			if p.Leaser, err = p.newLeaser(); err != nil {
				return nil, err
			}
			fc = federation.Config{Owns: p.Leaser.Holds, ForwardCall: p.forwardCall, Enqueued: p.Bus.PeerQueued}
		}
		if p.Federation, err = newFederation(cfg, fc, db, log); err != nil {
			return nil, err
		}
		p.registerWelcomes()
		p.registerGroupRequests()
		p.registerTerms()
		p.registerSubscriptions()
		p.registerRelayHop()
	}
	return p, nil
}

// connectBus joins the provider's other nodes over NATS (cluster.nats_url).
func connectBus(ctx context.Context, cfg Config, log *slog.Logger) (*natsbus.Bus, error) {
	c := cfg.Cluster
	node := nodeID(cfg)
	subject := c.Subject
	if subject == "" {
		subject = "mimids." + cfg.Domain
	}
	return natsbus.Connect(ctx, natsbus.Config{URL: c.NATSURL, NodeID: node, Subject: subject,
		PollInterval: c.PollInterval.D(), Logger: log.With("node", node)})
}

// readiness is what /readyz reports: the store, and NATS on a node of several.
func (p *Provider) readiness() func(context.Context) []gateway.ReadyCheck {
	store := p.DB.Ready
	if p.Bus == nil {
		return store
	}
	return func(ctx context.Context) []gateway.ReadyCheck {
		return append(store(ctx), gateway.ReadyCheck{Name: "nats", Err: p.Bus.Health()})
	}
}

// newFederation makes the link layer from the configuration; it listens at once
// when federation.listen is set.
// fc carries the cluster's hooks (Owns, ForwardCall, Enqueued).
func newFederation(cfg Config, fc federation.Config, db Store, log *slog.Logger) (*federation.Links, error) {
	f := cfg.Federation
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("federation certificate: %w", err)
	}
	return federation.New(federation.Config{
		Domain: cfg.Domain, Certificate: cert, Listen: f.Listen,
		Window: f.Window, WindowBytes: f.WindowBytes, MinBackoff: f.MinBackoff.D(), MaxBackoff: f.MaxBackoff.D(),
		DialTimeout: f.DialTimeout.D(), WriteTimeout: f.WriteTimeout.D(), PingInterval: f.PingInterval.D(),
		PeerRefresh: f.PeerRefresh.D(), Logger: log,
		Owns: fc.Owns, ForwardCall: fc.ForwardCall, Enqueued: fc.Enqueued,
	}, db)
}

// onChange applies store changes made by the admin CLI from another process. Mailbox
// entries committed there are counted here, once per node: they reach this process
// only through the change log, and this process's own entries never do.
func (p *Provider) onChange(c directory.Change) {
	switch c.Kind {
	case directory.ChangeMailbox:
		if c.Entries > 0 {
			p.enqueued(c.Entries)
		}
	case ChangeOHTTPKeys:
		if err := p.reloadKeys(context.Background()); err != nil {
			p.Log.Error("reload ohttp keys", "err", err)
		}
	case ChangePartitions:
		p.Hub.Poke(nil)
	case directory.ChangeDiscovery:
		if err := p.Disc.Reload(context.Background()); err != nil {
			p.Log.Error("reload discovery tokens", "err", err)
		}
	}
}

// reloadKeys brings the in-memory key set up to date with the store.
func (p *Provider) reloadKeys(ctx context.Context) error {
	fresh, err := p.GatewayKeys.Load(ctx, time.Now())
	if err != nil {
		return err
	}
	have := map[uint8]bool{}
	for _, st := range p.Keys.States() {
		have[st.Key.ID()] = true
	}
	for _, st := range fresh.States() {
		if !have[st.Key.ID()] {
			if err := p.Keys.Add(st.Key); err != nil {
				return err
			}
		}
		if !st.Retired.IsZero() {
			p.Keys.Retire(st.Key.ID(), st.Retired)
		}
	}
	return nil
}

// Run serves on ln until ctx ends; the background jobs stop with it.
func (p *Provider) Run(ctx context.Context, ln net.Listener) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.Gateway.Serve(ctx, ln) })
	g.Go(func() error { return p.Hub.Run(ctx) })
	if p.Bus != nil {
		t := natsbus.Targets{Hub: p.Hub, Mailbox: p.Mailbox, Sockets: p.Gateway}
		if p.Federation != nil {
			t.Federation, t.Copies = p.Federation, p.copies
			g.Go(func() error { return p.Bus.ServeCalls(ctx, p.serveCall) })
		}
		g.Go(func() error { return p.Bus.Run(ctx, t) })
	}
	if p.Leaser != nil {
		g.Go(func() error { return p.Leaser.Run(ctx) })
	}
	g.Go(func() error { return p.Dashboard.Run(ctx) })
	if p.Federation != nil {
		g.Go(func() error { return p.Federation.Run(ctx) })
		g.Go(func() error { return p.welcomes.run(ctx) })
		g.Go(func() error { return p.terms.run(ctx) })
		g.Go(func() error { return p.pushers.run(ctx) })
		g.Go(func() error { return p.copies.Run(ctx) })
	}
	g.Go(func() error {
		t := time.NewTicker(p.Config.KeyPackages.PurgeInterval.D())
		defer t.Stop()
		for {
			if st, err := p.KPs.Purge(ctx, time.Now()); err != nil && ctx.Err() == nil {
				p.Log.Warn("purge KeyPackages", "err", err)
			} else if err == nil {
				p.Log.Debug("purged KeyPackages", "stats", fmt.Sprintf("%+v", st))
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	err := g.Wait()
	return err
}

// OfflineServices are the domain services the admin CLI uses over the store, with no
// server running.
type OfflineServices struct {
	Hub       *hub.Hub
	Discovery *directory.Discovery
	Policy    *directory.Policy
}

// Offline builds the domain services over the store for the admin CLI.
func Offline(cfg Config, db Store, d *directory.Directory) (OfflineServices, error) {
	log := slog.New(slog.DiscardHandler)
	var o OfflineServices
	var err error
	o.Discovery, err = directory.NewDiscovery(d, db, directory.DiscoveryConfig{
		Policy: directory.TokenPolicy(cfg.Discovery.TokenPolicy), TokenTTL: cfg.Discovery.TokenTTL.D()})
	if err != nil {
		return o, err
	}
	mb := mailbox.NewWithQuota(db, mailbox.Metrics{}, cfg.Mailbox.Quota())
	kps, err := directory.NewKeyPackages(d, db, o.Discovery, mb, directory.KeyPackageConfig{}, log)
	if err != nil {
		return o, err
	}
	if o.Policy, err = directory.NewPolicy(db, directory.PolicyConfig{Logger: log}); err != nil {
		return o, err
	}
	o.Hub, err = hub.New(hub.Config{Domain: cfg.Domain, Logger: log, Policy: o.Policy}, db, HubRouter{kps}, HubMailbox{mb})
	return o, err
}
