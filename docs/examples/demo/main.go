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
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/mls"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

var domains = []string{"a.example", "b.example", "c.example"}

func main() {
	bin := flag.String("mimids", "./bin/mimids", "the mimids binary (make build)")
	keep := flag.Bool("keep", false, "keep the temporary directory (configs, stores, logs)")
	timeout := flag.Duration("timeout", 110*time.Second, "give up after this long")
	flag.Parse()
	os.Exit(run(*bin, *keep, *timeout, os.Stdout))
}

// demo is one run: the processes it started and the checks so far.
type demo struct {
	out    io.Writer
	bin    string         // the mimids binary
	dir    string         // the temporary directory
	gw     map[string]int // domain -> gateway port
	fed    map[string]int // domain -> federation port
	procs  map[string]*exec.Cmd
	passed int
	failed int
}

func run(bin string, keep bool, timeout time.Duration, out io.Writer) int {
	sig, stopSig := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSig()
	ctx, cancel := context.WithTimeout(sig, timeout)
	defer cancel()
	d := &demo{out: out, bin: bin, gw: map[string]int{}, fed: map[string]int{}, procs: map[string]*exec.Cmd{}}
	var err error
	if d.bin, err = filepath.Abs(bin); err == nil {
		d.dir, err = os.MkdirTemp("", "mimids-demo-")
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
		d.tails()
	}
	d.stop()
	if keep || d.failed > 0 {
		fmt.Fprintf(out, "kept %s (configs, stores, logs)\n", d.dir)
	} else {
		os.RemoveAll(d.dir)
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

// mimids runs one CLI verb and returns its standard output.
func (d *demo) mimids(ctx context.Context, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, d.bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("mimids %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
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
	o, err := d.mimids(ctx, "client", "add", "-config", d.config(domain), "-create-user", name, "phone")
	if err != nil {
		return nil, err
	}
	var token string
	for _, l := range strings.Split(o, "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[0] == "token:" {
			token = f[1]
		}
	}
	if token == "" {
		return nil, errors.New("client add printed no token")
	}
	u := &user{name: name, domain: domain, welcomes: map[string]int{}}
	u.c, err = client.Dial(ctx, client.Config{URL: fmt.Sprintf("ws://127.0.0.1:%d/v1/socket", d.gw[domain]), Token: token, Handler: u.handler})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", u.uri(), err)
	}
	return u, nil
}

// poll calls cond every 50ms until it is true or ctx or limit ends.
func poll(ctx context.Context, limit time.Duration, cond func() (bool, error)) error {
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

// kp uploads one fresh KeyPackage of u to its provider.
func kp(ctx context.Context, u *user) ([]byte, error) {
	b, _, err := mlstest.NewKeyPackage(mlstest.KeyPackageOptions{Identity: u.uri()})
	if err != nil {
		return nil, err
	}
	refs, err := u.c.UploadKeyPackages(ctx, [][]byte{b})
	if err != nil {
		return nil, err
	}
	return refs[0], nil
}

// fetch discovers who at their provider and fetches one KeyPackage through r (the
// relay of the asking client's own provider); it returns its ref.
func fetch(ctx context.Context, r *client.Remote, who *user) ([]byte, error) {
	dis, err := r.Discover(ctx, who.domain, nil, who.uri())
	if err != nil {
		return nil, err
	}
	res, err := r.FetchKeyPackages(ctx, who.domain, nil, []protocol.KeyPackageRequest{{UserID: dis.UserID, BearerToken: dis.BearerToken,
		Version: mls.ProtocolVersionMLS10, CipherSuite: mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519}})
	if err != nil {
		return nil, err
	}
	if err := res[0].Err(); err != nil {
		return nil, err
	}
	suite, _ := mls.MLS128DHKEMX25519AES128GCMSHA256Ed25519.Suite()
	return mls.MakeKeyPackageRef(suite, res[0].Response.KeyPackage), nil
}
