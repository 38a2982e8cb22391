package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mimids/mimids/cmd/mimids/fedproc"
	"github.com/mimids/mimids/postgres/pgtest"
)

// The multi-node tests run one provider (a.example) as separate `mimids serve`
// processes on one PostgreSQL server (pgtest) and one NATS server, itself a
// separate process built from the module's nats-server. Each client reaches the
// nodes through a front: a loopback TCP proxy that prefers one node and fails over
// to the next one that accepts, as a client with a list of node URLs (or a TCP
// load balancer) would.

var (
	natsBinOnce sync.Once
	natsBinPath string
	natsBinErr  error
)

// natsBinary builds nats-server from the module cache once per test run (the
// module is a dependency of natsbus/natstest, so no download is needed).
func natsBinary(t testing.TB) string {
	t.Helper()
	natsBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mimids-nats-bin")
		if err != nil {
			natsBinErr = err
			return
		}
		natsBinPath = filepath.Join(dir, "nats-server")
		out, err := exec.Command("go", "build", "-o", natsBinPath, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			natsBinErr = fmt.Errorf("go build nats-server: %v\n%s", err, out)
		}
	})
	if natsBinErr != nil {
		t.Fatalf("the multi-node tests need a nats-server process: %v", natsBinErr)
	}
	return natsBinPath
}

// natsProc is a nats-server process on a fixed loopback port (kept across
// restarts, so the nodes reconnect to the new one).
type natsProc struct {
	bin, log string
	port     int
	cmd      *exec.Cmd
	done     chan error
}

func startNATS(t testing.TB, dir string) *natsProc {
	t.Helper()
	n := &natsProc{bin: natsBinary(t), log: filepath.Join(dir, "nats.log"), port: freePortT(t)}
	n.start(t)
	t.Cleanup(n.stop)
	return n
}

func (n *natsProc) URL() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }

func (n *natsProc) start(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	n.cmd = exec.Command(n.bin, "-a", "127.0.0.1", "-p", strconv.Itoa(n.port), "-m", "0")
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("start nats-server: %v", err)
	}
	n.done = make(chan error, 1)
	go func(cmd *exec.Cmd, done chan error) { done <- cmd.Wait() }(n.cmd, n.done)
	err = fedproc.Poll(context.Background(), 15*time.Second, func() (bool, error) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(n.port), time.Second)
		if err != nil {
			return false, err
		}
		c.Close()
		return true, nil
	})
	if err != nil {
		b, _ := os.ReadFile(n.log)
		t.Fatalf("nats-server on port %d did not start: %v\n%s", n.port, err, b)
	}
}

// stop kills the server (SIGKILL to its process group) and waits for it.
func (n *natsProc) stop() {
	if n.cmd == nil {
		return
	}
	syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.done
	n.cmd = nil
}

// procNode is one `mimids serve` node of the cluster.
type procNode struct {
	id, cfg, log, addr string
	cmd                *exec.Cmd
	done               chan error
}

func (n *procNode) base() string { return "http://" + n.addr }

// procCluster is the provider's nodes, their database and their NATS server.
type procCluster struct {
	t     testing.TB
	bin   string
	dir   string
	pg    *pgtest.Server
	dsn   string
	nats  *natsProc
	nodes []*procNode
	admin string // printed by the first node (one store: one admin token)
	hc    *http.Client
}

// startProcCluster starts PostgreSQL, NATS and n nodes; edit (if set) changes
// each node's configuration (a JSON object) before it is written.
func startProcCluster(t testing.TB, n int, edit func(i int, cfg map[string]any)) *procCluster {
	t.Helper()
	start := time.Now()
	c := &procCluster{t: t, bin: mimidsBinary(t), dir: t.TempDir(),
		hc: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
	natsBinary(t)
	built := time.Now()
	c.pg = pgtest.StartServer(t)
	c.dsn = c.pg.NewDatabase(t)
	pgUp := time.Now()
	c.nats = startNATS(t, c.dir)
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			c.kill(nd)
		}
		if t.Failed() {
			t.Log(c.tails(20))
		}
	})
	for i := range n {
		nd := &procNode{id: fmt.Sprintf("node%d", i+1), addr: freeAddrTB(t)}
		nd.cfg, nd.log = filepath.Join(c.dir, nd.id+".json"), filepath.Join(c.dir, nd.id+".log")
		cfg := map[string]any{
			"domain": "a.example", "listen": nd.addr, "data_dir": filepath.Join(c.dir, nd.id),
			"log":     map[string]any{"level": "warn"},
			"store":   map[string]any{"driver": "postgres", "dsn": c.dsn, "max_conns": 8},
			"hub":     map[string]any{"rate_per_second": -1},
			"cluster": map[string]any{"nats_url": c.nats.URL(), "node_id": nd.id, "poll_interval": "1h"},
		}
		if edit != nil {
			edit(i, cfg)
		}
		b, _ := json.MarshalIndent(cfg, "", "  ")
		if err := os.WriteFile(nd.cfg, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c.nodes = append(c.nodes, nd)
		c.start(nd)
	}
	if c.admin == "" {
		t.Fatal("the first node printed no admin token")
	}
	t.Logf("binaries built in %v, PostgreSQL up in %v, NATS and %d nodes in %v", built.Sub(start).Round(time.Millisecond),
		pgUp.Sub(built).Round(time.Millisecond), n, time.Since(pgUp).Round(time.Millisecond))
	return c
}

