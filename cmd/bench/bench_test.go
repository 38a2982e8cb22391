package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mimids/mimids/cmd/provider/providertest"
)

func TestCheckLoopbackURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080", true},
		{"http://127.1.2.3:8080/base", true},
		{"https://[::1]:8443", true},
		{"http://localhost:8080", true},
		{"http://LOCALHOST", true},
		{"http://10.0.0.1:8080", false},
		{"http://0.0.0.0:8080", false},
		{"http://[::]:8080", false},
		{"http://example.org", false},
		{"http://localhost.example.org", false},
		{"http://127.0.0.1.nip.io", false},
		{"ws://127.0.0.1:8080", false},
		{"127.0.0.1:8080", false},
		{"http://", false},
		{"http://[::1", false},
	} {
		t.Run(tc.url, func(t *testing.T) {
			_, err := checkLoopbackURL(tc.url)
			if (err == nil) != tc.ok {
				t.Fatalf("checkLoopbackURL(%q) = %v, want ok=%v", tc.url, err, tc.ok)
			}
		})
	}
	if _, err := checkLoopbackURL("http://192.168.1.1"); !errors.Is(err, errNotLoopback) {
		t.Errorf("non-loopback error %v does not wrap errNotLoopback", err)
	}
}

func TestSocketURL(t *testing.T) {
	for _, tc := range []struct{ base, want string }{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/v1/socket"},
		{"http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1/socket"},
		{"https://localhost/mimi/", "https://localhost/mimi/v1/socket"},
	} {
		u, err := checkLoopbackURL(tc.base)
		if err != nil {
			t.Fatal(err)
		}
		if got := socketURL(u); got != tc.want {
			t.Errorf("socketURL(%q) = %q, want %q", tc.base, got, tc.want)
		}
	}
}

func TestHistogramBuckets(t *testing.T) {
	prev := -1
	for _, v := range []uint64{0, 1, 127, 128, 129, 130, 255, 256, 1000, 1 << 20, 1<<40 - 1} {
		i := histIndex(v)
		if i < prev || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d (prev %d, buckets %d)", v, i, prev, histBuckets)
		}
		prev = i
		if up := histUpper(i); up < v || float64(up-v) > float64(v)/64+1 {
			t.Errorf("value %d: bucket %d upper bound %d is off by more than 1/64", v, i, up)
		}
		if i > 0 && histUpper(i-1) >= v {
			t.Errorf("value %d also fits bucket %d (upper %d)", v, i-1, histUpper(i-1))
		}
	}
	// Every bucket's upper bound maps back to the bucket itself.
	for i := range histBuckets {
		if got := histIndex(histUpper(i)); got != i {
			t.Fatalf("histIndex(histUpper(%d)=%d) = %d", i, histUpper(i), got)
		}
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var h histogram
	if h.Quantile(0.5) != 0 || h.Summary().Count != 0 {
		t.Fatal("empty histogram is not zero")
	}
	for i := 1; i <= 1000; i++ { // 1 ms .. 1000 ms
		h.Record(time.Duration(i) * time.Millisecond)
	}
	h.Record(-time.Second) // clamped to 0
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.50, 500 * time.Millisecond},
		{0.90, 900 * time.Millisecond},
		{0.99, 990 * time.Millisecond},
		{1.00, 1000 * time.Millisecond},
	} {
		got := h.Quantile(tc.q)
		if rel := math.Abs(float64(got-tc.want)) / float64(tc.want); rel > 0.02 {
			t.Errorf("Quantile(%v) = %v, want %v within 2%%", tc.q, got, tc.want)
		}
	}
	s := h.Summary()
	if s.Count != 1001 || s.MaxMs != 1000 {
		t.Errorf("Summary() = %+v", s)
	}
	if !strings.Contains(s.String(), "max 1000.00 ms") {
		t.Errorf("String() = %q", s.String())
	}
}

func TestHistogramConcurrent(t *testing.T) {
	var h histogram
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				h.Record(time.Duration(g*1000+i) * time.Microsecond)
			}
		})
	}
	wg.Wait()
	if h.Count() != 8000 || h.Quantile(1) != 7999*time.Microsecond {
		t.Errorf("count %d, max %v", h.Count(), h.Quantile(1))
	}
}

