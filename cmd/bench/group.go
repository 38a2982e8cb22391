package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mimids/mimids/client"
	"github.com/mimids/mimids/cmd/internal/usage"
	"github.com/mimids/mimids/mls"
)

// groupBenchOptions are the flags of `mimids bench-group`.
type groupBenchOptions struct {
	benchCommon
	Phases         []string
	Duration       time.Duration // of each phase
	Senders        int
	InFlight       int // requests in flight per sender socket
	Groups         int
	Subscribers    int
	FanoutSenders  int
	FanoutInFlight int // fanout messages sent but not yet delivered to every subscriber
	Rate           float64
	Size           int
	Suite          int
	MaxMessages    int // per phase
	DrainTimeout   time.Duration
	Settle         time.Duration // push phases: how long after the last push the server's RSS is read again
	CPUProfile     string
}

// The phases of `mimids bench-group`, in the order they run.
const (
	phaseSequence = "sequence" // one group, closed loop
	phaseGroups   = "groups"   // many groups, closed loop
	phaseFanout   = "fanout"   // one group, many subscribers, closed loop on delivery
	phaseLatency  = "latency"  // one group, many subscribers, open loop
)

var allGroupPhases = []string{phaseSequence, phaseGroups, phaseFanout, phaseLatency}

// Limits that keep every group bench loop bounded.
const (
	groupBenchMaxGroups      = 100_000
	groupBenchMaxMessages    = 10_000_000
	groupBenchMaxSize        = 64 << 10
	groupBenchServerInFlight = 16 // the server's default gateway.max_inflight_requests
)

var groupBenchHelp = usage.Help{Name: "bench-group",
	Summary: "Load-tests the hub of a running server on this machine: messages sequenced per second, pushes per second, send-to-push latency.",
	Example: "bench-group -admin-token mat_... -senders 16 -subscribers 1000 -duration 10s",
	Details: `It creates its own users through the admin API (named bench-<run>-send-... and
bench-<run>-sub-..., removed at the end unless -keep), creates real MLS groups
of them through the client socket, and measures application messages sequenced
per second (into one group, then across many), pushes delivered per second to
the subscribers of one group, and send-to-push latency at a fixed rate. Start
the server with {"hub": {"rate_per_second": -1}} in its -config file: the
per-user rate limit (50 messages/s by default) otherwise caps the figures.`,
}

func parseGroupBenchFlags(args []string, stdout, stderr io.Writer) (groupBenchOptions, error) {
	var o groupBenchOptions
	fs := flag.NewFlagSet("bench-group", flag.ContinueOnError)
	phases := strings.Join(allGroupPhases, ",")
	o.register(fs, "socket handshakes and subscriptions in parallel")
	fs.StringVar(&phases, "phases", phases, "comma-separated `phases` to run: sequence, groups, fanout, latency")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "length of each phase")
	fs.IntVar(&o.Senders, "senders", 16, "sender sockets (one user each) for the sequencing phases")
	fs.IntVar(&o.InFlight, "inflight", 16, "requests in flight per sender socket (closed loop)")
	fs.IntVar(&o.Groups, "groups", 1000, "groups of the many-groups phase")
	fs.IntVar(&o.Subscribers, "subscribers", 1000, "subscriber sockets (one user each) of the fanout and latency phases")
	fs.IntVar(&o.FanoutSenders, "fanout-senders", 4, "sender sockets of the fanout phase")
	fs.IntVar(&o.FanoutInFlight, "fanout-inflight", 0, "fanout phase: messages sent but not yet pushed to every subscriber (0: no bound, only the send answers pace the senders)")
	fs.Float64Var(&o.Rate, "rate", 100, "latency phase: messages per second (open loop, from the senders in turn)")
	fs.IntVar(&o.Size, "size", 128, "ciphertext bytes per message (at least 28: send time and sequence)")
	fs.IntVar(&o.Suite, "suite", 1, "MLS cipher suite of the groups (1-7)")
	fs.IntVar(&o.MaxMessages, "max-messages", 1_000_000, "stop a phase after this many messages")
	fs.DurationVar(&o.DrainTimeout, "drain-timeout", 30*time.Second, "wait this long after a phase for pushes still on their way")
	fs.DurationVar(&o.Settle, "settle", 3*time.Second, "fanout and latency phases: read the server's RSS again this long after the last push (0: not at all)")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write the bench's own CPU profile to `file` (to see what the load generator costs)")
	if err := usage.Parse(fs, groupBenchHelp, args, stdout, stderr); err != nil {
		return o, err
	}
	if err := usage.Args(fs, groupBenchHelp, 0, 0, stderr); err != nil {
		return o, err
	}
	for p := range strings.SplitSeq(phases, ",") {
		if p = strings.TrimSpace(p); p != "" && !slices.Contains(o.Phases, p) {
			o.Phases = append(o.Phases, p)
		}
	}
	if err := o.validate(); err != nil {
		fmt.Fprintf(stderr, "mimids bench-group: %v\n", err)
		return o, err
	}
	return o, nil
}