// start runs nd's `mimids serve` in its own process group and waits until its
// /readyz answers 200 (store and NATS up).
func (c *procCluster) start(nd *procNode) {
	c.t.Helper()
	logf, err := os.OpenFile(nd.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		c.t.Fatal(err)
	}
	args := []string{"serve", "-config", nd.cfg}
	if dir := os.Getenv("MIMIDS_BENCH_CPUPROFILE_DIR"); dir != "" {
		args = append(args, "-cpuprofile", filepath.Join(dir, nd.id+".prof"))
	}
	cmd := exec.Command(c.bin, args...)
	cmd.Stderr = logf
	out, _ := cmd.StdoutPipe()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		c.t.Fatal(err)
	}
	nd.cmd, nd.done = cmd, make(chan error, 1)
	token := make(chan string, 1)
	go func() {
		defer logf.Close()
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if tok, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "admin token:"); ok {
				token <- strings.Fields(tok)[0]
			}
		}
		nd.done <- cmd.Wait()
	}()
	err = fedproc.Poll(context.Background(), 30*time.Second, func() (bool, error) {
		st, body, err := c.get(nd, "/readyz")
		return err == nil && st == http.StatusOK, fmt.Errorf("%s /readyz: %d %s %v", nd.id, st, body, err)
	})
	if err != nil {
		c.t.Fatal(err)
	}
	select {
	case tok := <-token:
		c.admin = tok
	default:
	}
}

// kill ends nd at once (SIGKILL to its process group), as a crash of its machine
// would; it reports whether it was running.
func (c *procCluster) kill(nd *procNode) bool {
	if nd.cmd == nil {
		return false
	}
	syscall.Kill(-nd.cmd.Process.Pid, syscall.SIGKILL)
	<-nd.done
	nd.cmd = nil
	return true
}

func (c *procCluster) get(nd *procNode, path string) (int, string, error) {
	return c.do(nd, http.MethodGet, path, "")
}

// do calls nd's HTTP API with the admin token.
func (c *procCluster) do(nd *procNode, method, path, body string) (int, string, error) {
	req, err := http.NewRequest(method, nd.base()+path, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.admin)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(bytes.TrimSpace(b)), err
}

// addDevice creates a client of user through nd's admin API and returns its token.
func (c *procCluster) addDevice(nd *procNode, user, name string) string {
	c.t.Helper()
	st, body, err := c.do(nd, http.MethodPost, "/admin/v1/clients",
		fmt.Sprintf(`{"user":%q,"client":%q,"create_user":true}`, user, name))
	if err != nil || st != http.StatusCreated {
		c.t.Fatalf("add client %s/%s on %s: %d %s %v", user, name, nd.id, st, body, err)
	}
	var cl struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(body), &cl); err != nil || cl.Token == "" {
		c.t.Fatalf("add client %s/%s: %s %v", user, name, body, err)
	}
	return cl.Token
}

// tails is the last n lines of every node's log and of NATS's.
func (c *procCluster) tails(n int) string {
	var out strings.Builder
	logs := []string{c.nats.log}
	for _, nd := range c.nodes {
		logs = append(logs, nd.log)
	}
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > n {
			lines = lines[len(lines)-n:]
		}
		fmt.Fprintf(&out, "--- %s (last lines)\n%s\n", filepath.Base(l), strings.Join(lines, "\n"))
	}
	return out.String()
}

// front is a loopback TCP proxy before the nodes: each connection goes to the
// first of backends (in order) that accepts it. A node that is down refuses at
// once, so a client whose node died reconnects to the next one.
type front struct {
	ln       net.Listener
	backends []string
	served   []atomic.Int64 // connections proxied, by backend

	mu    sync.Mutex
	conns map[net.Conn]struct{} // open client-side connections; guarded by mu
}

// newFront listens on a free loopback port; it is closed with t.
func newFront(t testing.TB, backends ...string) *front {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &front{ln: ln, backends: backends, served: make([]atomic.Int64, len(backends)), conns: map[net.Conn]struct{}{}}
	go f.accept()
	t.Cleanup(f.close)
	return f
}

// frontsFor is one front per node, front i preferring node i, then the nodes
// after it.
func (c *procCluster) frontsFor(t testing.TB) []*front {
	var fs []*front
	for i := range c.nodes {
		var order []string
		for k := range c.nodes {
			order = append(order, c.nodes[(i+k)%len(c.nodes)].addr)
		}
		fs = append(fs, newFront(t, order...))
	}
	return fs
}

// socket is the client socket URL through the front.
func (f *front) socket() string { return "ws://" + f.ln.Addr().String() + "/v1/socket" }

func (f *front) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		go f.serve(c)
	}
}

func (f *front) serve(c net.Conn) {
	f.mu.Lock()
	f.conns[c] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
		c.Close()
	}()
	for i, addr := range f.backends {
		b, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			continue
		}
		f.served[i].Add(1)
		done := make(chan struct{}, 2)
		go func() { io.Copy(b, c); b.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
		go func() { io.Copy(c, b); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
		<-done // one side ended (a node killed resets its side): end both
		b.Close()
		return
	}
}

func (f *front) close() {
	f.ln.Close()
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.Close()
	}
}

func freePortT(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func freeAddrTB(t testing.TB) string { return "127.0.0.1:" + strconv.Itoa(freePortT(t)) }
