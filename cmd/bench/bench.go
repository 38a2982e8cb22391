package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/internal/usage"
)

// benchOptions are the flags of `mimids bench`.
type benchOptions struct {
	benchCommon
	Clients       int
	Duration      time.Duration
	Rate          float64 // notices per second; 0: closed loop
	InFlight      int
	Idle          int
	NoticeTimeout time.Duration
}

// benchCommon are the flags both load generators take.
type benchCommon struct {
	URL             string
	AdminToken      string
	MaxConns        int
	Concurrency     int
	DialConcurrency int
	Timeout         time.Duration
	Keep            bool
	JSON            bool
	Verbose         bool
}

// register adds the common flags to fs.
func (c *benchCommon) register(fs *flag.FlagSet, dialHelp string) {
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8080", "base `URL` of the server (loopback only), or the comma-separated URLs of one provider's nodes: sockets go to them in turn, admin calls to the first")
	fs.StringVar(&c.AdminToken, "admin-token", os.Getenv("MIMIDS_ADMIN_TOKEN"), "admin bearer `token` (default $MIMIDS_ADMIN_TOKEN)")
	fs.IntVar(&c.MaxConns, "max-conns", 16384, "refuse to open more sockets than this")
	fs.IntVar(&c.Concurrency, "concurrency", 16, "admin API calls in parallel")
	// The server answers 429 to more sockets authenticating at once from one address
	// than gateway.max_unauthenticated_per_address (default 256) allows.
	fs.IntVar(&c.DialConcurrency, "dial-concurrency", 64, dialHelp+" (the server's gateway.max_unauthenticated_per_address, default 256, bounds it)")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Minute, "hard cap on the whole run")
	fs.BoolVar(&c.Keep, "keep", false, "keep the bench users instead of removing them at the end")
	fs.BoolVar(&c.JSON, "json", false, "print the result as one JSON object")
	fs.BoolVar(&c.Verbose, "v", false, "log progress and connection events to stderr")
}

// validate reports the problems of the common flags; sockets is how many sockets
// the run opens, described by what (e.g. "%d sockets exceed").
func (c benchCommon) validate(sockets int, what string, bad func(format string, args ...any)) {
	if _, err := checkLoopbackURLs(c.URL); err != nil {
		bad("%v", err)
	}
	if c.AdminToken == "" {
		bad("-admin-token is required (or set MIMIDS_ADMIN_TOKEN)")
	}
	if c.Timeout <= 0 || c.Timeout > time.Hour {
		bad("-timeout %v: want (0, 1h]", c.Timeout)
	}
	if c.MaxConns < 1 {
		bad("-max-conns %d: want at least 1", c.MaxConns)
	} else if sockets > c.MaxConns {
		bad("%s -max-conns %d", what, c.MaxConns)
	}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		bad("-concurrency %d: want 1..256", c.Concurrency)
	}
	if c.DialConcurrency < 1 || c.DialConcurrency > 1024 {
		bad("-dial-concurrency %d: want 1..1024", c.DialConcurrency)
	}
}

// Limits that keep every bench loop bounded.
const (
	benchMaxClients  = 100_000
	benchMaxDuration = 10 * time.Minute
	benchMaxNotices  = 1_000_000
	benchMaxErrors   = 20 // error messages kept for the report (all are counted)
	fdReserve        = 256
)

var benchHelp = usage.Help{Name: "bench",
	Summary: "Load-tests the mailbox path of a running server on this machine: durable notice deliveries per second, latency, memory per idle socket.",
	Example: "bench -admin-token mat_... -clients 1000 -duration 10s -idle 10000",
	Details: `It creates its own users through the admin API: bench-<run>-mail with -clients
clients and, for -idle, bench-<run>-idle; they are removed at the end (also after
a failure or Ctrl-C) unless -keep. It posts notices to bench-<run>-mail only, so
no other user's mailbox grows. Each socket is its own client; more than the server's
gateway.max_sockets_per_user (default 16384) sockets for one user need it raised.`,
}

func parseBenchFlags(args []string, stdout, stderr io.Writer) (benchOptions, error) {
	var o benchOptions
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	o.register(fs, "socket handshakes in parallel")
	fs.IntVar(&o.Clients, "clients", 1000, "clients connected during the throughput phase")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "length of the throughput phase (0 skips it)")
	fs.Float64Var(&o.Rate, "notices-per-second", 0, "open loop: post notices at this rate (0: closed loop)")
	fs.IntVar(&o.InFlight, "inflight", 16, "notices in flight (closed loop: always; open loop: at most)")
	fs.IntVar(&o.Idle, "idle", 0, "extra idle sockets for the memory phase (0 skips it)")
	fs.DurationVar(&o.NoticeTimeout, "notice-timeout", 30*time.Second, "give up on a notice not delivered to every client after this")
	if err := usage.Parse(fs, benchHelp, args, stdout, stderr); err != nil {
		return o, err
	}
	if err := usage.Args(fs, benchHelp, 0, 0, stderr); err != nil {
		return o, err
	}
	if err := o.validate(); err != nil {
		fmt.Fprintf(stderr, "mimids bench: %v\n", err)
		return o, err
	}
	return o, nil
}

