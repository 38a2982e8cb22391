// Package providertest starts real providers in-process for tests: the same wiring
// as mimids serve, on a loopback port and a SQLite file in a temp dir.
package providertest

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/cmd/provider"
)

// Provider is one provider served until the test ends.
type Provider struct {
	*provider.Provider
	Base       string // http://127.0.0.1:port
	Socket     string // ws://127.0.0.1:port/v1/socket
	AdminToken string

	stop func()
}

// Stop stops the provider and closes its store now, as a shutdown does; the test's
// cleanup does it otherwise. Starting again with the same data_dir (and ports)
// restarts it.
func (p *Provider) Stop() { p.stop() }

// Start runs a provider for domain until the test ends. edit may change the
// configuration (peers, limits) before it starts; ln may be nil for a fresh port.
// Its log is discarded.
func Start(t testing.TB, domain string, ln net.Listener, edit func(*provider.Config)) *Provider {
	t.Helper()
	return start(t, domain, ln, edit, slog.New(slog.DiscardHandler), nil)
}

// StartWithLog is Start with the provider logging to log (tests that count or read
// its lines).
func StartWithLog(t testing.TB, domain string, ln net.Listener, edit func(*provider.Config), log *slog.Logger) *Provider {
	t.Helper()
	return start(t, domain, ln, edit, log, nil)
}

// StartWith is Start, and setup runs on the wired provider before it starts: to
// register federation handlers (Provider.Federation), for instance.
func StartWith(t testing.TB, domain string, ln net.Listener, edit func(*provider.Config), setup func(*provider.Provider)) *Provider {
	t.Helper()
	return start(t, domain, ln, edit, slog.New(slog.DiscardHandler), setup)
}

// StartNode runs one node of a provider (scale-out) over db, which the caller opened
// and closes after the test: several nodes share one store and, through
// cluster.nats_url set by edit, one NATS. Each node has its own listener and
// data_dir. Stop stops the node and leaves db open.
func StartNode(t testing.TB, domain string, db provider.Store, edit func(*provider.Config)) *Provider {
	t.Helper()
	return startOn(t, domain, nil, edit, slog.New(slog.DiscardHandler), nil, db)
}

func start(t testing.TB, domain string, ln net.Listener, edit func(*provider.Config), log *slog.Logger, setup func(*provider.Provider)) *Provider {
	t.Helper()
	return startOn(t, domain, ln, edit, log, setup, nil)
}

func startOn(t testing.TB, domain string, ln net.Listener, edit func(*provider.Config), log *slog.Logger, setup func(*provider.Provider), shared provider.Store) *Provider {
	t.Helper()
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	cfg := provider.DefaultConfig()
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
	db := shared
	if db == nil {
		var err error
		if db, err = provider.ServeStore(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	p, err := provider.New(ctx, cfg, db, log)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(p)
	}
	admin, err := p.Dir.EnsureAdmin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, ln) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("provider %s: %v", domain, err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("provider %s did not stop", domain)
			}
			if shared == nil {
				db.Close()
			}
		})
	}
	t.Cleanup(stop)
	return &Provider{Provider: p, Base: "http://" + cfg.Listen, Socket: "ws://" + cfg.Listen + "/v1/socket", AdminToken: admin, stop: stop}
}

// ListenPair reserves two loopback listeners, so that two providers can name each
// other as peers before either starts.
func ListenPair(t testing.TB) (net.Listener, net.Listener) {
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

// Metrics scrapes the provider's GET /metrics and returns every sample by its series
// as the text format prints it: name{label="value",...} (labels sorted by name), or
// the bare name of a series without labels.
func (p *Provider) Metrics(t testing.TB) map[string]float64 {
	t.Helper()
	return Metrics(t, p.Base)
}

// Metrics is Provider.Metrics for the server at base (http://host:port).
func Metrics(t testing.TB, base string) map[string]float64 {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("metrics line %q", line)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