// validate reports every bad flag at once.
func (o groupBenchOptions) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	o.benchCommon.validate(o.sockets(), fmt.Sprintf("%d sockets exceed", o.sockets()), bad)
	if len(o.Phases) == 0 {
		bad("-phases is empty")
	}
	for _, p := range o.Phases {
		if !slices.Contains(allGroupPhases, p) {
			bad("-phases: unknown phase %q (want %s)", p, strings.Join(allGroupPhases, ", "))
		}
	}
	if o.Settle < 0 || o.Settle > time.Minute {
		bad("-settle %v: want [0, 1m]", o.Settle)
	}
	if o.Duration <= 0 || o.Duration > benchMaxDuration {
		bad("-duration %v: want (0, %v]", o.Duration, benchMaxDuration)
	}
	if o.Timeout > 0 && o.Duration*time.Duration(max(len(o.Phases), 1)) >= o.Timeout {
		bad("-duration %v for %d phases must fit in -timeout %v", o.Duration, len(o.Phases), o.Timeout)
	}
	if o.Senders < 1 || o.Senders > 1024 {
		bad("-senders %d: want 1..1024", o.Senders)
	}
	if o.InFlight < 1 || o.InFlight > 1024 {
		bad("-inflight %d: want 1..1024", o.InFlight)
	}
	if o.Groups < 1 || o.Groups > groupBenchMaxGroups {
		bad("-groups %d: want 1..%d", o.Groups, groupBenchMaxGroups)
	}
	if o.Subscribers < 1 || o.Subscribers > benchMaxClients {
		bad("-subscribers %d: want 1..%d", o.Subscribers, benchMaxClients)
	}
	if o.FanoutSenders < 1 || (o.FanoutSenders > o.Senders && o.has(phaseFanout)) {
		bad("-fanout-senders %d: want 1..-senders (%d)", o.FanoutSenders, o.Senders)
	}
	if o.FanoutInFlight < 0 || o.FanoutInFlight > 100_000 {
		bad("-fanout-inflight %d: want 0..100000", o.FanoutInFlight)
	}
	if o.Rate <= 0 || o.Rate > 100_000 {
		bad("-rate %v: want (0, 100000]", o.Rate)
	}
	if o.Size < stampSize || o.Size > groupBenchMaxSize {
		bad("-size %d: want %d..%d", o.Size, stampSize, groupBenchMaxSize)
	}
	if !mls.CipherSuite(o.Suite).Supported() {
		bad("-suite %d: want 1..7", o.Suite)
	}
	if o.MaxMessages < 1 || o.MaxMessages > groupBenchMaxMessages {
		bad("-max-messages %d: want 1..%d", o.MaxMessages, groupBenchMaxMessages)
	}
	if o.DrainTimeout <= 0 {
		bad("-drain-timeout %v: want > 0", o.DrainTimeout)
	}
	return errors.Join(errs...)
}

func (o groupBenchOptions) has(phase string) bool { return slices.Contains(o.Phases, phase) }

// pushPhases reports whether a phase needs subscribers.
func (o groupBenchOptions) pushPhases() bool { return o.has(phaseFanout) || o.has(phaseLatency) }

