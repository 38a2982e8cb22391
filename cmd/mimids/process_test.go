package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/protocol"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// mimidsBinary builds the command once per test run.
func mimidsBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mimids-bin")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "mimids")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// serverProc is one `mimids serve` process.
type serverProc struct {
	cmd         *exec.Cmd
	addr        string
	adminToken  string
	incarnation string // printed at start
	warning     string // the start-up WARNING line, if any
	done        chan error
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer runs mimids serve and waits until it prints its URLs.
func startServer(t *testing.T, dataDir, addr string, extra ...string) *serverProc {
	t.Helper()
	args := append([]string{"serve", "-data", dataDir, "-listen", addr, "-domain", "a.example", "-log-level", "warn"}, extra...)
	cmd := exec.Command(mimidsBinary(t), args...)
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serverProc{cmd: cmd, addr: addr, done: make(chan error, 1)}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if tok, ok := strings.CutPrefix(strings.TrimSpace(line), "admin token:"); ok {
				p.adminToken = strings.Fields(tok)[0]
			}
			if inc, ok := strings.CutPrefix(strings.TrimSpace(line), "incarnation:"); ok {
				p.incarnation = strings.TrimSpace(inc)
			}
			if w, ok := strings.CutPrefix(strings.TrimSpace(line), "WARNING:"); ok {
				p.warning = strings.TrimSpace(w)
			}
			if strings.Contains(line, "store:") {
				close(ready)
			}
		}
	}()
	go func() { p.done <- cmd.Wait() }()
	select {
	case <-ready:
	case err := <-p.done:
		t.Fatalf("mimids serve exited: %v", err)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("mimids serve did not start")
	}
	t.Cleanup(func() { p.kill() })
	return p
}

func (p *serverProc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

func (p *serverProc) post(path, token, body string) (int, []byte, error) {
	req, _ := http.NewRequest("POST", "http://"+p.addr+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var buf strings.Builder
	_, err = bufio.NewReader(resp.Body).WriteTo(&buf)
	return resp.StatusCode, []byte(buf.String()), err
}

// receiver is a protocol-level client that records deliveries and proves its acks
// are committed with a ping barrier (docs/protocol.md §1.4).
type receiver struct {
	t         *testing.T
	url       string
	token     string
	mu        sync.Mutex
	texts     map[string]int // notice text -> deliveries seen
	committed uint64         // highest seq whose ack is known committed
	last      uint64         // highest seq handled (the client's duplicate filter)
	violation string
}

func (r *receiver) run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := r.session(ctx); err != nil && ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond) // server down: retry, bounded by ctx
		}
	}
}

func (r *receiver) session(ctx context.Context) error {
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	c, _, err := websocket.Dial(dctx, r.url, &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol}})
	cancel()
	if err != nil {
		return err
	}
	defer c.CloseNow()
	c.SetReadLimit(2 << 20)
	if err := c.Write(ctx, websocket.MessageBinary, protocol.Encode(&protocol.Auth{RequestID: 1, Token: []byte(r.token)})); err != nil {
		return err
	}
	var pendingAck uint64
	n := 0
	for {
		_, msg, err := c.Read(ctx)
		if err != nil {
			return err
		}
		for len(msg) > 0 { // the server batches frames
			var f protocol.Frame
			f, msg, err = protocol.Next(msg)
			if err != nil {
				return err
			}
			switch f := f.(type) {
			case *protocol.Deliver:
				var nt protocol.Notice
				nt.UnmarshalBinary(f.Payload)
				r.mu.Lock()
				if f.Seq <= r.committed {
					r.violation = fmt.Sprintf("seq %d delivered again after its ack (up to %d) was committed", f.Seq, r.committed)
				}
				if f.Seq > r.last {
					r.texts[nt.Text]++
					r.last = f.Seq
				}
				r.mu.Unlock()
				if n++; n%20 == 0 {
					pendingAck = f.Seq
					c.Write(ctx, websocket.MessageBinary, protocol.Encode(&protocol.Ack{Seq: f.Seq}))
					c.Write(ctx, websocket.MessageBinary, protocol.Encode(&protocol.Request{RequestID: uint32(f.Seq), Method: protocol.MethodPing}))
				}
			case *protocol.Response:
				if uint64(f.RequestID) == pendingAck {
					r.mu.Lock()
					if pendingAck > r.committed {
						r.committed = pendingAck
					}
					r.mu.Unlock()
				}
			}
		}
	}
}

