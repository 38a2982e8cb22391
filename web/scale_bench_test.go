package web_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
)

// BenchmarkDashboard10k measures the dashboard beside 10,000 connected clients:
// page loads, and the CPU the process spends with and without live streams open.
// Run it once: go test -run - -bench Dashboard10k -benchtime 1x ./web
// The sockets are opened by a second process (this test binary again, in
// TestDialerProcess), so each process needs about 10,000 open files.
func BenchmarkDashboard10k(b *testing.B) {
	const clients = 10_000
	if testing.Short() {
		b.Skip("opens 10,000 sockets for two minutes: not with -short")
	}
	raiseNoFile(b, 15_000)
	p := providertest.Start(b, "a.example", nil, func(c *provider.Config) {
		c.Gateway.MaxUnauthenticated, c.Gateway.MaxUnauthenticatedPerAddress = 4096, 4096
	})
	ctx := context.Background()
	tokens := make([]string, clients)
	start := time.Now()
	for i := range tokens {
		_, tok, err := p.Dir.AddClient(ctx, fmt.Sprintf("user%05d", i), "phone", true)
		if err != nil {
			b.Fatal(err)
		}
		tokens[i] = tok
	}
	b.Logf("created %d users and clients in %v", clients, time.Since(start))
	start = time.Now()
	stop := dialerProcess(b, p.Socket, tokens)
	defer stop()
	b.Logf("opened %d sockets from another process in %v; the gateway counts %d", clients, time.Since(start), p.Gateway.Connected())

	a := adminSession(b, p)
	for _, path := range []string{"/dashboard/", "/dashboard/users", "/dashboard/users?q=user5", "/dashboard/users?after=user09000",
		"/dashboard/users/user09999", "/dashboard/groups", "/dashboard/policy", "/dashboard/keys", "/dashboard/audit"} {
		var worst time.Duration
		for i := 0; i < 5; i++ {
			t0 := time.Now()
			resp, err := a.Get(p.Base + path)
			if err != nil || resp.StatusCode != 200 {
				b.Fatalf("GET %s: %v %v", path, err, resp)
			}
			resp.Body.Close()
			worst = max(worst, time.Since(t0))
		}
		b.Logf("GET %-36s slowest of 5: %v", path, worst)
	}

	t0 := time.Now()
	for i := 0; i < 100; i++ {
		if _, err := p.DB.MailboxDepth(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("the sampler's mailbox depth query at %d clients: %v", clients, time.Since(t0)/100)
	window := 30 * time.Second // one whole ping round of the 10,000 sockets (gateway.ping_interval) in each
	base1 := cpuDuring(window)
	b.Logf("process CPU, %d idle sockets, sampler running, no stream: %.2f%% of a core", clients, base1)
	const streams = 10
	sctx, cancel := context.WithCancel(ctx)
	for i := 0; i < streams; i++ {
		req, _ := http.NewRequestWithContext(sctx, http.MethodGet, p.Base+"/dashboard/events", nil)
		resp, err := a.Do(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("events: %v", err)
		}
		go func() {
			buf := make([]byte, 32<<10)
			for {
				if _, err := resp.Body.Read(buf); err != nil {
					return
				}
			}
		}()
	}
	with := cpuDuring(window)
	cancel()
	base2 := cpuDuring(window)
	base := (base1 + base2) / 2
	b.Logf("process CPU, no stream again: %.2f%% of a core", base2)
	b.Logf("process CPU with %d live streams: %.2f%% of a core (%.3f%% per stream, reading included)", streams, with, (with-base)/streams)
	b.ReportMetric(base, "cpu%-no-stream")
	b.ReportMetric((with-base)/streams, "cpu%-per-stream")
}

// cpuDuring is the process's CPU use over d, in percent of one core.
func cpuDuring(d time.Duration) float64 {
	var r0, r1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &r0)
	time.Sleep(d)
	syscall.Getrusage(syscall.RUSAGE_SELF, &r1)
	used := time.Duration(r1.Utime.Nano()+r1.Stime.Nano()-r0.Utime.Nano()-r0.Stime.Nano()) * time.Nanosecond
	return 100 * used.Seconds() / d.Seconds()
}

// adminSession is an HTTP client logged in to the dashboard.
func adminSession(b *testing.B, p *providertest.Provider) *http.Client {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(p.Base+"/dashboard/login", url.Values{"token": {p.AdminToken}})
	if err != nil || resp.StatusCode != http.StatusSeeOther {
		b.Fatalf("login: %v %v", err, resp)
	}
	resp.Body.Close()
	return c
}

func raiseNoFile(t testing.TB, n uint64) {
	var lim syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	if lim.Cur < n {
		lim.Cur = min(n, lim.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < n {
			t.Fatalf("open file limit %d, want %d (ulimit -n): %v", lim.Cur, n, err)
		}
	}
}

// dialerProcess opens a socket for each token from a child process and keeps them
// open until stop.
func dialerProcess(b *testing.B, socket string, tokens []string) (stop func()) {
	f := filepath.Join(b.TempDir(), "tokens")
	if err := os.WriteFile(f, []byte(strings.Join(tokens, "\n")), 0o600); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestDialerProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "MIMIDS_DIALER_TOKENS="+f, "MIMIDS_DIALER_URL="+socket)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		b.Fatalf("dialer: %q %v", line, err)
	}
	return func() { in.Close(); cmd.Wait() }
}

// TestDialerProcess is the child of BenchmarkDashboard10k: with the environment it
// sets, it opens the sockets, says ready, and holds them until stdin closes;
// without it, it checks that one socket opens.
func TestDialerProcess(t *testing.T) {
	f := os.Getenv("MIMIDS_DIALER_TOKENS")
	if f == "" {
		p := providertest.Start(t, "a.example", nil, nil)
		_, tok, err := p.Dir.AddClient(context.Background(), "alice", "phone", true)
		if err != nil {
			t.Fatal(err)
		}
		dialClient(t, p.Socket, tok)
		return
	}
	raiseNoFile(t, 12_000)
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	tokens := strings.Split(string(b), "\n")
	conns := make([]*websocket.Conn, len(tokens))
	var wg sync.WaitGroup
	work := make(chan int)
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				c, err := dial(os.Getenv("MIMIDS_DIALER_URL"), tokens[i])
				if err != nil {
					t.Error(err)
					continue
				}
				conns[i] = c
				go func() { // read (and so answer pings) until the end
					for {
						if _, _, err := c.Read(context.Background()); err != nil {
							return
						}
					}
				}()
			}
		}()
	}
	for i := range tokens {
		work <- i
	}
	close(work)
	wg.Wait()
	if t.Failed() {
		return
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
}
