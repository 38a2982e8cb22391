package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"

	"github.com/mimids/mimids/cmd/provider"
	"github.com/mimids/mimids/cmd/provider/providertest"
	"github.com/mimids/mimids/postgres/pgtest"
)

// BenchmarkSequencingStores runs bench-group's sequence (one group) and groups
// (MIMIDS_BENCH_GROUPS groups, default 1000) phases against a provider on SQLite
// and one on PostgreSQL in the same run, and reports messages sequenced per
// second of each. One iteration is one full run per store (-benchtime 1x); the
// phases last MIMIDS_BENCH_DURATION each (default 5s).
//
// SQLite runs with synchronous=normal (a commit survives a crash of the process),
// PostgreSQL with synchronous_commit on and fsync off (the same: the server
// process may crash, not the machine). MIMIDS_TEST_POSTGRES_DURABLE=1 makes both
// durable through a power loss: SQLite synchronous=full, PostgreSQL fsync on.
func BenchmarkSequencingStores(b *testing.B) {
	srv := pgtest.StartServer(b)
	durable := os.Getenv(pgtest.EnvDurable) == "1"
	duration, groups := envOr("MIMIDS_BENCH_DURATION", "5s"), envOr("MIMIDS_BENCH_GROUPS", "1000")
	stores := []struct {
		name string
		edit func(*provider.Config)
	}{
		{"sqlite", func(c *provider.Config) {
			noRateLimit(c)
			if durable {
				c.Store.Synchronous = "full"
			}
		}},
		{"postgres", func(c *provider.Config) {
			noRateLimit(c)
			c.Store.Driver, c.Store.DSN, c.Store.MaxConns = provider.DriverPostgres, srv.DSN("postgres"), 32
		}},
	}
	for b.Loop() {
		for _, s := range stores {
			p := providertest.Start(b, "a.example", nil, s.edit)
			var stdout, stderr bytes.Buffer
			args := []string{"-url", p.Base, "-admin-token", p.AdminToken, "-phases", "sequence,groups", "-senders", "16",
				"-groups", groups, "-duration", duration, "-timeout", "5m", "-json"}
			if code := benchGroupCommand(args, &stdout, &stderr); code != 0 {
				b.Fatalf("%s: bench-group exit %d\n%s\n%s", s.name, code, stdout.String(), stderr.String())
			}
			var res groupBenchResult
			if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
				b.Fatalf("%s: %v", s.name, err)
			}
			if res.ErrorCount != 0 || res.Sequence == nil || res.Groups == nil || res.Sequence.Failed+res.Groups.Failed != 0 {
				b.Fatalf("%s: errors %d %q", s.name, res.ErrorCount, res.Errors)
			}
			b.ReportMetric(res.Sequence.MessagesPerSecond, s.name+"-1group-msg/s")
			b.ReportMetric(res.Groups.MessagesPerSecond, s.name+"-"+groups+"groups-msg/s")
			b.Logf("%s: one group %.0f msg/s (p50 %.1f ms, p99 %.1f ms); %d groups %.0f msg/s (p50 %.1f ms, p99 %.1f ms)", s.name,
				res.Sequence.MessagesPerSecond, res.Sequence.SendLatency.P50ms, res.Sequence.SendLatency.P99ms,
				res.Groups.GroupsCreated, res.Groups.MessagesPerSecond, res.Groups.SendLatency.P50ms, res.Groups.SendLatency.P99ms)
			p.Stop()
		}
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