// validate reports every bad flag at once.
func (o benchOptions) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	o.benchCommon.validate(o.Clients+o.Idle, fmt.Sprintf("-clients %d + -idle %d = %d sockets exceeds",
		o.Clients, o.Idle, o.Clients+o.Idle), bad)
	if o.Clients < 1 || o.Clients > benchMaxClients {
		bad("-clients %d: want 1..%d", o.Clients, benchMaxClients)
	}
	if o.Idle < 0 || o.Idle > benchMaxClients {
		bad("-idle %d: want 0..%d", o.Idle, benchMaxClients)
	}
	if o.Duration < 0 || o.Duration > benchMaxDuration {
		bad("-duration %v: want 0..%v", o.Duration, benchMaxDuration)
	}
	if o.Timeout > 0 && o.Duration >= o.Timeout {
		bad("-duration %v must be shorter than -timeout %v", o.Duration, o.Timeout)
	}
	if o.Rate < 0 || o.Rate > 100_000 {
		bad("-notices-per-second %v: want 0..100000", o.Rate)
	}
	if o.InFlight < 1 || o.InFlight > 1024 {
		bad("-inflight %d: want 1..1024", o.InFlight)
	}
	if o.NoticeTimeout <= 0 {
		bad("-notice-timeout %v: want > 0", o.NoticeTimeout)
	}
	return errors.Join(errs...)
}

// benchCommand runs `mimids bench`.
func benchCommand(args []string, stdout, stderr io.Writer) int {
	o, err := parseBenchFlags(args, stdout, stderr)
	if err != nil {
		return usage.Code(err) // parseBenchFlags printed the help or the problem
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // the first signal starts the cleanup; a second one ends the process
	res, err := runBench(ctx, o, stderr)
	return finishBench("bench", res, res != nil, o.JSON, err, stdout, stderr)
}

// newBench sets up what both load generators share: the admin API client, the
// socket URL, the run id and the log. o must have been validated.
func newBench(o benchOptions, logw io.Writer) *bench {
	bases, _ := checkLoopbackURLs(o.URL)
	var sockets []string
	for _, u := range bases {
		sockets = append(sockets, socketURL(u))
	}
	level := slog.LevelWarn
	if o.Verbose {
		level = slog.LevelInfo
	}
	return &bench{
		o: o, api: newAdminAPI(bases[0], o.AdminToken, o.Concurrency), wsURLs: sockets, run: randomRunID(),
		log:  slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: level})),
		note: logw, name: "bench", users: make(map[string]bool),
	}
}

// benchReport is a bench's result.
type benchReport interface{ print(w io.Writer) }

// finishBench prints a result, as JSON or text, then the error; it returns the exit
// code.
func finishBench(name string, res benchReport, haveResult, asJSON bool, err error, stdout, stderr io.Writer) int {
	if haveResult {
		if asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			enc.Encode(res)
		} else {
			res.print(stdout)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "mimids %s: %v\n", name, err)
		return 1
	}
	return 0
}

// benchResult is the report of one run.
type benchResult struct {
	URL            string            `json:"url"`
	Run            string            `json:"run"`
	Clients        int               `json:"clients"`
	Connected      int               `json:"connected"`
	FDLimit        uint64            `json:"fd_limit"`
	CreateSeconds  float64           `json:"create_seconds"`
	ConnectSeconds float64           `json:"connect_seconds"`
	Throughput     *throughputResult `json:"throughput,omitempty"`
	Idle           *idleResult       `json:"idle,omitempty"`
	ErrorCount     int               `json:"error_count"`
	Errors         []string          `json:"errors"`
}

// bench is one run's state.
type bench struct {
	o      benchOptions  // Static.
	api    *adminAPI     // Static.
	wsURLs []string      // Static: the nodes' socket URLs, taken in turn (nextSocket).
	dialed atomic.Uint64 // sockets dialed, for the turn
	run    string        // Static: names this run's users and notices.
	log    *slog.Logger  // Static.
	note   io.Writer     // Static: where the run says what it creates and removes.
	name   string        // Static: the verb ("bench", "bench-group"), for messages.

	lat, post histogram    // Safe for concurrent use.
	received  atomic.Int64 // deliveries of this run's notices
	foreign   atomic.Int64 // deliveries that are not this run's notices
	tracker   tracker

	mu       sync.Mutex // guards the fields below
	errCount int
	errs     []string
	users    map[string]bool // users this run asked for, removed at the end
	clients  []*benchConn    // every open client

	mailUser string // Owned by runBench: URI of the user whose clients get the notices.
}

