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
	"runtime/pprof"
	"syscall"

	"github.com/mimids/mimids/cmd/provider"

	"github.com/mimids/mimids/ohttp"
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

func serve(ctx context.Context, cfg Config, stdout, stderr io.Writer) error {
	log := newLogger(cfg.Log, stderr)
	db, err := provider.OpenStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
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
	err = p.Run(ctx, ln)
	log.Info("stopped", "err", err)
	return err
}

const version = "0.1.0-dev"
