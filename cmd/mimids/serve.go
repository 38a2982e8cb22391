package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"syscall"

	"github.com/mimids/mimids/cmd/internal/usage"
	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/ohttp"
	"github.com/mimids/mimids/sqlite"
)

var serveHelp = usage.Help{Name: "serve",
	Summary: "Runs the provider: client socket, admin API, OHTTP gateway and dashboard, on one listener.",
	Example: "serve -data ./data -listen 127.0.0.1:8080",
	Details: "The flags override the same fields of the -config file (README, \"Configuration\", lists them all).",
}

func serveCommand(args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cf := serveConfigFlags(fs)
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile to `file` until exit (for measurements)")
	prof := profileFlags(fs)
	if err := usage.Parse(fs, serveHelp, args, stdout, stderr); err != nil {
		return usage.Code(err)
	}
	if err := usage.Args(fs, serveHelp, 0, 0, stderr); err != nil {
		return usage.Code(err)
	}
	cfg, err := cf.load()
	if err != nil {
		fmt.Fprintf(stderr, "mimids serve: %v\n", err)
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
	stopProf, err := prof.start()
	if err != nil {
		fmt.Fprintf(stderr, "mimids serve: %v\n", err)
		return 1
	}
	defer stopProf()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, cfg, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "mimids serve: %v\n", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	log := newLogger(cfg.Log, stderr)
	db, err := provider.ServeStore(ctx, cfg)
	if err != nil {
		return storeHint(err)
	}
	defer db.Close()
	inc := struct {
		ID     []byte
		Minted string
	}{db.IncarnationID(), db.Minted()}
	if inc.Minted != "" {
		// Clients start their marks over when they see the new incarnation; what
		// was lost is lost, and the operator must know.
		log.Error("store has a NEW INCARNATION: committed writes may have been lost; clients will start their marks over",
			"incarnation", fmt.Sprintf("%x", inc.ID), "reason", inc.Minted)
	}
	p, err := provider.New(ctx, cfg, db, log)
	if err != nil {
		return err
	}
	adminToken, err := p.Dir.EnsureAdmin(ctx)
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
	fmt.Fprintf(stdout, "mimids %s serving %s\n", releaseVersion, cfg.Domain)
	fmt.Fprintf(stdout, "  client socket: %s://%s/v1/socket\n", wsScheme, addr)
	fmt.Fprintf(stdout, "  dashboard:     %s://%s/\n", scheme, addr)
	fmt.Fprintf(stdout, "  admin API:     %s://%s/admin/v1/\n", scheme, addr)
	fmt.Fprintf(stdout, "  ohttp gateway: %s://%s%s\n", scheme, addr, ohttp.WellKnownGatewayPath)
	if p.Federation != nil {
		if a := p.Federation.Addr(); a != nil {
			fmt.Fprintf(stdout, "  federation:    wss://%s (peers: mimids peer list)\n", a)
		} else {
			fmt.Fprintf(stdout, "  federation:    dialling only (no federation.listen)\n")
		}
	}
	if adminToken != "" {
		fmt.Fprintf(stdout, "  admin token:   %s   (shown once; only its hash is stored)\n", adminToken)
	}
	if inc.Minted != "" {
		fmt.Fprintf(stdout, "  WARNING:       new store incarnation: %s\n", inc.Minted)
	}
	fmt.Fprintf(stdout, "  incarnation:   %x\n", inc.ID)
	fmt.Fprintf(stdout, "  store:         %s\n", storeName(cfg, db))
	log.Info("serving", "domain", cfg.Domain, "addr", addr, "store", storeName(cfg, db), "incarnation", fmt.Sprintf("%x", inc.ID))
	err = p.Run(ctx, ln)
	log.Info("stopped", "err", err)
	return err
}

// storeHint adds what an operator can do to a store the server refuses.
func storeHint(err error) error {
	switch {
	case errors.Is(err, sqlite.ErrRemains):
		return fmt.Errorf("%w\n  Nothing was changed. Restore a backup (mimids store restore FILE), move those files away,"+
			" or start with -force-new-store to set them aside and begin a new, empty store (a new provider: every user and token is gone)", err)
	case errors.Is(err, sqlite.ErrCorrupt):
		return fmt.Errorf("%w\n  The store is not served. Restore a backup (mimids store restore FILE);"+
			" -integrity-check off serves it anyway, at the risk of serving damaged data", err)
	}
	return err
}

// storeName is where the store is, for the banner and the log: the SQLite file,
// or the PostgreSQL database (never its DSN, which may hold a password).
func storeName(cfg Config, db provider.Store) string {
	if db.Driver() == provider.DriverSQLite {
		return cfg.StorePath()
	}
	return db.Path()
}

// measureFlags are the measurement flags of serve beside -cpuprofile
// (docs/performance.md uses them).
type measureFlags struct {
	trace, block, mutex *string
}

func profileFlags(fs *flag.FlagSet) measureFlags {
	return measureFlags{
		trace: fs.String("trace", "", "write a runtime/trace execution trace to `file` until exit (for measurements)"),
		block: fs.String("blockprofile", "", "record blocking and write the block profile to `file` at exit (for measurements)"),
		mutex: fs.String("mutexprofile", "", "record lock contention and write the mutex profile to `file` at exit (for measurements)"),
	}
}

// start starts what the flags ask for; the returned function stops it and writes
// the profiles.
func (m measureFlags) start() (func(), error) {
	var stops []func()
	stop := func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}
	if *m.trace != "" {
		f, err := os.Create(*m.trace)
		if err != nil {
			return nil, err
		}
		if err := trace.Start(f); err != nil {
			f.Close()
			return nil, err
		}
		stops = append(stops, func() { trace.Stop(); f.Close() })
	}
	for _, p := range []struct {
		file, name string
		on         func()
	}{
		{*m.block, "block", func() { runtime.SetBlockProfileRate(10_000) }},
		{*m.mutex, "mutex", func() { runtime.SetMutexProfileFraction(10) }},
	} {
		if p.file == "" {
			continue
		}
		p.on()
		stops = append(stops, func() {
			if f, err := os.Create(p.file); err == nil {
				pprof.Lookup(p.name).WriteTo(f, 0)
				f.Close()
			}
		})
	}
	return stop, nil
}
