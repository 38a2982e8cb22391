package bench

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// histogram records durations in microseconds in log-linear buckets: exact below
// 128 µs, then 64 buckets per power of two (under 1.6% relative error), up to 2^40 µs.
// Record is lock-free and safe for concurrent use.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	max    atomic.Int64 // µs
}

const (
	histSubBits = 7
	histHalf    = 1 << (histSubBits - 1)
	histMaxBits = 40
	histBuckets = (histMaxBits-histSubBits+1)*histHalf + histHalf
)

// histIndex returns the bucket of v µs (v >= 0, at most 2^40-1).
func histIndex(v uint64) int {
	if v < 1<<histSubBits {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits
	return e*histHalf + int(v>>e)
}

// histUpper returns the largest value that falls into bucket i.
func histUpper(i int) uint64 {
	if i < 1<<histSubBits {
		return uint64(i)
	}
	e := i/histHalf - 1
	m := uint64(i - e*histHalf)
	return (m+1)<<e - 1
}

func (h *histogram) Record(d time.Duration) {
	us := d.Microseconds()
	if us < 0 {
		us = 0
	}
	if us >= 1<<histMaxBits {
		us = 1<<histMaxBits - 1
	}
	h.counts[histIndex(uint64(us))].Add(1)
	h.n.Add(1)
	for {
		old := h.max.Load()
		if us <= old || h.max.CompareAndSwap(old, us) {
			return
		}
	}
}

func (h *histogram) Count() uint64 { return h.n.Load() }

// Quantile returns the upper bound of the bucket holding the q-quantile (0 < q <= 1),
// never more than the largest value recorded; 0 when nothing was recorded.
func (h *histogram) Quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(rank, 1)
	var seen uint64
	for i := range h.counts {
		seen += h.counts[i].Load()
		if seen >= rank {
			return time.Duration(min(int64(histUpper(i)), h.max.Load())) * time.Microsecond
		}
	}
	return time.Duration(h.max.Load()) * time.Microsecond
}

// latencySummary is the JSON form of a histogram.
type latencySummary struct {
	Count uint64  `json:"count"`
	P50ms float64 `json:"p50_ms"`
	P90ms float64 `json:"p90_ms"`
	P99ms float64 `json:"p99_ms"`
	MaxMs float64 `json:"max_ms"`
}

func (h *histogram) Summary() latencySummary {
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Millisecond)*1000) / 1000 }
	return latencySummary{
		Count: h.Count(), P50ms: ms(h.Quantile(0.50)), P90ms: ms(h.Quantile(0.90)),
		P99ms: ms(h.Quantile(0.99)), MaxMs: ms(time.Duration(h.max.Load()) * time.Microsecond),
	}
}

func (s latencySummary) String() string {
	return fmt.Sprintf("p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms (n=%d)", s.P50ms, s.P90ms, s.P99ms, s.MaxMs, s.Count)
}

// errNotLoopback refuses a bench target that is not this machine.
var errNotLoopback = errors.New("bench: target must be a loopback address (127.0.0.0/8, ::1 or localhost)")

// checkLoopbackURLs parses list, one base URL or the comma-separated URLs of a
// provider's nodes, each as checkLoopbackURL does.
func checkLoopbackURLs(list string) ([]*url.URL, error) {
	var out []*url.URL
	for part := range strings.SplitSeq(list, ",") {
		u, err := checkLoopbackURL(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// checkLoopbackURL parses base, an http or https URL whose host must be a loopback
// address; names other than localhost are refused without resolving them.
func checkLoopbackURL(base string) (*url.URL, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("bench: -url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("bench: -url scheme %q: want http or https", u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return nil, fmt.Errorf("bench: -url %q has no host", base)
	}
	if strings.EqualFold(host, "localhost") {
		return u, nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("%w: %q", errNotLoopback, host)
	}
	return u, nil
}

// noticeText is the text of bench notice id of run, carrying its send time.
func noticeText(run string, id uint64, sent time.Time) string {
	return fmt.Sprintf("mimids-bench %s %d %d", run, id, sent.UnixNano())
}

// parseNoticeText is the inverse of noticeText; ok is false for a notice that is not
// from this run.
func parseNoticeText(text, run string) (id uint64, sent time.Time, ok bool) {
	f := strings.Fields(text)
	if len(f) != 4 || f[0] != "mimids-bench" || f[1] != run {
		return 0, time.Time{}, false
	}
	id, err1 := strconv.ParseUint(f[2], 10, 64)
	ns, err2 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, time.Time{}, false
	}
	return id, time.Unix(0, ns), true
}

// metricValue returns the value of the sample called name in a Prometheus text
// exposition: the unlabeled sample, or the sum of the labeled ones.
func metricValue(exposition, name string) (float64, error) {
	var sum float64
	found := false
	for line := range strings.Lines(exposition) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // a longer name with this prefix
		}
		if rest[0] == '{' {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				return 0, fmt.Errorf("bench: metric %s: malformed line %q", name, line)
			}
			rest = rest[end+1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return 0, fmt.Errorf("bench: metric %s: no value in %q", name, line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("bench: metric %s: %w", name, err)
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("bench: metric %s not exposed", name)
	}
	return sum, nil
}
