package main

import (
	"context"
	"encoding/json"
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

// config is the path of domain's configuration file.
func (d *demo) config(domain string) string { return filepath.Join(d.dir, domain+".json") }

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// federation makes the test federation's CA and a certificate per domain, and
// writes each provider's configuration.
func (d *demo) federation(ctx context.Context) error {
	fed := filepath.Join(d.dir, "fed")
	if _, err := d.mimids(ctx, "cert", "ca", "-out", fed); err != nil {
		return err
	}
	for _, dom := range domains {
		if _, err := d.mimids(ctx, "cert", "issue", "-ca", fed, "-out", fed, dom); err != nil {
			return err
		}
		for _, m := range []map[string]int{d.gw, d.fed} {
			p, err := freePort()
			if err != nil {
				return err
			}
			m[dom] = p
		}
	}
	for _, dom := range domains {
		// No "peers": the relay reaches the others' gateways through the
		// allow-list (peer add), over their federation listeners.
		c := map[string]any{
			"domain":   dom,
			"listen":   fmt.Sprintf("127.0.0.1:%d", d.gw[dom]),
			"data_dir": filepath.Join(d.dir, "data", dom),
			"federation": map[string]any{
				"listen":       fmt.Sprintf("127.0.0.1:%d", d.fed[dom]),
				"cert_file":    filepath.Join(fed, dom+".pem"),
				"key_file":     filepath.Join(fed, dom+"-key.pem"),
				"min_backoff":  "50ms",
				"max_backoff":  "500ms",
				"peer_refresh": "100ms",
			},
		}
		b, err := json.MarshalIndent(c, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(d.config(dom), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// start starts domain's `mimids serve` and waits until it is ready.
func (d *demo) start(ctx context.Context, dom string) error {
	logf, err := os.Create(filepath.Join(d.dir, dom+".log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(d.bin, "serve", "-config", d.config(dom))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	d.procs[dom] = cmd
	url := fmt.Sprintf("http://127.0.0.1:%d/readyz", d.gw[dom])
	return poll(ctx, 20*time.Second, func() (bool, error) {
		r, err := http.Get(url)
		if err != nil {
			return false, err
		}
		r.Body.Close()
		return r.StatusCode == http.StatusOK, fmt.Errorf("readyz: %s", r.Status)
	})
}

// linked reports whether dom's `peer list` shows every other domain's link up.
func (d *demo) linked(ctx context.Context, dom string) (bool, error) {
	o, err := d.mimids(ctx, "peer", "list", "-config", d.config(dom))
	if err != nil {
		return false, err
	}
	up := 0
	for _, l := range strings.Split(o, "\n") {
		if strings.Contains(l, "\tup since ") {
			up++
		}
	}
	return up == len(domains)-1, fmt.Errorf("peer list of %s:\n%s", dom, o)
}

// stop ends every process the demo started: SIGTERM, then SIGKILL after 10s.
func (d *demo) stop() {
	for _, dom := range domains {
		cmd := d.procs[dom]
		if cmd == nil {
			continue
		}
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		fmt.Fprintf(d.out, "   stopped %s (pid %d)\n", dom, cmd.Process.Pid)
	}
}

// tails prints the last lines of each provider's log (after a failure).
func (d *demo) tails() {
	for _, dom := range domains {
		b, err := os.ReadFile(filepath.Join(d.dir, dom+".log"))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 8 {
			lines = lines[len(lines)-8:]
		}
		fmt.Fprintf(d.out, "--- %s.log (last lines)\n%s\n", dom, strings.Join(lines, "\n"))
	}
}