// sockets is how many sockets the run opens.
func (o groupBenchOptions) sockets() int {
	if o.pushPhases() {
		return o.Senders + o.Subscribers
	}
	return o.Senders
}

// benchGroupCommand runs `mimids bench-group`.
func benchGroupCommand(args []string, stdout, stderr io.Writer) int {
	o, err := parseGroupBenchFlags(args, stdout, stderr)
	if err != nil {
		return usage.Code(err) // parseGroupBenchFlags printed the help or the problem
	}
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			fmt.Fprintf(stderr, "mimids bench-group: %v\n", err)
			return 1
		}
		pprof.StartCPUProfile(f)
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	context.AfterFunc(ctx, stop) // the first signal starts the cleanup; a second one ends the process
	res, err := runGroupBench(ctx, o, stderr)
	return finishBench("bench-group", res, res != nil, o.JSON, err, stdout, stderr)
}

// groupBenchResult is the report of one run.
type groupBenchResult struct {
	URL                  string        `json:"url"`
	Run                  string        `json:"run"`
	FDLimit              uint64        `json:"fd_limit"`
	CipherSuite          int           `json:"cipher_suite"`
	CiphertextBytes      int           `json:"ciphertext_bytes"`
	Senders              int           `json:"senders"`
	Subscribers          int           `json:"subscribers"`
	SendersConnected     int           `json:"senders_connected"`
	SubscribersConnected int           `json:"subscribers_connected"`
	CreateSeconds        float64       `json:"create_seconds"`
	ConnectSeconds       float64       `json:"connect_seconds"`
	Sequence             *seqResult    `json:"sequence,omitempty"`
	Groups               *seqResult    `json:"groups,omitempty"`
	Fanout               *fanoutResult `json:"fanout,omitempty"`
	Latency              *fanoutResult `json:"latency,omitempty"`
	RateLimited          int64         `json:"rate_limited"`
	ErrorCount           int           `json:"error_count"`
	Errors               []string      `json:"errors"`
}

// groupBench is one run's state.
type groupBench struct {
	*bench                   // admin API, client creation, error log and cleanup
	o      groupBenchOptions // Static.
	suite  mls.CipherSuite   // Static.
	runTag [4]byte           // Static: marks this run's messages.

	rateLimited atomic.Int64
}

func runGroupBench(ctx context.Context, o groupBenchOptions, logw io.Writer) (*groupBenchResult, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	b := newBench(benchOptions{benchCommon: o.benchCommon}, logw)
	b.name = "bench-group"
	gb := &groupBench{bench: b, o: o, suite: mls.CipherSuite(o.Suite)}
	copy(gb.runTag[:], b.run)
	res := &groupBenchResult{URL: o.URL, Run: b.run, CipherSuite: o.Suite, CiphertextBytes: o.Size, Senders: o.Senders}
	defer b.cleanup(ctx)
	defer func() {
		res.ErrorCount, res.Errors = b.errorReport()
		res.RateLimited = gb.rateLimited.Load()
	}()

	limit, err := raiseFDLimit()
	if err != nil {
		b.log.Warn("bench-group: could not raise the fd limit", "err", err)
	}
	res.FDLimit = limit
	if need := uint64(o.sockets() + fdReserve); limit > 0 && limit < need {
		return res, fmt.Errorf("%d sockets need about %d file descriptors; the limit is %d (raise the hard limit)", o.sockets(), need, limit)
	}
	gb.announce()
	senders, subs, err := gb.setup(ctx, res)
	if err != nil {
		return res, err
	}
	return res, gb.phases(ctx, res, senders, subs)
}

