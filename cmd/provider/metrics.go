package provider

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/ohttp"
)

// mailboxMetrics counts committed mailbox entries: this process's own through the
// mailbox, those of the admin CLI through the change log (Provider.onChange).
func mailboxMetrics(reg prometheus.Registerer) mailbox.Metrics {
	enq := prometheus.NewCounter(prometheus.CounterOpts{Name: "mimids_mailbox_enqueued_total",
		Help: "Mailbox entries committed, for every producer."})
	reg.MustRegister(enq)
	return mailbox.Metrics{Enqueued: func(n int) { enq.Add(float64(n)) }}
}

// registerHubMetrics exposes the hub's counters.
func registerHubMetrics(reg prometheus.Registerer, h *hub.Hub) {
	counter := func(name, help string, v func(hub.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(h.Stats())) })
	}
	reg.MustRegister(
		counter("mimids_hub_sequenced_total", "Messages sequenced by the hub.", func(s hub.Stats) int64 { return s.Sequenced }),
		counter("mimids_hub_duplicates_total", "Retried requests answered from the log.", func(s hub.Stats) int64 { return s.Duplicates }),
		counter("mimids_hub_refused_total", "Requests refused for bad input or policy.", func(s hub.Stats) int64 { return s.Refused }),
		counter("mimids_hub_commits_total", "Partitions opened by commits.", func(s hub.Stats) int64 { return s.Commits }),
		counter("mimids_hub_forks_total", "Commits sequenced to a partition that already had one.", func(s hub.Stats) int64 { return s.Forks }),
		counter("mimids_hub_welcomes_local_total", "Welcomes delivered to local mailboxes.", func(s hub.Stats) int64 { return s.WelcomesLocal }),
		counter("mimids_hub_welcomes_remote_total", "Welcomes stored for other providers.", func(s hub.Stats) int64 { return s.WelcomesRemote }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mimids_hub_cached_states", Help: "Partition states in memory."},
			func() float64 { return float64(h.Stats().CachedStates) }),
	)
}

// ohttpDoor meters one Oblivious HTTP door, the gateway or the relay: its requests
// by outcome (from the ohttp Observe hook, which names the problem of every refusal)
// and the time to answer them (around its handler).
type ohttpDoor struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

// newOHTTPMetrics registers the gateway's and the relay's metrics.
func newOHTTPMetrics(reg prometheus.Registerer) (gateway, relay *ohttpDoor) {
	door := func(name, what, label string) *ohttpDoor {
		d := &ohttpDoor{
			requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mimids_ohttp_" + name + "_requests_total",
				Help: "Requests to the Oblivious HTTP " + what + ", by outcome (ok, or the problem that refused it)."},
				[]string{"outcome"}),
			seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mimids_ohttp_" + name + "_request_seconds",
				Help:    "Time the Oblivious HTTP " + what + " took to answer a request, by " + label + ".",
				Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9)}, []string{label}),
		}
		d.requests.WithLabelValues(string(ohttp.OutcomeOK))
		reg.MustRegister(d.requests, d.seconds)
		return d
	}
	return door("gateway", "gateway (/.well-known/ohttp-gateway)", "method"),
		door("relay", "relay (/v1/ohttp-relay/<domain>)", "target")
}

func (d *ohttpDoor) observe(o ohttp.Outcome, _ error) { d.requests.WithLabelValues(string(o)).Inc() }

// time wraps h to observe how long each request took, under the label value that
// label gives the request.
func (d *ohttpDoor) time(h http.Handler, label func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		h.ServeHTTP(w, r)
		d.seconds.WithLabelValues(label(r)).Observe(time.Since(start).Seconds())
	})
}

// methodLabel bounds the method label: GET, HEAD, POST or other.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost:
		return m
	}
	return "other"
}

// relayTarget names where a relay request goes: local (our own domain, served in
// process), peer (a configured peer) or unknown (refused).
func relayTarget(cfg Config) func(*http.Request) string {
	peers := make(map[string]bool, len(cfg.Peers))
	for _, p := range cfg.Peers {
		peers[p.Domain] = true
	}
	return func(r *http.Request) string {
		switch d := strings.ToLower(strings.TrimPrefix(r.URL.Path, RelayPathPrefix)); {
		case d == cfg.Domain:
			return "local"
		case peers[d]:
			return "peer"
		}
		return "unknown"
	}
}
