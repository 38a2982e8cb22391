// Package fedproc runs a test federation of separate `mimids serve` processes on
// loopback: a CA and a certificate per domain (`mimids cert`), one configuration
// per provider, each on the others' allow-list (`mimids peer add`), and the
// processes started, watched and stopped. `make demo` and the multi-process tests
// use it.
package fedproc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Federation is one test federation in Dir. Its maps are filled by Setup and
// Start; it is not safe for concurrent use.
type Federation struct {
	Bin     string               // the mimids binary (an absolute path)
	Dir     string               // configurations, certificates, stores and logs
	Domains []string             // the providers, in start order
	GW      map[string]int       // domain -> gateway port
	Fed     map[string]int       // domain -> federation port
	Procs   map[string]*exec.Cmd // domain -> its running `mimids serve`
}

// New is a federation of domains run by bin in dir (which must exist).
func New(bin, dir string, domains ...string) (*Federation, error) {
	abs, err := filepath.Abs(bin)
	if err != nil {
		return nil, fmt.Errorf("fedproc: %w", err)
	}
	return &Federation{Bin: abs, Dir: dir, Domains: domains, GW: map[string]int{}, Fed: map[string]int{},
		Procs: map[string]*exec.Cmd{}}, nil
}

// Config is the path of domain's configuration file.
func (f *Federation) Config(domain string) string { return filepath.Join(f.Dir, domain+".json") }

// CA is the path of the federation CA's certificate.
func (f *Federation) CA() string { return filepath.Join(f.Dir, "fed", "ca.pem") }

// Log is the path of domain's log (its standard output and error).
func (f *Federation) Log(domain string) string { return filepath.Join(f.Dir, domain+".log") }

// Socket is the client socket URL of domain's gateway.
func (f *Federation) Socket(domain string) string {
	return fmt.Sprintf("ws://127.0.0.1:%d/v1/socket", f.GW[domain])
}

// Base is the HTTP base URL of domain's gateway.
func (f *Federation) Base(domain string) string {
	return fmt.Sprintf("http://127.0.0.1:%d", f.GW[domain])
}

