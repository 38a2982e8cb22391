package gateway_test

import (
	"context"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/gateway"
	"github.com/mimids/mimids/protocol"
	"github.com/mimids/mimids/sqlite"
)

// env is one provider served in-process on a loopback port.
type env struct {
	t       *testing.T
	db      *sqlite.DB
	dir     *directory.Directory
	mb      *mailbox.Mailbox
	srv     *gateway.Server
	reg     *prometheus.Registry
	base    string // http://127.0.0.1:port
	ws      string // ws://127.0.0.1:port/v1/socket
	admin   string
	cancel  context.CancelFunc
	stopped chan error
}

func newEnv(t *testing.T, cfg gateway.Config) *env {
	t.Helper()
	return newEnvParts(t, cfg, nil)
}

// newEnvParts is newEnv with group traffic from parts (nil: none).
func newEnvParts(t *testing.T, cfg gateway.Config, parts gateway.Partitions) *env {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "mimids.db"), sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, db: db, dir: directory.New(db, "a.example"), reg: gateway.NewRegistry()}
	e.mb = mailbox.New(db, mailbox.Metrics{})
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ready := func(ctx context.Context) []gateway.ReadyCheck {
		h := db.Health(ctx)
		return []gateway.ReadyCheck{{Name: "store_read", Err: h.Read}, {Name: "store_write", Err: h.Write}}
	}
	e.srv = gateway.New(cfg, gateway.Deps{Directory: e.dir, Mailbox: e.mb, Ready: ready, Registry: e.reg,
		Incarnation: db.Incarnation().ID, Partitions: parts})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.base = "http://" + ln.Addr().String()
	e.ws = "ws://" + ln.Addr().String() + "/v1/socket"
	e.admin, err = e.dir.EnsureAdmin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	e.stopped = make(chan error, 1)
	go func() { e.stopped <- e.srv.Serve(sctx, ln) }()
	t.Cleanup(func() {
		e.stop()
		db.Close()
	})
	return e
}

func (e *env) stop() {
	if e.cancel == nil {
		return
	}
	e.cancel()
	e.cancel = nil
	select {
	case err := <-e.stopped:
		if err != nil {
			e.t.Errorf("Serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		e.t.Error("Serve did not return after shutdown")
	}
}

// addClient creates user/client and returns its token.
func (e *env) addClient(user, client string) (directory.Client, string) {
	e.t.Helper()
	c, tok, err := e.dir.AddClient(context.Background(), user, client, true)
	if err != nil {
		e.t.Fatal(err)
	}
	return c, tok
}

// rawConn is a protocol-level test client.
type rawConn struct {
	t    *testing.T
	c    *websocket.Conn
	rest []byte // frames left from the last message (the server batches)
}

func (e *env) dial(opts *websocket.DialOptions) *rawConn {
	e.t.Helper()
	if opts == nil {
		opts = &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, e.ws, opts)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	c.SetReadLimit(8 << 20)
	e.t.Cleanup(func() { c.CloseNow() })
	return &rawConn{t: e.t, c: c}
}

func (e *env) login(token string) (*rawConn, *protocol.AuthOK) {
	e.t.Helper()
	rc := e.dial(nil)
	rc.send(&protocol.Auth{RequestID: 1, Token: []byte(token)})
	ok, isOK := rc.next().(*protocol.AuthOK)
	if !isOK {
		e.t.Fatal("no auth_ok")
	}
	return rc, ok
}

func (rc *rawConn) sendRaw(b []byte) {
	rc.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rc.c.Write(ctx, websocket.MessageBinary, b); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

func (rc *rawConn) send(f protocol.Frame) { rc.t.Helper(); rc.sendRaw(protocol.Encode(f)) }

// next reads one frame, failing the test after 5 s.
func (rc *rawConn) next() protocol.Frame {
	rc.t.Helper()
	f, err := rc.read(5 * time.Second)
	if err != nil {
		rc.t.Fatalf("read: %v", err)
	}
	return f
}

func (rc *rawConn) read(d time.Duration) (protocol.Frame, error) {
	if len(rc.rest) == 0 {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		_, b, err := rc.c.Read(ctx)
		if err != nil {
			return nil, err
		}
		rc.rest = b
	}
	f, rest, err := protocol.Next(rc.rest)
	rc.rest = rest
	return f, err
}

// closeCode reads until the server closes and returns the close code.
func (rc *rawConn) closeCode() websocket.StatusCode {
	rc.t.Helper()
	for i := 0; i < 1000; i++ {
		_, err := rc.read(10 * time.Second)
		if err != nil {
			return websocket.CloseStatus(err)
		}
	}
	rc.t.Fatal("server kept sending")
	return 0
}

func (e *env) closes(reason string) float64 {
	return e.labeled("mimids_socket_closes_total", "reason", reason)
}

// eventually polls cond every 10 ms for up to 20 s (the race detector on a loaded
// 2-core machine is slow).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 2000; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	t.Fatalf("timed out waiting for %s; goroutines:\n%s", what, buf[:runtime.Stack(buf, true)])
}

func adminReq(t *testing.T, e *env, method, path, token, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, sb.String()
}

func (e *env) counter(name string) float64 { return e.labeled(name, "", "") }

// labeled is counter for the series whose label is value (any series when label
// is empty).
func (e *env) labeled(name, label, value string) float64 {
	mfs, _ := e.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				match = match || (l.GetName() == label && l.GetValue() == value)
			}
			if !match {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func (e *env) allCloses() map[string]float64 {
	out := map[string]float64{}
	mfs, _ := e.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "mimids_socket_closes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}