// setup creates and connects the senders and, for the push phases, the
// subscribers.
func (gb *groupBench) setup(ctx context.Context, res *groupBenchResult) ([]*client.Client, []*subscriber, error) {
	o := gb.o
	start := time.Now()
	senderCreds, err := gb.createClients(ctx, sendKind, o.Senders)
	if err != nil {
		return nil, nil, err
	}
	var subCreds []createdClient
	if o.pushPhases() {
		res.Subscribers = o.Subscribers
		if subCreds, err = gb.createClients(ctx, subKind, o.Subscribers); err != nil {
			return nil, nil, err
		}
	}
	res.CreateSeconds = seconds(time.Since(start))
	gb.log.Info("bench-group: clients created", "senders", len(senderCreds), "subscribers", len(subCreds), "seconds", res.CreateSeconds)
	start = time.Now()
	senders := gb.dialSenders(ctx, senderCreds)
	subs := gb.dialSubscribers(ctx, subCreds)
	res.ConnectSeconds = seconds(time.Since(start))
	res.SendersConnected, res.SubscribersConnected = len(senders), len(subs)
	switch {
	case len(senders) < o.Senders:
		return nil, nil, fmt.Errorf("only %d of %d sender sockets connected", len(senders), o.Senders)
	case o.pushPhases() && len(subs) == 0:
		return nil, nil, errors.New("no subscriber socket could be connected")
	}
	gb.log.Info("bench-group: sockets connected", "senders", len(senders), "subscribers", len(subs), "seconds", res.ConnectSeconds)
	return senders, subs, ctx.Err()
}

// phases runs the selected phases in order; a phase that cannot start (its
// groups cannot be created) ends the run.
func (gb *groupBench) phases(ctx context.Context, res *groupBenchResult, senders []*client.Client, subs []*subscriber) error {
	o := gb.o
	var err error
	if o.has(phaseSequence) {
		if res.Sequence, err = gb.sequencePhase(ctx, senders, 1); err != nil {
			return fmt.Errorf("sequence phase: %w", err)
		}
	}
	if o.has(phaseGroups) && ctx.Err() == nil {
		if res.Groups, err = gb.sequencePhase(ctx, senders, o.Groups); err != nil {
			return fmt.Errorf("groups phase: %w", err)
		}
	}
	var verr []error
	if o.has(phaseFanout) && ctx.Err() == nil {
		if res.Fanout, err = gb.pushPhase(ctx, senders[:min(o.FanoutSenders, len(senders))], subs, false); err != nil {
			return fmt.Errorf("fanout phase: %w", err)
		}
		verr = append(verr, res.Fanout.verdict("fanout"))
	}
	if o.has(phaseLatency) && ctx.Err() == nil {
		if res.Latency, err = gb.pushPhase(ctx, senders, subs, true); err != nil {
			return fmt.Errorf("latency phase: %w", err)
		}
		verr = append(verr, res.Latency.verdict("latency"))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(verr...)
}

// print writes the human summary.
func (r *groupBenchResult) print(w io.Writer) {
	fmt.Fprintf(w, "mimids bench-group against %s (run %s, fd limit %d, suite %d, %d-byte ciphertexts)\n",
		r.URL, r.Run, r.FDLimit, r.CipherSuite, r.CiphertextBytes)
	fmt.Fprintf(w, "setup: clients created in %.1fs; %d/%d senders and %d/%d subscribers connected in %.1fs\n",
		r.CreateSeconds, r.SendersConnected, r.Senders, r.SubscribersConnected, r.Subscribers, r.ConnectSeconds)
	if s := r.Sequence; s != nil {
		s.print(w, "sequencing into one group")
	}
	if s := r.Groups; s != nil {
		s.print(w, fmt.Sprintf("sequencing across %d groups", s.Groups))
	}
	if f := r.Fanout; f != nil {
		f.print(w)
	}
	if f := r.Latency; f != nil {
		f.print(w)
	}
	if r.RateLimited > 0 {
		fmt.Fprintf(w, "the server refused %d requests with rate_limited: the figures are capped by hub.rate_per_second;\n"+
			"  start it with {\"hub\": {\"rate_per_second\": -1}} in its -config file for measurements\n", r.RateLimited)
	}
	fmt.Fprintf(w, "errors: %d\n", r.ErrorCount)
	for _, e := range r.Errors {
		fmt.Fprintf(w, "  %s\n", e)
	}
	if r.ErrorCount > len(r.Errors) {
		fmt.Fprintf(w, "  ... and %d more\n", r.ErrorCount-len(r.Errors))
	}
}
