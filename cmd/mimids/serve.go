package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/sync/errgroup"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/ohttp"
	"github.com/mimids/mimids/sqlite"
	"github.com/mimids/mimids/web"
)

func serveCommand(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to `file` until exit (for measurements)")
	cfg, err := loadConfig(fs, args)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stderr, "mimids serve: %v\n", err)
		}
		return 2
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintf(stderr, "mimids serve: %v\n", err)
			return 1
		}
		pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "mimids serve: %v\n", err)
		return 1
	}
	return 0
}

// provider is every part of one running provider, wired together.
type provider struct {
	cfg     Config
	log     *slog.Logger
	db      *sqlite.DB
	dir     *directory.Directory
	mailbox *mailbox.Mailbox
	disc    *directory.Discovery
	kps     *directory.KeyPackages
	hub     *hub.Hub
	keys    *ohttp.KeySet
	gateway *gateway.Server
}

func openStore(ctx context.Context, cfg Config) (*sqlite.DB, error) {
	return sqlite.Open(ctx, cfg.StorePath(), sqlite.Options{Synchronous: cfg.Store.Synchronous})
}

// newProvider wires the parts of a provider over an open store.
func newProvider(ctx context.Context, cfg Config, db *sqlite.DB, log *slog.Logger) (*provider, error) {
	p := &provider{cfg: cfg, log: log, db: db, dir: directory.New(db, cfg.Domain)}
	reg := gateway.NewRegistry()
	p.mailbox = mailbox.New(db, mailboxMetrics(reg))
	var err error
	p.disc, err = directory.NewDiscovery(p.dir, db, directory.DiscoveryConfig{
		Policy: directory.TokenPolicy(cfg.Discovery.TokenPolicy), TokenTTL: cfg.Discovery.TokenTTL.D()})
	if err != nil {
		return nil, err
	}
	p.kps, err = directory.NewKeyPackages(p.dir, db, p.disc, p.mailbox, directory.KeyPackageConfig{
		MaxPerUpload: cfg.KeyPackages.MaxPerUpload, MaxPerClient: cfg.KeyPackages.MaxPerClient,
		LowThreshold: cfg.KeyPackages.LowThreshold}, log)
	if err != nil {
		return nil, err
	}
	p.hub, err = hub.New(hub.Config{Domain: cfg.Domain, RatePerSecond: cfg.Hub.RatePerSecond, RateBurst: cfg.Hub.RateBurst,
		MaxMessageSize: cfg.Hub.MaxMessageSize, StateCacheSize: cfg.Hub.StateCacheSize, Logger: log},
		db, hubRouter{p.kps}, hubMailbox{p.mailbox})
	if err != nil {
		return nil, err
	}
	p.keys, err = loadKeySet(ctx, db, cfg.OHTTP.KeyGrace.D(), time.Now())
	if err != nil {
		return nil, err
	}
	p.gateway = gateway.New(cfg.Gateway, gateway.Deps{
		Directory: p.dir, Mailbox: p.mailbox, Ready: db.Ping, Logger: log, Registry: reg,
		Dashboard: web.Placeholder(cfg.Domain), Partitions: hubPartitions{p.hub}, OnChange: p.onChange,
	})
	registerHub(p.gateway, p.hub)
	registerHubMetrics(reg, p.hub)
	registerKeyPackages(p.gateway, p.kps)
	og, err := ohttp.NewGateway(ohttp.GatewayConfig{Keys: p.keys, Routes: ohttpRoutes(p.kps, p.disc), Authorities: []string{cfg.Domain}})
	if err != nil {
		return nil, err
	}
	e := p.gateway.Echo()
	e.Match([]string{"GET", "HEAD", "POST"}, ohttp.WellKnownGatewayPath, echo.WrapHandler(og))
	if len(cfg.Peers) > 0 {
		relay, err := newRelay(cfg, p.dir)
		if err != nil {
			return nil, err
		}
		e.POST(relayPathPrefix+":peer", echo.WrapHandler(relay))
	}
	return p, nil
}

// onChange applies store changes made by the admin CLI from another process.
func (p *provider) onChange(c directory.Change) {
	switch c.Kind {
	case ChangeOHTTPKeys:
		if err := p.reloadKeys(context.Background()); err != nil {
			p.log.Error("reload ohttp keys", "err", err)
		}
	case ChangePartitions:
		p.hub.Poke(nil)
	}
}

// reloadKeys brings the in-memory key set up to date with the store.
func (p *provider) reloadKeys(ctx context.Context) error {
	fresh, err := loadKeySet(ctx, p.db, p.cfg.OHTTP.KeyGrace.D(), time.Now())
	if err != nil {
		return err
	}
	have := map[uint8]bool{}
	for _, st := range p.keys.States() {
		have[st.Key.ID()] = true
	}
	for _, st := range fresh.States() {
		if !have[st.Key.ID()] {
			if err := p.keys.Add(st.Key); err != nil {
				return err
			}
		}
		if !st.Retired.IsZero() {
			p.keys.Retire(st.Key.ID(), st.Retired)
		}
	}
	return nil
}

// run serves until ctx ends; the background jobs stop with it.
func (p *provider) run(ctx context.Context, ln net.Listener) error {
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.gateway.Serve(ctx, ln) })
	g.Go(func() error { return p.hub.Run(ctx) })
	g.Go(func() error {
		t := time.NewTicker(p.cfg.KeyPackages.PurgeInterval.D())
		defer t.Stop()
		for {
			if st, err := p.kps.Purge(ctx, time.Now()); err != nil && ctx.Err() == nil {
				p.log.Warn("purge KeyPackages", "err", err)
			} else if err == nil {
				p.log.Debug("purged KeyPackages", "stats", fmt.Sprintf("%+v", st))
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	return g.Wait()
}

func serve(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	log := newLogger(cfg.Log, stderr)
	db, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := newProvider(ctx, cfg, db, log)
	if err != nil {
		return err
	}
	adminToken, err := p.dir.EnsureAdmin(ctx)
	if err != nil {
		return fmt.Errorf("admin credential: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	scheme := "http"
	if cfg.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			ln.Close()
			return fmt.Errorf("tls: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		scheme = "https"
	}
	addr := ln.Addr().String()
	wsScheme := map[string]string{"http": "ws", "https": "wss"}[scheme]
	fmt.Fprintf(stdout, "mimids %s serving %s\n", version, cfg.Domain)
	fmt.Fprintf(stdout, "  client socket: %s://%s/v1/socket\n", wsScheme, addr)
	fmt.Fprintf(stdout, "  dashboard:     %s://%s/\n", scheme, addr)
	fmt.Fprintf(stdout, "  admin API:     %s://%s/admin/v1/\n", scheme, addr)
	fmt.Fprintf(stdout, "  ohttp gateway: %s://%s%s\n", scheme, addr, ohttp.WellKnownGatewayPath)
	if adminToken != "" {
		fmt.Fprintf(stdout, "  admin token:   %s   (shown once; only its hash is stored)\n", adminToken)
	}
	fmt.Fprintf(stdout, "  store:         %s\n", cfg.StorePath())
	log.Info("serving", "domain", cfg.Domain, "addr", addr, "store", cfg.StorePath())
	err = p.run(ctx, ln)
	log.Info("stopped", "err", err)
	return err
}

const version = "0.1.0-dev"