// TestProcessCrashLosesNothingAcknowledged runs separate mimids processes: a producer
// posts notices while a client receives and acks them; the server is killed with
// SIGKILL mid-stream and restarted on the same store. Every notice acknowledged to
// the producer must reach the client, and nothing the client's committed acks covered
// may come back.
func TestProcessCrashLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	data := t.TempDir()
	addr := freeAddr(t)
	s1 := startServer(t, data, addr)
	if s1.adminToken == "" {
		t.Fatal("first start printed no admin token")
	}
	code, body, err := s1.post("/admin/v1/clients", s1.adminToken, `{"user":"alice","client":"phone","create_user":true}`)
	if err != nil || code != 201 {
		t.Fatalf("add client: %d %s %v", code, body, err)
	}
	var cl struct {
		Token string `json:"token"`
	}
	json.Unmarshal(body, &cl)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	rcv := &receiver{t: t, url: "ws://" + addr + "/v1/socket", token: cl.Token, texts: map[string]int{}}
	rctx, stopRcv := context.WithCancel(ctx)
	rdone := make(chan struct{})
	go func() { defer close(rdone); rcv.run(rctx) }()

	var acked []string
	var mu sync.Mutex
	server := s1
	produce := func(from, to int) {
		for i := from; i < to && ctx.Err() == nil; i++ {
			text := fmt.Sprintf("notice-%d", i)
			mu.Lock()
			s := server
			mu.Unlock()
			code, _, err := s.post("/admin/v1/notices", s1.adminToken, fmt.Sprintf(`{"to":{"all":true},"text":%q}`, text))
			if err == nil && code == 202 {
				acked = append(acked, text)
			}
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); produce(0, 400) }()
	// Kill while notices are in flight.
	for i := 0; i < 1000; i++ {
		rcv.mu.Lock()
		n := len(rcv.texts)
		rcv.mu.Unlock()
		if n >= 150 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	s1.kill()
	wg.Wait()
	s2 := startServer(t, data, addr)
	if s2.adminToken != "" {
		t.Fatal("restart printed a new admin token")
	}
	mu.Lock()
	server = s2
	mu.Unlock()
	produce(1000, 1100)

	// Everything acknowledged to the producer arrives.
	deadline := time.Now().Add(60 * time.Second)
	for {
		rcv.mu.Lock()
		missing := 0
		for _, text := range acked {
			if rcv.texts[text] == 0 {
				missing++
			}
		}
		rcv.mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged notices never arrived", missing, len(acked))
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopRcv()
	<-rdone
	if rcv.violation != "" {
		t.Fatal(rcv.violation)
	}
	for text, n := range rcv.texts {
		if n != 1 {
			t.Errorf("%s handled %d times", text, n)
		}
	}
	if len(acked) < 200 {
		t.Fatalf("only %d notices acknowledged; the test did not exercise much", len(acked))
	}
	t.Logf("%d notices acknowledged, all delivered; committed acks never redelivered", len(acked))
	// Graceful shutdown on SIGTERM.
	s2.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s2.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}

// TestServeRefusesBadStoreAndConfig covers the start-up failures an operator meets.
func TestServeRefusesBadStoreAndConfig(t *testing.T) {
	bin := mimidsBinary(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "mimids.db"), []byte("definitely not an sqlite database file"), 0o600)
	out, err := exec.Command(bin, "serve", "-data", dir, "-listen", "127.0.0.1:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not an SQLite database") {
		t.Fatalf("non-SQLite store: %v\n%s", err, out)
	}
	cfg := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(cfg, []byte(`{"domain": "Bad Domain!", "listen": "nowhere", "log": {"format": "xml"}, "gateway": {"allowed_origins": ["*"]}}`), 0o600)
	out, err = exec.Command(bin, "serve", "-config", cfg).CombinedOutput()
	for _, want := range []string{"domain", "listen", "log.format", "allowed_origins"} {
		if err == nil || !strings.Contains(string(out), want) {
			t.Errorf("bad config: want %q reported, got %v\n%s", want, err, out)
		}
	}
	os.WriteFile(cfg, []byte(`{"domain": "a.example", `), 0o600)
	if out, err = exec.Command(bin, "serve", "-config", cfg).CombinedOutput(); err == nil || !strings.Contains(string(out), "config") {
		t.Errorf("corrupted config: %v\n%s", err, out)
	}
	os.WriteFile(cfg, []byte(`{"domian": "a.example"}`), 0o600)
	if out, err = exec.Command(bin, "serve", "-config", cfg).CombinedOutput(); err == nil || !strings.Contains(string(out), "unknown field") {
		t.Errorf("misspelled field: %v\n%s", err, out)
	}
}