func TestNoticeText(t *testing.T) {
	sent := time.Unix(1700000000, 123456789)
	text := noticeText("ab12", 42, sent)
	id, got, ok := parseNoticeText(text, "ab12")
	if !ok || id != 42 || !got.Equal(sent) {
		t.Fatalf("parseNoticeText(%q) = %d, %v, %v", text, id, got, ok)
	}
	for _, bad := range []string{
		noticeText("other", 42, sent), "", "hello", "mimids-bench ab12 x 1", "mimids-bench ab12 1 y",
		"mimids-bench ab12 1 2 3", "mimids-bench ab12 -1 2",
	} {
		if _, _, ok := parseNoticeText(bad, "ab12"); ok {
			t.Errorf("parseNoticeText(%q) accepted", bad)
		}
	}
}

func TestMetricValue(t *testing.T) {
	const text = `# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 5.2338688e+07
process_resident_memory_bytes_peak 9e+07
mimids_sockets_connected 1000
mimids_socket_closes_total{reason="slow_consumer"} 2
mimids_socket_closes_total{reason="going_away",x="}"} 3
broken{reason="x" 1
`
	for _, tc := range []struct {
		name string
		want float64
		err  bool
	}{
		{"process_resident_memory_bytes", 52338688, false},
		{"mimids_sockets_connected", 1000, false},
		{"mimids_socket_closes_total", 5, false},
		{"mimids_missing", 0, true},
		{"broken", 0, true},
		{"process_resident", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := metricValue(text, tc.name)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("metricValue(%s) = %v, %v; want %v (error %v)", tc.name, got, err, tc.want, tc.err)
			}
		})
	}
}

func TestParseBenchFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want []string // substrings of the error; nil: valid
	}{
		{"defaults", []string{"-admin-token", "mat_x"}, nil},
		{"open loop with idle", []string{"-admin-token", "t", "-notices-per-second", "50", "-idle", "10000", "-clients", "1000"}, nil},
		{"remote host", []string{"-admin-token", "t", "-url", "http://10.1.2.3:8080"}, []string{"loopback"}},
		{"everything wrong", []string{"-admin-token", "", "-clients", "0", "-duration", "20m", "-inflight", "0",
			"-concurrency", "0", "-idle", "-1", "-notice-timeout", "0s"},
			[]string{"-admin-token is required", "-clients 0", "-duration 20m0s", "-inflight 0", "-concurrency 0", "-idle -1", "-notice-timeout"}},
		{"too many sockets", []string{"-admin-token", "t", "-clients", "1000", "-idle", "20000"}, []string{"exceeds -max-conns 16384"}},
		{"duration over timeout", []string{"-admin-token", "t", "-duration", "2m", "-timeout", "1m"}, []string{"shorter than -timeout"}},
		{"stray argument", []string{"-admin-token", "t", "extra"}, []string{"unexpected arguments"}},
		{"unknown flag", []string{"-nope"}, []string{"not defined"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("MIMIDS_ADMIN_TOKEN", "")
			o, err := parseBenchFlags(tc.args, io.Discard, io.Discard)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("parseBenchFlags(%q) = %v", tc.args, err)
				}
				if o.Clients < 1 || o.Duration != 10*time.Second || o.URL != "http://127.0.0.1:8080" {
					t.Errorf("options %+v", o)
				}
				return
			}
			if err == nil {
				t.Fatalf("parseBenchFlags(%q) accepted", tc.args)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	t.Run("token from environment", func(t *testing.T) {
		t.Setenv("MIMIDS_ADMIN_TOKEN", "mat_env")
		o, err := parseBenchFlags(nil, io.Discard, io.Discard)
		if err != nil || o.AdminToken != "mat_env" {
			t.Errorf("got %q, %v", o.AdminToken, err)
		}
	})
}

func TestBenchCommandExitCodes(t *testing.T) {
	checkBenchExitCodes(t, benchCommand, "-notices-per-second", "-clients", "3", "-timeout", "20s")
}

// checkBenchExitCodes checks a load generator's exit codes: 0 and a usage naming
// usageWant on stdout for -h, 2 for a bad flag and for a remote URL, 1 and a report when no server answers
// (noServer are the extra flags of that run).
func checkBenchExitCodes(t *testing.T, cmd func([]string, io.Writer, io.Writer) int, usageWant string, noServer ...string) {
	t.Helper()
	t.Setenv("MIMIDS_ADMIN_TOKEN", "")
	var stdout, stderr bytes.Buffer
	if code := cmd([]string{"-h"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), usageWant) ||
		!strings.Contains(stdout.String(), "example:") || stderr.Len() != 0 {
		t.Errorf("-h: exit %d, usage %q, stderr %q", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	if code := cmd([]string{"-nope"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "-nope") || stdout.Len() != 0 {
		t.Errorf("bad flag: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	stderr.Reset()
	if code := cmd([]string{"-url", "http://example.org"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "loopback") {
		t.Errorf("remote url: exit %d, stderr %q", code, stderr.String())
	}
	// A loopback port with nothing listening: the first admin call fails fast.
	stderr.Reset()
	code := cmd(append([]string{"-url", "http://127.0.0.1:1", "-admin-token", "t"}, noServer...), &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "create client") {
		t.Errorf("no server: exit %d, stderr %q", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "errors: 0") {
		t.Errorf("no report printed: %q", stdout.String())
	}
}

func TestForEachBounded(t *testing.T) {
	var mu sync.Mutex
	running, peak, calls := 0, 0, 0
	forEach(context.Background(), 50, 4, func(i int) {
		mu.Lock()
		running++
		calls++
		peak = max(peak, running)
		mu.Unlock()
		time.Sleep(time.Millisecond)
		mu.Lock()
		running--
		mu.Unlock()
	})
	if calls != 50 || peak > 4 {
		t.Errorf("calls %d, peak concurrency %d", calls, peak)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls = 0
	forEach(ctx, 50, 4, func(int) { mu.Lock(); calls++; mu.Unlock() })
	if calls > 4 {
		t.Errorf("%d calls started after cancel", calls)
	}
}

func TestTracker(t *testing.T) {
	tr := tracker{pending: map[uint64]*noticeState{}}
	st := tr.add(1, 3)
	for range 3 {
		select {
		case <-st.done:
			t.Fatal("done before every arrival")
		default:
		}
		tr.arrive(1)
	}
	<-st.done
	tr.arrive(1) // late duplicate: ignored
	tr.arrive(9) // unknown: ignored
	tr.add(2, 1)
	tr.drop(2)
	if len(tr.pending) != 0 {
		t.Errorf("pending %v", tr.pending)
	}
}

func TestFlagErrHelp(t *testing.T) {
	if _, err := parseBenchFlags([]string{"-help"}, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-help: %v", err)
	}
}

// TestBenchAgainstServer runs a short bench against a real provider:
// every delivery must arrive and be acknowledged, and the idle phase must see its
// sockets counted. The provider has a user of its own whose mailbox must stay
// empty, and who is the only user left at the end.
func TestBenchAgainstServer(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, nil)
	if p.AdminToken == "" {
		t.Fatal("server made no admin token")
	}
	alice := addBystander(t, p)
	var stdout, stderr bytes.Buffer
	args := []string{"-url", p.Base, "-admin-token", p.AdminToken,
		"-clients", "20", "-duration", "1s", "-idle", "30", "-timeout", "2m", "-json"}
	if code := benchCommand(args, &stdout, &stderr); code != 0 {
		t.Fatalf("bench exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	}
	var res benchResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("bench output is not JSON: %v\n%s", err, stdout.String())
	}
	tp := res.Throughput
	switch {
	case res.Connected != 20 || res.ErrorCount != 0:
		t.Errorf("connected %d, errors %d %q", res.Connected, res.ErrorCount, res.Errors)
	case tp == nil || tp.NoticesPosted == 0:
		t.Fatalf("no throughput result: %+v", tp)
	case tp.EnqueuedPerNotice != 20:
		t.Errorf("enqueued %d per notice, want 20", tp.EnqueuedPerNotice)
	case tp.DeliveriesReceived != tp.DeliveriesExpected || tp.DeliveriesAcked != tp.DeliveriesExpected:
		t.Errorf("deliveries: expected %d, received %d, acked %d", tp.DeliveriesExpected, tp.DeliveriesReceived, tp.DeliveriesAcked)
	case tp.DeliveriesPerSecond <= 0 || tp.Latency.Count != uint64(tp.DeliveriesReceived) || tp.Latency.P99ms < tp.Latency.P50ms:
		t.Errorf("throughput figures %+v", tp)
	case tp.NoticesIncomplete != 0 || tp.Duplicates != 0 || tp.Foreign != 0:
		t.Errorf("incomplete %d, duplicates %d, foreign %d", tp.NoticesIncomplete, tp.Duplicates, tp.Foreign)
	}
	if id := res.Idle; id == nil || id.Sockets != 30 || id.ConnectedAfter < id.ConnectedBefore+30 || id.RSSAfter <= 0 {
		t.Errorf("idle result %+v", res.Idle)
	}
	// It said what it would create before creating it.
	want := "mimids bench: creating 1 user bench-" + res.Run + "-mail with 20 clients and 1 user bench-" + res.Run +
		"-idle with 30 idle clients on " + p.Base + "; notices go to them only; they are removed at the end"
	if !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("stderr does not start with %q:\n%s", want, stderr.String())
	}
	checkBenchLeftNoTrace(t, p, alice)
}

// TestBenchInterruptedRemovesUsers cancels a bench (as Ctrl-C does) while it
// runs: it stops early, says so, and still removes every user it created.
func TestBenchInterruptedRemovesUsers(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, nil)
	alice := addBystander(t, p)
	o, err := parseBenchFlags([]string{"-url", p.Base, "-admin-token", p.AdminToken,
		"-clients", "200", "-duration", "30s", "-timeout", "1m"}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // cancel once the bench has created some of its clients
		defer cancel()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
			if cs, err := p.DB.ListClients(context.Background(), ""); err == nil && len(cs) > 20 {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var logw bytes.Buffer
	res, err := runBench(ctx, o, &logw)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("interrupted bench: %v, want context.Canceled", err)
	}
	if res == nil || !strings.Contains(logw.String(), "stopped early; removing") {
		t.Errorf("result %v, log:\n%s", res, logw.String())
	}
	checkBenchLeftNoTrace(t, p, alice)
}

// TestBenchCleanupSweepsOnlyItsPrefix checks the cleanup's sweep: a user of the
// run that the bench never recorded is removed; a user of another run, and one
// that merely looks like a bench user, are not.
func TestBenchCleanupSweepsOnlyItsPrefix(t *testing.T) {
	p := providertest.Start(t, "a.example", nil, nil)
	ctx := context.Background()
	o, err := parseBenchFlags([]string{"-url", p.Base, "-admin-token", p.AdminToken}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var logw bytes.Buffer
	b := newBench(o, &logw)
	if _, err := b.createDevices(ctx, mailRole, 3); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{b.prefix() + "stray", "bench-" + randomRunID() + "-mail", "bench", "alice"} {
		if _, err := p.Dir.AddUser(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	b.cleanup(ctx)
	var left []string
	us, err := p.DB.ListUsers(ctx)
	for _, u := range us {
		left = append(left, u.Name)
	}
	if err != nil || len(left) != 3 || slices.ContainsFunc(left, func(u string) bool { return strings.HasPrefix(u, b.prefix()) }) {
		t.Errorf("users after the cleanup: %q, %v (log %q)", left, err, logw.String())
	}
}

func FuzzMetricValue(f *testing.F) {
	f.Add("process_resident_memory_bytes 5.2e+07\n", "process_resident_memory_bytes")
	f.Add("m{a=\"}\"} 1\nm 2\n# m 3\n", "m")
	f.Add("m{ 1", "m")
	f.Fuzz(func(t *testing.T, text, name string) {
		if name == "" {
			return
		}
		v, err := metricValue(text, name)
		if err != nil && v != 0 {
			t.Fatalf("error %v with value %v", err, v)
		}
	})
}

func FuzzParseNoticeText(f *testing.F) {
	f.Add("mimids-bench ab12 42 1700000000123456789", "ab12")
	f.Add("mimids-bench ab12 1 -5", "ab12")
	f.Add("", "")
	f.Fuzz(func(t *testing.T, text, run string) {
		id, sent, ok := parseNoticeText(text, run)
		if !ok {
			return
		}
		// What parses re-encodes to an equivalent text.
		id2, sent2, ok2 := parseNoticeText(noticeText(run, id, sent), run)
		if !ok2 || id2 != id || !sent2.Equal(sent) {
			t.Fatalf("round trip of %q: %d %v %v", text, id2, sent2, ok2)
		}
	})
}

// addBystander creates a user that is not the bench's, with one client, and
// returns the client's id.
func addBystander(t *testing.T, p *providertest.Provider) int64 {
	t.Helper()
	c, _, err := p.Dir.AddClient(context.Background(), "alice", "phone", true)
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// checkBenchLeftNoTrace checks that a bench removed every user it created and
// enqueued nothing for the bystander (addBystander), the only user left.
func checkBenchLeftNoTrace(t *testing.T, p *providertest.Provider, bystander int64) {
	t.Helper()
	base, _ := checkLoopbackURL(p.Base)
	users, err := newAdminAPI(base, p.AdminToken, 1).listUsers(context.Background())
	if err != nil || len(users) != 1 || users[0] != "alice" {
		t.Errorf("users after the bench: %q, %v; want only alice", users, err)
	}
	entries, err := p.DB.FetchMailbox(context.Background(), bystander, 0, 10)
	if err != nil || len(entries) != 0 {
		t.Errorf("the bystander's mailbox holds %d entries (%v); the bench must not write to it", len(entries), err)
	}
}
