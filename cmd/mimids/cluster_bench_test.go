package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mimids/mimids/cmd/mimids/fedproc"
	"github.com/mimids/mimids/cmd/provider/providertest"
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// cpuSeconds is the CPU time (user and system) process pid has used so far.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces), from field 3 on.
	fs := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(fs) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(fs[11], 64)
	st, _ := strconv.ParseFloat(fs[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// fanoutFigures are the fields of `mimids bench-group -json` the cluster
// benchmark reports.
type fanoutFigures struct {
	ErrorCount int      `json:"error_count"`
	Errors     []string `json:"errors"`
	Fanout     *struct {
		Subscribers         int     `json:"subscribers"`
		Sequenced           int64   `json:"sequenced"`
		SequencedPerSecond  float64 `json:"sequenced_per_second"`
		DeliveriesExpected  int64   `json:"deliveries_expected"`
		DeliveriesReceived  int64   `json:"deliveries_received"`
		DeliveriesPerSecond float64 `json:"deliveries_per_second"`
		SubscribersComplete int     `json:"subscribers_complete"`
		Gaps                int64   `json:"gaps"`
		Duplicates          int64   `json:"duplicates"`
		Latency             struct {
			P50ms float64 `json:"p50_ms"`
			P99ms float64 `json:"p99_ms"`
		} `json:"latency"`
		SendLatency struct {
			P50ms float64 `json:"p50_ms"`
			P99ms float64 `json:"p99_ms"`
		} `json:"send_latency"`
		RateLimited int64   `json:"rate_limited"`
		Reconnects  int64   `json:"reconnects"`
		SendSeconds float64 `json:"send_seconds"`
		Seconds     float64 `json:"seconds"`
	} `json:"fanout"`
}

// BenchmarkClusterFanOutNodes runs `mimids bench-group`'s fanout phase (one
// group, MIMIDS_BENCH_SUBSCRIBERS subscribers, default 3000; MIMIDS_BENCH_SENDERS sender sockets, default 12 (fewer do not load three nodes), each with 16 sends in flight; phases of
// MIMIDS_BENCH_DURATION, default 10s; at most MIMIDS_BENCH_INFLIGHT, default 2048,
// messages not yet pushed to every subscriber) against a three-node provider (separate
// processes on one PostgreSQL and one nats-server): first with every socket on
// node 1, then with the sockets spread over the three nodes (-url with the three
// nodes: in turn). Everything runs on this machine: the same cores serve one busy
// node in the first run and three in the second. Run it with
//
//	go test -run '^$' -bench ClusterFanOutNodes -benchtime 1x ./cmd/mimids/
//
// MIMIDS_BENCH_NODE_CPU=0.2 gives each node the same CPU budget (0.2 of a core,
// a cgroup v1 CPU quota; Linux, as root): then the two runs compare one node with
// three nodes of the same budget each, as on machines of their own (on a 2-core
// machine; at 0.4 the three nodes leave the bench client too little).
func BenchmarkClusterFanOutNodes(b *testing.B) {
	subs, duration := envOr("MIMIDS_BENCH_SUBSCRIBERS", "3000"), envOr("MIMIDS_BENCH_DURATION", "10s")
	inflight := envOr("MIMIDS_BENCH_INFLIGHT", "2048")
	senders := envOr("MIMIDS_BENCH_SENDERS", "12")
	c := startProcCluster(b, 3, func(_ int, cfg map[string]any) {
		cfg["cluster"].(map[string]any)["poll_interval"] = "10s"
		cfg["store"].(map[string]any)["max_conns"] = 16
	})
	if v := os.Getenv("MIMIDS_BENCH_NODE_CPU"); v != "" {
		cores, err := strconv.ParseFloat(v, 64)
		if err != nil || cores <= 0 {
			b.Fatalf("MIMIDS_BENCH_NODE_CPU=%q: want a positive number of cores", v)
		}
		for i, nd := range c.nodes {
			limitCPU(b, fmt.Sprintf("mimids-bench-%d-node%d", os.Getpid(), i+1), nd.cmd.Process.Pid, cores)
		}
		b.Logf("each node limited to %.2f of a core", cores)
	}
	b.Logf("load average before: %s", loadavg())
	for b.Loop() {
		for _, run := range []struct {
			name  string
			nodes []*procNode
		}{{"1node", c.nodes[:1]}, {"3nodes", c.nodes}} {
			var urls []string
			for _, nd := range run.nodes {
				urls = append(urls, nd.base())
			}
			cmd := exec.Command(c.bin, "bench-group", "-url", strings.Join(urls, ","), "-admin-token", c.admin,
				"-phases", "fanout", "-senders", senders, "-fanout-senders", senders, "-fanout-inflight", inflight, "-subscribers", subs,
				"-duration", duration, "-timeout", "10m", "-json")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			before := make([]float64, len(c.nodes))
			seen := make([]map[string]float64, len(c.nodes))
			for i, nd := range c.nodes {
				before[i] = cpuSeconds(nd.cmd.Process.Pid)
				seen[i] = providertest.Metrics(b, nd.base())
			}
			out, err := cmd.Output()
			var cpu []string
			for i, nd := range c.nodes {
				cpu = append(cpu, fmt.Sprintf("%.1f", cpuSeconds(nd.cmd.Process.Pid)-before[i]))
			}
			if cmd.ProcessState != nil {
				cpu = append(cpu, fmt.Sprintf("bench-group %.1f", (cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime()).Seconds()))
			}
			var res fanoutFigures
			if jerr := json.Unmarshal(out, &res); jerr != nil || res.Fanout == nil {
				b.Fatalf("%s: bench-group: %v %v\n%s\n%s", run.name, err, jerr, out, stderr.String())
			}
			f := res.Fanout
			if err != nil || res.ErrorCount != 0 || f.Gaps+f.Duplicates != 0 || f.DeliveriesReceived != f.DeliveriesExpected {
				e := stderr.String()
				b.Fatalf("%s: bench-group: %v; errors %d %q; gaps %d, duplicates %d, %d of %d deliveries\n%s", run.name, err,
					res.ErrorCount, res.Errors, f.Gaps, f.Duplicates, f.DeliveriesReceived, f.DeliveriesExpected, e[max(0, len(e)-2000):])
			}
			for i, nd := range c.nodes {
				b.Logf("%s: node %d: %s", run.name, i+1, counterDeltas(seen[i], providertest.Metrics(b, nd.base())))
			}
			b.Logf("%s: sends answered p50 %.1f ms p99 %.1f ms, %d rate-limited; sent for %.1f s, last delivery at %.1f s; %d reconnects",
				run.name, f.SendLatency.P50ms, f.SendLatency.P99ms, f.RateLimited, f.SendSeconds, f.Seconds, f.Reconnects)
			b.ReportMetric(f.DeliveriesPerSecond, run.name+"-deliveries/s")
			b.ReportMetric(f.SequencedPerSecond, run.name+"-msg/s")
			b.Logf("%s: %d subscribers, %d messages (%.0f/s), %.0f deliveries/s, push latency p50 %.1f ms p99 %.1f ms; CPU seconds (nodes 1-3, bench) %s; load %s",
				run.name, f.Subscribers, f.Sequenced, f.SequencedPerSecond, f.DeliveriesPerSecond, f.Latency.P50ms, f.Latency.P99ms,
				strings.Join(cpu, ", "), loadavg())
		}
	}
	if os.Getenv("MIMIDS_BENCH_CPUPROFILE_DIR") != "" {
		// The profiles are written when a node exits on SIGTERM.
		for _, nd := range c.nodes {
			syscall.Kill(nd.cmd.Process.Pid, syscall.SIGTERM)
			select {
			case err := <-nd.done:
				nd.done <- err // kill (at cleanup) reads it again
			case <-time.After(20 * time.Second):
				b.Logf("%s did not stop", nd.id)
			}
		}
	}
}

// counterDeltas formats what changed on a node between two scrapes of its
// /metrics (providertest.Metrics) over a phase: how subscribers caught up, NATS
// resyncs, the time requests took, GCs and socket closes.
func counterDeltas(before, after map[string]float64) string {
	d := func(series string) float64 { return after[series] - before[series] }
	sum := func(m map[string]float64, name string) float64 { // over every label set
		var v float64
		for series, x := range m {
			if series == name || strings.HasPrefix(series, name+"{") {
				v += x
			}
		}
		return v
	}
	reqs := d("mimids_request_seconds_count")
	mean := 0.0
	if reqs > 0 {
		mean = d("mimids_request_seconds_sum") / reqs * 1000
	}
	return fmt.Sprintf("catch-ups: socket reads %.0f, topic reads %.0f, shared page reads %.0f, from recent frames %.0f, from shared pages %.0f; NATS resyncs %.0f, poll pokes %.0f; %.0f requests, mean %.1f ms; %.0f GCs, %.0f sockets closed",
		d(`mimids_partition_catchups_total{source="socket_read"}`), d(`mimids_partition_catchups_total{source="topic_read"}`),
		d(`mimids_partition_catchups_total{source="page_read"}`), d(`mimids_partition_catchups_total{source="recent"}`),
		d(`mimids_partition_catchups_total{source="page"}`), d("mimids_cluster_resyncs_total"), d("mimids_cluster_poll_pokes_total"),
		reqs, mean, d("go_gc_duration_seconds_count"),
		sum(after, "mimids_socket_closes_total")-sum(before, "mimids_socket_closes_total"))
}

// limitCPU puts process pid (all its threads) into a cgroup v1 CPU controller
// group of its own with a quota of cores; the group goes when b ends.
func limitCPU(b *testing.B, name string, pid int, cores float64) {
	b.Helper()
	const root = "/sys/fs/cgroup/cpu"
	dir := root + "/" + name
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatalf("cgroup for the CPU budget (needs cgroup v1's cpu controller at %s, as root): %v", root, err)
	}
	write := func(file, v string) {
		if err := os.WriteFile(dir+"/"+file, []byte(v), 0o644); err != nil {
			b.Fatalf("cgroup %s: %v", file, err)
		}
	}
	write("cpu.cfs_period_us", "100000")
	write("cpu.cfs_quota_us", strconv.Itoa(int(cores*100000)))
	write("cgroup.procs", strconv.Itoa(pid))
	b.Cleanup(func() {
		if procs, err := os.ReadFile(dir + "/cgroup.procs"); err == nil {
			for _, p := range strings.Fields(string(procs)) {
				os.WriteFile(root+"/cgroup.procs", []byte(p), 0o644)
			}
		}
		os.Remove(dir)
	})
}

// BenchmarkClusterKillResume connects MIMIDS_BENCH_CLIENTS devices (default 300)
// to node 3 of a three-node provider through a front that fails over to node 1,
// each following one group with a Feed, while a device on node 1 sends every
// 20 ms. Node 3 is killed with SIGKILL; the benchmark reports the time from the
// kill until each device has reconnected and its Feed handed over the first
// message sent after the kill (p50, max).
func BenchmarkClusterKillResume(b *testing.B) {
	n, _ := strconv.Atoi(envOr("MIMIDS_BENCH_CLIENTS", "300"))
	b.StopTimer()
	for range b.N {
		c := startProcCluster(b, 3, func(_ int, cfg map[string]any) { cfg["cluster"].(map[string]any)["poll_interval"] = "10s" })
		fronts := c.frontsFor(b)
		sender := dialMember(b, fronts[0].socket(), c.addDevice(c.nodes[0], "alice", "send"), "send")
		ms := make([]*member, n)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 32)
		for i := range ms {
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				name := fmt.Sprintf("dev%d", i)
				ms[i] = dialMember(b, fronts[2].socket(), c.addDevice(c.nodes[0], "alice", name), name)
			})
		}
		wg.Wait()
		g := procGroup(b, sender, ms...)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		l := newLedger()
		sctx, stop := context.WithCancel(ctx)
		var swg sync.WaitGroup
		swg.Go(func() {
			for sctx.Err() == nil && l.send(sctx, g, sender) {
				time.Sleep(20 * time.Millisecond)
			}
		})
		if err := fedproc.Poll(ctx, time.Minute, func() (bool, error) { return ms[n-1].count() >= 20, nil }); err != nil {
			b.Fatal(err)
		}
		load := loadavg()
		b.StartTimer()
		c.kill(c.nodes[2])
		killed := time.Now()
		var took []time.Duration
		for _, m := range ms {
			var at time.Time
			if err := fedproc.Poll(ctx, time.Minute, func() (bool, error) {
				first, ok := l.firstAfter(killed)
				if ok {
					at, ok = m.resumed(first)
				}
				return ok, nil
			}); err != nil {
				b.Fatalf("%s did not resume: %v", m.name, err)
			}
			took = append(took, at.Sub(killed))
		}
		b.StopTimer()
		stop()
		swg.Wait()
		cancel()
		sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
		b.ReportMetric(float64(took[len(took)/2].Milliseconds()), "resume-p50-ms")
		b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "resume-max-ms")
		b.Logf("%d clients of the killed node resumed on node 1: p50 %v, max %v; load before the kill %s", n,
			took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond), load)
	}
}
