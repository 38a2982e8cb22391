package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

// testProvider is one provider served in-process on a loopback port: the same wiring
// as mimids serve.
type testProvider struct {
	*provider
	Base       string // http://127.0.0.1:port
	Socket     string // ws://127.0.0.1:port/v1/socket
	AdminToken string
}

// startTestProvider runs a provider for domain until the test ends. edit may change
// the configuration (peers, limits) before it starts; ln may be nil.
func startTestProvider(t testing.TB, domain string, ln net.Listener, edit func(*Config)) *testProvider {
	t.Helper()
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	cfg := defaultConfig()
	cfg.Domain = domain
	cfg.DataDir = t.TempDir()
	cfg.Store.Synchronous = "normal"
	cfg.Listen = ln.Addr().String()
	if edit != nil {
		edit(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	db, err := openStore(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p, err := newProvider(ctx, cfg, db, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := p.dir.EnsureAdmin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("provider %s: %v", domain, err)
			}
		case <-time.After(20 * time.Second):
			t.Errorf("provider %s did not stop", domain)
		}
		db.Close()
	})
	return &testProvider{provider: p, Base: "http://" + cfg.Listen, Socket: "ws://" + cfg.Listen + "/v1/socket", AdminToken: admin}
}

// listenPair reserves two loopback listeners, so that two providers can name each
// other as peers before either starts.
func listenPair(t testing.TB) (net.Listener, net.Listener) {
	t.Helper()
	a, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}
