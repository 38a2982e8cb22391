package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/mls/mlstest"
	"github.com/mimids/mimids/protocol"
)

func TestParseGroupBenchFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string // substrings of the error; nil: valid
	}{
		{"defaults", []string{"-admin-token", "mat_x"}, nil},
		{"some phases", []string{"-admin-token", "t", "-phases", "latency, fanout,latency", "-subscribers", "10"}, nil},
		{"remote host", []string{"-admin-token", "t", "-url", "http://10.1.2.3:8080"}, []string{"loopback"}},
		{"nodes", []string{"-admin-token", "t", "-url", "http://127.0.0.1:8081, http://127.0.0.1:8082,http://localhost:8083"}, nil},
		{"a remote node", []string{"-admin-token", "t", "-url", "http://127.0.0.1:8081,http://10.1.2.3:8080"}, []string{"loopback"}},
		{"an empty node", []string{"-admin-token", "t", "-url", "http://127.0.0.1:8081,"}, []string{"scheme"}},
		{"everything wrong", []string{"-admin-token", "", "-phases", "sequence,nope", "-duration", "0s", "-senders", "0",
			"-inflight", "0", "-groups", "0", "-subscribers", "0", "-rate", "0", "-size", "10", "-suite", "9",
			"-max-messages", "0", "-drain-timeout", "0s", "-concurrency", "0", "-dial-concurrency", "0", "-fanout-inflight", "-1", "-settle", "-1s"},
			[]string{"-admin-token is required", `unknown phase "nope"`, "-duration 0s", "-senders 0", "-inflight 0",
				"-groups 0", "-subscribers 0", "-rate 0", "-size 10", "-suite 9", "-max-messages 0", "-drain-timeout",
				"-concurrency 0", "-dial-concurrency 0", "-fanout-inflight -1", "-settle -1s"}},
		{"no phase", []string{"-admin-token", "t", "-phases", " , "}, []string{"-phases is empty"}},
		{"fanout senders over senders", []string{"-admin-token", "t", "-senders", "2", "-fanout-senders", "3"}, []string{"-fanout-senders 3"}},
		{"too many sockets", []string{"-admin-token", "t", "-subscribers", "20000"}, []string{"exceed -max-conns 16384"}},
		{"unbounded fanout", []string{"-admin-token", "t", "-fanout-inflight", "0", "-fanout-senders", "4"}, nil},
		{"subscribers not needed", []string{"-admin-token", "t", "-phases", "sequence", "-subscribers", "20000"}, nil},
		{"phases over timeout", []string{"-admin-token", "t", "-duration", "1m", "-timeout", "3m"}, []string{"must fit in -timeout"}},
		{"stray argument", []string{"-admin-token", "t", "extra"}, []string{"unexpected arguments"}},
		{"unknown flag", []string{"-nope"}, []string{"not defined"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("MIMIDS_ADMIN_TOKEN", "")
			o, err := parseGroupBenchFlags(tc.args, io.Discard, io.Discard)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("parseGroupBenchFlags(%q) = %v", tc.args, err)
				}
				if len(o.Phases) == 0 || o.Duration != 10*time.Second || o.Rate != 100 || o.Suite != 1 {
					t.Errorf("options %+v", o)
				}
				return
			}
			if err == nil {
				t.Fatalf("parseGroupBenchFlags(%q) accepted", tc.args)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	o, err := parseGroupBenchFlags([]string{"-admin-token", "t", "-phases", "latency, fanout,latency"}, io.Discard, io.Discard)
	if err != nil || strings.Join(o.Phases, ",") != "latency,fanout" || o.has(phaseSequence) || !o.pushPhases() {
		t.Errorf("phases %q, %v", o.Phases, err)
	}
	if _, err := parseGroupBenchFlags([]string{"-help"}, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-help: %v", err)
	}
}

// TestNextSocketTakesTurns: with several -url nodes, sockets go to each in turn
// and admin calls to the first.
func TestNextSocketTakesTurns(t *testing.T) {
	b := newBench(benchOptions{benchCommon: benchCommon{URL: "http://127.0.0.1:1,http://127.0.0.1:2/x,http://127.0.0.1:3", Concurrency: 1}}, io.Discard)
	var got []string
	for range 4 {
		got = append(got, b.nextSocket())
	}
	want := "http://127.0.0.1:1/v1/socket http://127.0.0.1:2/x/v1/socket http://127.0.0.1:3/v1/socket http://127.0.0.1:1/v1/socket"
	if strings.Join(got, " ") != want || b.api.base.Host != "127.0.0.1:1" {
		t.Fatalf("sockets %q, admin %s", got, b.api.base)
	}
}

func TestBenchGroupCommandExitCodes(t *testing.T) {
	checkBenchExitCodes(t, benchGroupCommand, "rate_per_second", "-timeout", "1m")
}

func TestStamp(t *testing.T) {
	run := [4]byte{'a', 'b', '1', '2'}
	sent := time.Unix(1700000000, 123456789)
	ct := bytes.Repeat([]byte{0xEE}, 100)
	putStamp(ct, run, 7, 1<<40+3, sent)
	g, err := mlstest.NewGroup(mlstest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := g.Application(ct)
	if err != nil {
		t.Fatal(err)
	}
	// The stamp is found at the end of the encoded message, as pushed.
	sender, seq, got, ok := parseStamp(msg, run)
	if !ok || sender != 7 || seq != 1<<40+3 || !got.Equal(sent) {
		t.Fatalf("parseStamp = %d, %d, %v, %v", sender, seq, got, ok)
	}
	for name, bad := range map[string][]byte{
		"short":     msg[len(msg)-stampSize+1:],
		"other run": append(append([]byte{}, msg[:len(msg)-stampSize+4]...), 'z', 'z', 'z', 'z', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
		"no stamp":  bytes.Repeat([]byte{1}, 64),
	} {
		if _, _, _, ok := parseStamp(bad, run); ok {
			t.Errorf("%s: parseStamp accepted", name)
		}
	}
}

func TestPartitionTracker(t *testing.T) {
	run := [4]byte{'r', 'u', 'n', '1'}
	tr := &partitionTracker{group: &benchGroup{masked: []byte("m")}, run: run,
		arrivals: make([]atomic.Int32, 4), slots: make(chan struct{}, 2)}
	tr.subs.Store(2)
	tr.slots <- struct{}{}
	tr.slots <- struct{}{}
	ct := make([]byte, stampSize)
	putStamp(ct, run, 0, 1, time.Now())
	a, b := &subscription{t: tr}, &subscription{t: tr}
	push := func(s *subscription, c uint32, msg []byte) {
		s.push(&protocol.Push{Masked: []byte("m"), Counter: c, Message: msg}, time.Now())
	}
	push(a, 0, ct)
	if tr.complete.Load() != 0 || len(tr.slots) != 2 {
		t.Fatal("complete after one of two subscribers")
	}
	push(b, 0, ct)
	if tr.complete.Load() != 1 || len(tr.slots) != 1 {
		t.Fatalf("complete %d, slots %d", tr.complete.Load(), len(tr.slots))
	}
	push(a, 0, ct)          // duplicate
	push(a, 2, []byte("x")) // gap, no stamp
	push(a, 9, ct)          // beyond the tracker
	if a.dups.Load() != 1 || a.gaps.Load() != 2 || a.next.Load() != 10 || a.received.Load() != 3 {
		t.Errorf("dups %d gaps %d next %d received %d", a.dups.Load(), a.gaps.Load(), a.next.Load(), a.received.Load())
	}
	if tr.foreign.Load() != 1 || tr.overflow.Load() != 1 || tr.lat.Count() != 3 {
		t.Errorf("foreign %d overflow %d latencies %d", tr.foreign.Load(), tr.overflow.Load(), tr.lat.Count())
	}
	res := &fanoutResult{}
	subs := []*subscriber{{}, {}}
	subs[0].parts.Store(&[]*subscription{a})
	subs[1].parts.Store(&[]*subscription{b})
	(&groupBench{}).tally(res, tr, subs, 1)
	if res.LogLength != 10 || res.DeliveriesExpected != 20 || res.DeliveriesReceived != 4 || res.SubscribersComplete != 0 {
		t.Errorf("tally %+v", res)
	}
	if err := res.verdict("x"); err == nil {
		t.Error("verdict accepted an incomplete run")
	}
}

// noRateLimit disables the hub's per-user rate limit, as the bench's
// documentation asks for measurements.
func noRateLimit(c *provider.Config) { c.Hub.RatePerSecond = -1 }

// TestBenchGroupAgainstServer runs every phase briefly against a real
// provider: every message must reach every subscriber, in
// counter order, and nothing may fail; a user the bench did not create gets
// nothing.
func TestBenchGroupAgainstServer(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, noRateLimit)
	alice := addBystander(t, p)
	var stdout, stderr bytes.Buffer
	args := []string{"-url", p.Base, "-admin-token", p.AdminToken, "-senders", "4", "-groups", "20",
		"-subscribers", "20", "-fanout-senders", "2", "-duration", "2s", "-rate", "50", "-timeout", "2m", "-settle", "500ms", "-json"}
	if code := benchGroupCommand(args, &stdout, &stderr); code != 0 {
		t.Fatalf("bench-group exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	var res groupBenchResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	if res.SendersConnected != 4 || res.SubscribersConnected != 20 || res.ErrorCount != 0 || res.RateLimited != 0 {
		t.Errorf("connected %d+%d, errors %d %q, rate limited %d", res.SendersConnected, res.SubscribersConnected,
			res.ErrorCount, res.Errors, res.RateLimited)
	}
	for name, s := range map[string]*seqResult{"sequence": res.Sequence, "groups": res.Groups} {
		if s == nil || s.Sequenced == 0 || s.Failed != 0 || s.MessagesPerSecond <= 0 || s.SendLatency.Count != uint64(s.Sequenced) {
			t.Errorf("%s: %+v", name, s)
		}
	}
	if res.Groups != nil && res.Groups.GroupsCreated != 20 {
		t.Errorf("groups created %d, want 20", res.Groups.GroupsCreated)
	}
	for name, f := range map[string]*fanoutResult{"fanout": res.Fanout, "latency": res.Latency} {
		switch {
		case f == nil || f.Sequenced == 0:
			t.Fatalf("%s: nothing sequenced: %+v", name, f)
		case f.Subscribers != 20 || f.SubscribersComplete != 20 || f.LogLength != f.Sequenced:
			t.Errorf("%s: %d/%d subscribers complete, log %d, sequenced %d", name, f.SubscribersComplete, f.Subscribers, f.LogLength, f.Sequenced)
		case f.DeliveriesExpected != 20*f.Sequenced || f.DeliveriesReceived != f.DeliveriesExpected:
			t.Errorf("%s: deliveries expected %d, received %d", name, f.DeliveriesExpected, f.DeliveriesReceived)
		case f.Gaps != 0 || f.Duplicates != 0 || f.Foreign != 0 || f.Failed != 0:
			t.Errorf("%s: gaps %d, duplicates %d, foreign %d, failed %d", name, f.Gaps, f.Duplicates, f.Foreign, f.Failed)
		case f.Latency.Count != uint64(f.DeliveriesReceived) || f.Latency.P99ms < f.Latency.P50ms || f.DeliveriesPerSecond <= 0:
			t.Errorf("%s: figures %+v", name, f)
		case f.Memory == nil || f.Memory.ConnectedRSS <= 0 || f.Memory.PeakRSS < f.Memory.ConnectedRSS || f.Memory.AfterRSS <= 0:
			t.Errorf("%s: memory %+v", name, f.Memory)
		}
	}
	if l := res.Latency; l != nil && (l.Mode != "open_loop" || l.Sequenced+l.Skipped != 100) {
		t.Errorf("latency phase: mode %s, %d sequenced and %d skipped at 50/s for 2s, want 100", l.Mode, l.Sequenced, l.Skipped)
	}
	want := "mimids bench-group: creating 24 users (4 users bench-" + res.Run + "-send-0000..0003 and 20 users bench-" +
		res.Run + "-sub-0000..0019), one client each, and groups of them only"
	if !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("stderr does not start with %q:\n%s", want, stderr.String())
	}
	// The bench removed its users and wrote nothing to anyone else's mailbox.
	checkBenchLeftNoTrace(t, p, alice)
}

// TestBenchGroupRateLimited runs the sequencing phase against a server with
// its default per-user rate limit: the refusals are counted, not errors, and
// the report says how to lift the limit.
func TestBenchGroupRateLimited(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, nil)
	var stdout, stderr bytes.Buffer
	args := []string{"-url", p.Base, "-admin-token", p.AdminToken, "-phases", "sequence",
		"-senders", "1", "-duration", "1s", "-timeout", "1m"}
	if code := benchGroupCommand(args, &stdout, &stderr); code != 0 {
		t.Fatalf("bench-group exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	out := stdout.String()
	if !strings.Contains(out, "rate_per_second\": -1") || !strings.Contains(out, "errors: 0") ||
		strings.Contains(out, " 0 rate-limited") {
		t.Errorf("report:\n%s", out)
	}
}

func FuzzParseStamp(f *testing.F) {
	ct := make([]byte, stampSize+3)
	putStamp(ct, [4]byte{'a', 'b', 'c', 'd'}, 1, 2, time.Unix(0, 3))
	f.Add(ct, []byte("abcd"))
	f.Add([]byte("short"), []byte("abcd"))
	f.Add(bytes.Repeat([]byte{0xFF}, stampSize), []byte{0xFF, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, msg, runBytes []byte) {
		var run [4]byte
		copy(run[:], runBytes)
		sender, seq, sent, ok := parseStamp(msg, run)
		if !ok {
			return
		}
		// What parses is re-stamped identically.
		again := bytes.Clone(msg)
		putStamp(again, run, sender, seq, sent)
		if !bytes.Equal(again, msg) {
			t.Fatalf("re-stamping %x gave %x", msg, again)
		}
	})
}
