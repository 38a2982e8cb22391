// Command demo is `make demo`: three providers (a.example, b.example, c.example) as
// separate `mimids serve` processes on loopback, linked by a generated test
// federation, and one group hosted on a.example driven across all three with the Go
// client. Alice (A) fetches KeyPackages of bob (B) and carol (C) through A's relay
// and creates the group with a Welcome for both; bob and carol send through their
// own providers (forwarded to the hub); dave (C, which never saw the group) joins
// externally by naming A, and erin (B) commits to the same partition: a fork. Every
// partition is then read on all three providers and must be identical.
//
//	go run ./docs/examples/demo -mimids ./bin/mimids
//
// It prints each step, stops every process it started (also on failure), and ends
// with `demo: N passed, M failed`; the exit status is non-zero on any failure.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/mimids/fedproc"
)

var domains = []string{"a.example", "b.example", "c.example"}

func main() {
	bin := flag.String("mimids", "./bin/mimids", "the mimids binary (make build)")
	keep := flag.Bool("keep", false, "keep the temporary directory (configs, stores, logs)")
	timeout := flag.Duration("timeout", 110*time.Second, "give up after this long")
	flag.Parse()
	os.Exit(run(*bin, *keep, *timeout, os.Stdout))
}

// demo is one run: the federation it started and the checks so far.
type demo struct {
	*fedproc.Federation
	out    io.Writer
	passed int
	failed int
}

func run(bin string, keep bool, timeout time.Duration, out io.Writer) int {
	sig, stopSig := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSig()
	ctx, cancel := context.WithTimeout(sig, timeout)
	defer cancel()
	d := &demo{out: out}
	dir, err := os.MkdirTemp("", "mimids-demo-")
	if err == nil {
		d.Federation, err = fedproc.New(bin, dir, domains...)
	}
	if err != nil {
		fmt.Fprintln(out, "demo:", err)
		fmt.Fprintln(out, "demo: 0 passed, 1 failed")
		return 1
	}
	defer func() { // a panic still stops the providers
		if r := recover(); r != nil {
			d.stop()
			panic(r)
		}
	}()
	if err := d.scenario(ctx); err != nil {
		d.fail("scenario", err)
		fmt.Fprint(out, d.Tails(8))
	}
	d.stop()
	if keep || d.failed > 0 {
		fmt.Fprintf(out, "kept %s (configs, stores, logs)\n", d.Dir)
	} else {
		os.RemoveAll(d.Dir)
	}
	fmt.Fprintf(out, "demo: %d passed, %d failed\n", d.passed, d.failed)
	if d.failed > 0 {
		return 1
	}
	return 0
}

func (d *demo) step(format string, a ...any) { fmt.Fprintf(d.out, "== "+format+"\n", a...) }

func (d *demo) pass(format string, a ...any) {
	d.passed++
	fmt.Fprintf(d.out, "   ok   "+format+"\n", a...)
}

func (d *demo) fail(what string, err error) {
	d.failed++
	fmt.Fprintf(d.out, "   FAIL %s: %v\n", what, err)
}

// user is one device of one user, connected to its own provider.
type user struct {
	name, domain string
	c            *client.Client
	mu           sync.Mutex
	welcomes     map[string]int // group id -> Welcomes taken from the mailbox
}

func (u *user) uri() string { return "mimi://" + u.domain + "/u/" + u.name }

func (u *user) handler(_ context.Context, dl *client.Delivery) error {
	if wd, err := dl.Welcome(); err == nil {
		u.mu.Lock()
		u.welcomes[string(wd.GroupID)]++
		u.mu.Unlock()
	}
	return nil
}

func (u *user) welcomed(gid []byte) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.welcomes[string(gid)]
}

// addUser creates the user with one device on its provider (the CLI, beside the
// running server) and connects the device.
func (d *demo) addUser(ctx context.Context, name, domain string) (*user, error) {
	token, err := d.AddClient(ctx, domain, name)
	if err != nil {
		return nil, err
	}
	u := &user{name: name, domain: domain, welcomes: map[string]int{}}
	u.c, err = client.Dial(ctx, client.Config{URL: d.Socket(domain), Token: token, Handler: u.handler})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", u.uri(), err)
	}
	return u, nil
}

// stop ends every process the demo started: SIGTERM, then SIGKILL after 10s.
func (d *demo) stop() {
	d.StopAll(10*time.Second, func(dom string, pid int) { fmt.Fprintf(d.out, "   stopped %s (pid %d)\n", dom, pid) })
}
