package provider_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/federation/fedcert"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/protocol"
)

const typeTest protocol.EnvelopeType = 0xf001

// received collects what the test handler of each provider got, by receiver.
type received struct {
	mu  sync.Mutex
	got map[string][]string // receiver domain -> "peer:body" in arrival order
}

func (r *received) add(to string, in *federation.Inbound) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got[to] = append(r.got[to], in.Peer+":"+string(in.Body))
}

func (r *received) count(to, from string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.got[to] {
		if strings.HasPrefix(s, from+":") {
			n++
		}
	}
	return n
}

// TestFederationWiring starts three providers with federation configured (their
// certificates made with fedcert), registers a handler on each through
// Provider.Federation, and checks that envelopes cross between every pair; then it
// stops one provider, queues for it, and restarts it on the same data directory and
// port: what was queued arrives.
func TestFederationWiring(t *testing.T) {
	certs := t.TempDir()
	ca, err := fedcert.NewCA("test", fedcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	domains := []string{"a.example", "b.example", "c.example"}
	for _, d := range domains {
		iss, err := ca.Issue(d, fedcert.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := iss.Write(certs, d); err != nil {
			t.Fatal(err)
		}
	}
	rec := &received{got: map[string][]string{}}
	start := func(domain, dataDir, fedListen string) *providertest.Provider {
		return providertest.StartWith(t, domain, nil, func(c *provider.Config) {
			if dataDir != "" {
				c.DataDir = dataDir
			}
			c.Federation.Listen = fedListen
			c.Federation.CertFile = filepath.Join(certs, fedcert.CertFile(domain))
			c.Federation.KeyFile = filepath.Join(certs, fedcert.KeyFile(domain))
			c.Federation.MinBackoff = gateway.Duration(20 * time.Millisecond)
			c.Federation.MaxBackoff = gateway.Duration(200 * time.Millisecond)
			c.Federation.PeerRefresh = gateway.Duration(100 * time.Millisecond)
			// A link whose peer went away without a close is found dead by its pings:
			// keep that well inside the polls' 15 s (the duplicate-link rule can keep
			// such a stale link over the restarted peer's new one until then).
			c.Federation.PingInterval = gateway.Duration(time.Second)
			c.Federation.WriteTimeout = gateway.Duration(3 * time.Second)
		}, func(p *provider.Provider) {
			p.Federation.Handle(typeTest, func(_ context.Context, in *federation.Inbound) ([]byte, error) {
				rec.add(domain, in)
				return nil, nil
			})
		})
	}
	ps := map[string]*providertest.Provider{}
	for _, d := range domains {
		ps[d] = start(d, "", "127.0.0.1:0")
	}
	ctx := context.Background()
	for _, d := range domains {
		for _, o := range domains {
			if d == o {
				continue
			}
			p := federation.Peer{Domain: o, URL: "wss://" + ps[o].Federation.Addr().String(), CA: ca.CertPEM()}
			if _, err := federation.AddPeer(ctx, ps[d].DB, d, p); err != nil {
				t.Fatal(err)
			}
		}
		if err := ps[d].Federation.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range domains {
		for _, o := range domains {
			if d != o {
				for i := 0; i < 5; i++ {
					if _, err := ps[d].Federation.Send(ctx, o, typeTest, []byte(fmt.Sprint(i))); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	for _, d := range domains {
		for _, o := range domains {
			if d != o {
				poll(t, fmt.Sprintf("%s received 5 from %s", d, o), func() bool { return rec.count(d, o) == 5 })
			}
		}
	}

	// b stops; a queues for it; b starts again on the same store and port.
	b := ps["b.example"]
	dataDir, fedAddr := b.Config.DataDir, b.Federation.Addr().String()
	b.Stop()
	for i := 5; i < 10; i++ {
		if _, err := ps["a.example"].Federation.Send(ctx, "b.example", typeTest, []byte(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	b = start("b.example", dataDir, fedAddr)
	poll(t, "b received the queued envelopes after its restart", func() bool { return rec.count("b.example", "a.example") == 10 })
	if st, ok := b.Federation.Status("a.example"); !ok {
		t.Fatalf("b does not know a after its restart: %+v", st)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var fromA []string
	for _, s := range rec.got["b.example"] {
		if strings.HasPrefix(s, "a.example:") {
			fromA = append(fromA, strings.TrimPrefix(s, "a.example:"))
		}
	}
	if strings.Join(fromA, ",") != "0,1,2,3,4,5,6,7,8,9" {
		t.Fatalf("b received from a, in order: %v", fromA)
	}
}

// TestFederationOff: with no federation certificate there is no link layer.
func TestFederationOff(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, nil)
	if p.Federation != nil {
		t.Fatal("a link layer without federation.cert_file")
	}
}

func TestFederationConfigValidate(t *testing.T) {
	c := provider.DefaultConfig()
	c.Domain = "a.example:8080"
	c.Federation.Listen = "nowhere"
	c.Federation.CertFile = "cert.pem"
	c.Federation.Window = 0
	c.Federation.MaxBackoff = 1
	c.Federation.PeerRefresh = 0
	err := c.Validate()
	if err == nil {
		t.Fatal("bad federation configuration accepted")
	}
	for _, want := range []string{"federation.cert_file and federation.key_file", "federation.listen \"nowhere\"",
		"without a port", "federation.window", "federation.max_backoff", "peer_refresh"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate does not report %q:\n%v", want, err)
		}
	}
	c = provider.DefaultConfig()
	c.Federation.Listen = "127.0.0.1:8443"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "needs federation.cert_file") {
		t.Fatalf("listen without a certificate: %v", err)
	}
}

func poll(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