// Mimids runs one CLI verb and returns its standard output.
func (f *Federation) Mimids(ctx context.Context, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, f.Bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("mimids %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Setup makes the test federation's CA and a certificate per domain (mimids cert),
// picks the ports, and writes each provider's configuration: its gateway, its
// federation listener and short backoffs. There is no "peers" list: the OHTTP relay
// reaches the other providers' gateways through the allow-list (peer add), over their
// federation listeners.
func (f *Federation) Setup(ctx context.Context) error {
	fed := filepath.Join(f.Dir, "fed")
	if _, err := f.Mimids(ctx, "cert", "ca", "-out", fed); err != nil {
		return err
	}
	for _, dom := range f.Domains {
		if _, err := f.Mimids(ctx, "cert", "issue", "-ca", fed, "-out", fed, dom); err != nil {
			return err
		}
		for _, m := range []map[string]int{f.GW, f.Fed} {
			p, err := freePort()
			if err != nil {
				return fmt.Errorf("fedproc: %w", err)
			}
			m[dom] = p
		}
	}
	for _, dom := range f.Domains {
		c := map[string]any{
			"domain":   dom,
			"listen":   fmt.Sprintf("127.0.0.1:%d", f.GW[dom]),
			"data_dir": filepath.Join(f.Dir, "data", dom),
			"federation": map[string]any{
				"listen":        fmt.Sprintf("127.0.0.1:%d", f.Fed[dom]),
				"cert_file":     filepath.Join(fed, dom+".pem"),
				"key_file":      filepath.Join(fed, dom+"-key.pem"),
				"min_backoff":   "50ms",
				"max_backoff":   "500ms",
				"peer_refresh":  "100ms",
				"ping_interval": "1s",
				"write_timeout": "3s",
			},
		}
		b, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			return fmt.Errorf("fedproc: %w", err)
		}
		if err := os.WriteFile(f.Config(dom), b, 0o600); err != nil {
			return fmt.Errorf("fedproc: %w", err)
		}
	}
	return nil
}

// Start starts domain's `mimids serve` in its own process group, logging to
// Log(domain), and waits until its /readyz answers 200.
func (f *Federation) Start(ctx context.Context, dom string) error {
	logf, err := os.OpenFile(f.Log(dom), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("fedproc: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(f.Bin, "serve", "-config", f.Config(dom))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("fedproc: start %s: %w", dom, err)
	}
	f.Procs[dom] = cmd
	url := f.Base(dom) + "/readyz"
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	return Poll(ctx, 30*time.Second, func() (bool, error) {
		r, err := hc.Get(url)
		if err != nil {
			return false, err
		}
		r.Body.Close()
		return r.StatusCode == http.StatusOK, fmt.Errorf("readyz: %s", r.Status)
	})
}

// AddPeers puts every provider on every other's allow-list (mimids peer add -ca,
// beside the running servers, which read the list again every peer_refresh).
func (f *Federation) AddPeers(ctx context.Context) error {
	for _, dom := range f.Domains {
		for _, o := range f.Domains {
			if o == dom {
				continue
			}
			if _, err := f.Mimids(ctx, "peer", "add", "-config", f.Config(dom), "-url", fmt.Sprintf("wss://127.0.0.1:%d", f.Fed[o]),
				"-ca", f.CA(), o); err != nil {
				return err
			}
		}
	}
	return nil
}

// Linked reports whether dom's `peer list` shows every other domain's link up.
func (f *Federation) Linked(ctx context.Context, dom string) (bool, error) {
	o, err := f.Mimids(ctx, "peer", "list", "-config", f.Config(dom))
	if err != nil {
		return false, err
	}
	up := 0
	for _, l := range strings.Split(o, "\n") {
		if strings.Contains(l, "\tup since ") {
			up++
		}
	}
	return up == len(f.Domains)-1, fmt.Errorf("peer list of %s:\n%s", dom, o)
}

// WaitLinked polls every provider's `peer list` until all its links are up.
func (f *Federation) WaitLinked(ctx context.Context, limit time.Duration) error {
	for _, dom := range f.Domains {
		if err := Poll(ctx, limit, func() (bool, error) { return f.Linked(ctx, dom) }); err != nil {
			return err
		}
	}
	return nil
}

// AddClient creates user on domain with one device (mimids client add, beside the
// running server) and returns the device's token.
func (f *Federation) AddClient(ctx context.Context, domain, user string) (string, error) {
	o, err := f.Mimids(ctx, "client", "add", "-config", f.Config(domain), "-create-user", user, "phone")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(o, "\n") {
		if fs := strings.Fields(l); len(fs) == 2 && fs[0] == "token:" {
			return fs[1], nil
		}
	}
	return "", errors.New("fedproc: client add printed no token")
}

// Stop ends domain's process: SIGTERM, then SIGKILL to its process group after
// grace. It reports whether a process was running.
func (f *Federation) Stop(dom string, grace time.Duration) bool {
	cmd := f.Procs[dom]
	if cmd == nil {
		return false
	}
	delete(f.Procs, dom)
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(grace):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	return true
}

// StopAll stops every process still running, in domain order, and calls stopped
// (if set) for each.
func (f *Federation) StopAll(grace time.Duration, stopped func(dom string, pid int)) {
	for _, dom := range f.Domains {
		cmd := f.Procs[dom]
		if cmd != nil && f.Stop(dom, grace) && stopped != nil {
			stopped(dom, cmd.Process.Pid)
		}
	}
}

// Tails returns the last n lines of each provider's log (after a failure).
func (f *Federation) Tails(n int) string {
	var out strings.Builder
	for _, dom := range f.Domains {
		b, err := os.ReadFile(f.Log(dom))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&out, "--- %s.log (last lines)\n%s\n", dom, strings.Join(lines, "\n"))
	}
	return out.String()
}

// Poll calls cond every 50ms until it is true or ctx or limit ends; then it
// returns cond's last error (or the context's).
func Poll(ctx context.Context, limit time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			return err
		case <-time.After(50 * time.Millisecond):
		}
	}
}
