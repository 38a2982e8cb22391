package federation_test

import (
	"context"
	"crypto/tls"
	"database/sql"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/mimids/mimids/federation"
	"github.com/mimids/mimids/federation/fedcert"
	"github.com/mimids/mimids/protocol"
	"github.com/mimids/mimids/sqlite"
)

// Envelope types the test providers handle.
const (
	typeApply  protocol.EnvelopeType = 0xf001 // atomic: records the envelope in test_applied, answers "ok:<body>"
	typeRefuse protocol.EnvelopeType = 0xf002 // refuses with policy
	typePlain  protocol.EnvelopeType = 0xf003 // not atomic: counts in memory, answers the body
	typeBlock  protocol.EnvelopeType = 0xf004 // blocks until the node's unblock channel closes
	typeNone   protocol.EnvelopeType = 0xf0ff // no handler
)

var ctx = context.Background()

// fed is a test federation: one CA, and providers made with it.
type fed struct {
	t   testing.TB
	ca  *fedcert.CA
	dir string
}

func newFed(t testing.TB) *fed {
	t.Helper()
	ca, err := fedcert.NewCA("test federation", fedcert.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &fed{t: t, ca: ca, dir: t.TempDir()}
}

// node is one provider: its store and its link layer, restartable on the same
// data directory and port.
type node struct {
	f      *fed
	domain string
	cert   tls.Certificate
	der    []byte
	addr   string // the federation listener, host:port
	dbPath string
	cfg    func(*federation.Config)

	applyDelay time.Duration // each typeApply sleeps this long inside its transaction
	unblock    chan struct{}
	plain      sync.Map // "peer/id" -> *atomic.Int32: typePlain calls
	answersMu  sync.Mutex
	answers    []*federation.Answer // OnAnswer(typeApply) calls

	db     *sqlite.DB
	links  *federation.Links
	cancel context.CancelFunc
	done   chan error
}

type nodeOpt func(*node)

// withCert makes the node present a certificate issued for another domain, or a
// self-signed one.
func withCert(i fedcert.Issued) nodeOpt {
	return func(n *node) {
		c, err := i.TLS()
		if err != nil {
			n.f.t.Fatal(err)
		}
		n.cert, n.der = c, i.DER
	}
}

func withAddr(addr string) nodeOpt { return func(n *node) { n.addr = addr } }

func withApplyDelay(d time.Duration) nodeOpt { return func(n *node) { n.applyDelay = d } }

// newNode makes a provider (not started) listening on a fresh loopback port.
func (f *fed) newNode(domain string, opts ...nodeOpt) *node {
	f.t.Helper()
	n := &node{f: f, domain: domain, dbPath: filepath.Join(f.dir, domain, "mimids.db"), unblock: make(chan struct{})}
	iss, err := f.ca.Issue(domain, fedcert.Options{})
	if err != nil {
		f.t.Fatal(err)
	}
	withCert(iss)(n)
	for _, o := range opts {
		o(n)
	}
	if n.addr == "" {
		n.addr = "127.0.0.1:0"
	}
	n.open()
	f.t.Cleanup(func() {
		select {
		case <-n.unblock:
		default:
			close(n.unblock)
		}
		n.stop()
	})
	return n
}

// open opens the store and the link layer; the listener is bound at once.
func (n *node) open() {
	t := n.f.t
	t.Helper()
	db, err := sqlite.Open(ctx, n.dbPath, sqlite.Options{Synchronous: "normal"})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS test_applied (
			seq INTEGER PRIMARY KEY AUTOINCREMENT, peer TEXT NOT NULL, id INTEGER NOT NULL, body BLOB NOT NULL)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	cfg := federation.Config{Domain: n.domain, Certificate: n.cert, Listen: n.addr,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, DialTimeout: 3 * time.Second,
		WriteTimeout: 3 * time.Second, PingInterval: time.Second, PeerRefresh: 100 * time.Millisecond,
		ProbeTimeout: 3 * time.Second, // a live link's pong, on a loaded machine
		Logger:       testLogger()}
	if n.cfg != nil {
		n.cfg(&cfg)
	}
	l, err := federation.New(cfg, db)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	n.addr = l.Addr().String()
	n.db, n.links = db, l
	n.register()
}

func testLogger() *slog.Logger {
	if os.Getenv("FED_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func (n *node) register() {
	l, db := n.links, n.db
	l.HandleAtomic(typeApply, func(ctx context.Context, in *federation.Inbound) ([]byte, error) {
		if n.applyDelay > 0 {
			time.Sleep(n.applyDelay)
		}
		err := db.Write(ctx, func(tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO test_applied (peer, id, body) VALUES (?, ?, ?)`, in.Peer, int64(in.ID), in.Body)
			return err
		})
		return append([]byte("ok:"), in.Body...), err
	})
	l.Handle(typeRefuse, func(context.Context, *federation.Inbound) ([]byte, error) {
		return nil, fmt.Errorf("test: %w", protocol.NewError(protocol.CodePolicy, "refused by the test"))
	})
	l.Handle(typePlain, func(_ context.Context, in *federation.Inbound) ([]byte, error) {
		v, _ := n.plain.LoadOrStore(fmt.Sprintf("%s/%d", in.Peer, in.ID), new(atomic.Int32))
		v.(*atomic.Int32).Add(1)
		return in.Body, nil
	})
	l.Handle(typeBlock, func(ctx context.Context, in *federation.Inbound) ([]byte, error) {
		select {
		case <-n.unblock:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return nil, nil
	})
	l.OnAnswer(typeApply, func(ctx context.Context, a *federation.Answer) error {
		n.answersMu.Lock()
		n.answers = append(n.answers, a)
		n.answersMu.Unlock()
		return nil
	})
}

// start runs the link layer.
func (n *node) start() *node {
	c, cancel := context.WithCancel(ctx)
	n.cancel, n.done = cancel, make(chan error, 1)
	l := n.links
	go func() { n.done <- l.Run(c) }()
	return n
}

// stop ends the link layer and closes the store, like a provider shutting down.
func (n *node) stop() {
	if n.db == nil {
		return
	}
	if n.cancel != nil {
		n.cancel()
		select {
		case err := <-n.done:
			if err != nil {
				n.f.t.Errorf("%s: Run: %v", n.domain, err)
			}
		case <-time.After(15 * time.Second):
			n.f.t.Errorf("%s: Run did not return", n.domain)
		}
		n.cancel = nil
	}
	n.db.Close()
	n.db, n.links = nil, nil
}

// restart stops the node and starts it again on the same store and port.
func (n *node) restart() {
	n.stop()
	n.open()
	n.start()
}

// trust puts peer on n's allow-list, proven by the federation's CA.
func (n *node) trust(peer *node) {
	n.trustAs(federation.Peer{Domain: peer.domain, URL: "wss://" + peer.addr, CA: n.f.ca.CertPEM()})
}

// pin puts peer on n's allow-list, proven by the pin of der.
func (n *node) pin(peer *node, der []byte) {
	n.trustAs(federation.Peer{Domain: peer.domain, URL: "wss://" + peer.addr, Pin: mustPin(n.f.t, der)})
}

func (n *node) trustAs(p federation.Peer) {
	n.f.t.Helper()
	if _, err := federation.AddPeer(ctx, n.db, n.domain, p); err != nil {
		n.f.t.Fatal(err)
	}
	if err := n.links.Refresh(ctx); err != nil {
		n.f.t.Fatal(err)
	}
}

func mustPin(t testing.TB, der []byte) []byte {
	p, err := federation.ParsePin(fedcert.Pin(der))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// mesh makes every node trust every other and starts them.
func mesh(nodes ...*node) {
	for _, a := range nodes {
		for _, b := range nodes {
			if a != b {
				a.trust(b)
			}
		}
	}
	for _, n := range nodes {
		n.start()
	}
}

func (n *node) up(peer string) bool {
	st, ok := n.links.Status(peer)
	return ok && st.State == federation.StateUp
}

func (n *node) depth(peer string) int {
	st, err := n.db.QueueStats(ctx)
	if err != nil {
		n.f.t.Fatal(err)
	}
	for _, s := range st {
		if s.Peer == peer {
			return s.Depth
		}
	}
	return 0
}

// applied returns the ids of peer's typeApply envelopes in the order n applied them.
func (n *node) applied(peer string) []uint64 {
	var ids []uint64
	err := n.db.Write(ctx, func(tx *sql.Tx) error {
		ids = ids[:0]
		rows, err := tx.QueryContext(ctx, `SELECT id FROM test_applied WHERE peer = ? ORDER BY seq`, peer)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, uint64(id))
		}
		return rows.Err()
	})
	if err != nil {
		n.f.t.Fatal(err)
	}
	return ids
}

// sendN queues count typeApply envelopes from n to peer.
func (n *node) sendN(t testing.TB, peer string, count int) {
	t.Helper()
	for i := 0; i < count; i++ {
		if _, err := n.links.Send(ctx, peer, typeApply, []byte(fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
}

// checkOnceInOrder fails unless ids is exactly 1..want, each once, in order.
func checkOnceInOrder(t testing.TB, ids []uint64, want int) {
	t.Helper()
	if len(ids) != want {
		t.Fatalf("applied %d envelopes, want %d (%v...)", len(ids), want, ids[:min(len(ids), 20)])
	}
	for i, id := range ids {
		if id != uint64(i+1) {
			t.Fatalf("applied[%d] = id %d: not once each, in order", i, id)
		}
	}
}

// eventually polls cond until it holds, or fails after 15s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// freeAddr returns a loopback address nothing listens on (it was free a moment ago).
func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// rawPeer dials n's federation listener as domain with cert, speaking the link
// protocol by hand (a hostile or buggy peer).
func rawDial(t testing.TB, n *node, domain string, cert tls.Certificate, stream string) (*websocket.Conn, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
		InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}}
	defer tr.CloseIdleConnections()
	hdr := http.Header{}
	hdr.Set(protocol.HeaderDomain, domain)
	hdr.Set(protocol.HeaderStream, stream)
	c, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(c, "wss://"+n.addr+protocol.FederationPath, &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: tr}, HTTPHeader: hdr, Subprotocols: []string{protocol.FederationSubprotocol}})
	if err == nil {
		ws.SetReadLimit(protocol.MaxLinkMessage)
	}
	return ws, err
}

func writeFrames(t testing.TB, ws *websocket.Conn, fs ...protocol.LinkFrame) {
	t.Helper()
	var msg []byte
	for _, f := range fs {
		var err error
		if msg, err = protocol.AppendLink(msg, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := ws.Write(ctx, websocket.MessageBinary, msg); err != nil {
		t.Fatal(err)
	}
}

// readFrame reads the next link frame, or returns the close status.
func readFrame(t testing.TB, ws *websocket.Conn) (protocol.LinkFrame, websocket.StatusCode) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	typ, msg, err := ws.Read(c)
	if err != nil {
		code := websocket.CloseStatus(err)
		if code == -1 {
			t.Fatalf("read: %v", err)
		}
		return nil, code
	}
	if typ != websocket.MessageBinary {
		t.Fatalf("text message %q", msg)
	}
	f, err := protocol.DecodeLink(msg)
	if err != nil {
		t.Fatalf("decode %x: %v", msg, err)
	}
	return f, 0
}

var errDeadline = context.DeadlineExceeded

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}