func runBench(ctx context.Context, o benchOptions, logw io.Writer) (*benchResult, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	b := newBench(o, logw)
	b.tracker.pending = make(map[uint64]*noticeState)
	res := &benchResult{URL: o.URL, Run: b.run, Clients: o.Clients}
	defer b.cleanup(ctx)
	defer func() { res.ErrorCount, res.Errors = b.errorReport() }()

	limit, err := raiseFDLimit()
	if err != nil {
		b.log.Warn("bench: could not raise the fd limit", "err", err)
	}
	res.FDLimit = limit
	if need := uint64(o.Clients + o.Idle + fdReserve); limit > 0 && limit < need {
		return res, fmt.Errorf("%d sockets need about %d file descriptors; the limit is %d (raise the hard limit)", o.Clients+o.Idle, need, limit)
	}

	b.announce(o)
	start := time.Now()
	creds, err := b.createDevices(ctx, mailRole, o.Clients)
	res.CreateSeconds = seconds(time.Since(start))
	if err != nil {
		return res, err
	}
	b.mailUser = creds[0].UserID
	b.log.Info("bench: clients created", "n", len(creds), "seconds", res.CreateSeconds)
	start = time.Now()
	conns := b.connect(ctx, creds, b.handler)
	res.ConnectSeconds, res.Connected = seconds(time.Since(start)), len(conns)
	if len(conns) == 0 {
		return res, errors.New("no socket could be connected")
	}
	b.log.Info("bench: sockets connected", "n", len(conns), "seconds", res.ConnectSeconds)
	if o.Duration > 0 {
		res.Throughput = b.throughput(ctx, conns)
	}
	if o.Idle > 0 && ctx.Err() == nil {
		if res.Idle, err = b.idlePhase(ctx); err != nil {
			return res, fmt.Errorf("idle phase: %w", err)
		}
	}
	return res, ctx.Err()
}

func randomRunID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func seconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

// fail records a non-fatal error for the report.
func (b *bench) fail(op string, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.errCount++
	if len(b.errs) < benchMaxErrors {
		b.errs = append(b.errs, op+": "+err.Error())
	}
}

func (b *bench) errorReport() (int, []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.errCount, append([]string{}, b.errs...)
}

// forEach calls fn(i) for i in [0, n), at most k at a time, and stops starting new
// calls once ctx is done.
func forEach(ctx context.Context, n, k int, fn func(i int)) {
	sem := make(chan struct{}, k)
	var wg sync.WaitGroup
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			fn(i)
		})
	}
	wg.Wait()
}

// benchConn is one bench socket.
type benchConn struct {
	c        *client.Client
	received atomic.Int64 // this run's notices handled
}

// connect opens one authenticated socket per credential. handler makes each
// socket's delivery handler; nil makes idle sockets that consume nothing.
func (b *bench) connect(ctx context.Context, creds []createdClient, handler func(*benchConn) client.Handler) []*benchConn {
	out := make([]*benchConn, len(creds))
	forEach(ctx, len(creds), b.o.DialConcurrency, func(i int) {
		bc := &benchConn{}
		var h client.Handler
		if handler != nil {
			h = handler(bc)
		}
		cfg := client.Config{
			URL: b.nextSocket(), Token: creds[i].Token, Handler: h,
			HandshakeTimeout: 30 * time.Second, PingInterval: -1,
			SendQueueLen: 16, DeliveryQueueLen: 256, MaxReconnectAttempts: 5,
			MinBackoff: 50 * time.Millisecond, MaxBackoff: 2 * time.Second,
			Logger: b.log,
		}
		if h == nil {
			cfg.DeliveryQueueLen = 1
		}
		dctx, cancel := context.WithTimeout(ctx, cfg.HandshakeTimeout)
		defer cancel()
		c, err := client.Dial(dctx, cfg)
		if err != nil {
			b.fail("connect", err)
			return
		}
		bc.c = c
		out[i] = bc
	})
	var conns []*benchConn
	for _, c := range out {
		if c != nil {
			conns = append(conns, c)
		}
	}
	b.mu.Lock()
	b.clients = append(b.clients, conns...)
	b.mu.Unlock()
	return conns
}

// print writes the human summary.
func (r *benchResult) print(w io.Writer) {
	fmt.Fprintf(w, "mimids bench against %s (run %s, fd limit %d)\n", r.URL, r.Run, r.FDLimit)
	fmt.Fprintf(w, "setup: %d clients created in %.1fs; %d/%d sockets connected in %.1fs\n",
		r.Clients, r.CreateSeconds, r.Connected, r.Clients, r.ConnectSeconds)
	if t := r.Throughput; t != nil {
		t.print(w)
	}
	if i := r.Idle; i != nil {
		i.print(w)
	}
	fmt.Fprintf(w, "errors: %d\n", r.ErrorCount)
	for _, e := range r.Errors {
		fmt.Fprintf(w, "  %s\n", e)
	}
	if r.ErrorCount > len(r.Errors) {
		fmt.Fprintf(w, "  ... and %d more\n", r.ErrorCount-len(r.Errors))
	}
}
