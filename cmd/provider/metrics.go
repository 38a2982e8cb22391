package provider

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mimids/mimids/directory"
	"github.com/mimids/mimids/directory/mailbox"
	"github.com/mimids/mimids/hub"
	"github.com/mimids/mimids/natsbus"
	"github.com/mimids/mimids/protocol"
)

// mailboxMetrics counts committed mailbox entries: this process's own through the
// mailbox, those of the admin CLI through the change log (Provider.onChange), which
// every node of a cluster reads: cli counts the CLI's in
// mimids_mailbox_enqueued_cli_total, and also in mimids_mailbox_enqueued_total
// unless clustered, so that summing enqueued_total over the nodes counts each
// entry once.
func mailboxMetrics(reg prometheus.Registerer, clustered bool) (m mailbox.Metrics, cli func(n int)) {
	enq := prometheus.NewCounter(prometheus.CounterOpts{Name: "mimids_mailbox_enqueued_total",
		Help: "Mailbox entries committed: by this node, and by the admin CLI unless the node is one of several."})
	enqCLI := prometheus.NewCounter(prometheus.CounterOpts{Name: "mimids_mailbox_enqueued_cli_total",
		Help: "Mailbox entries the admin CLI committed (every node of a cluster counts each one)."})
	full := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mimids_mailbox_full_total",
		Help: "Mailbox entries refused because the recipient's mailbox was at its quota, by kind."}, []string{"kind"})
	reg.MustRegister(enq, enqCLI, full)
	cli = func(n int) {
		enqCLI.Add(float64(n))
		if !clustered {
			enq.Add(float64(n))
		}
	}
	return mailbox.Metrics{Enqueued: func(n int) { enq.Add(float64(n)) },
		Full: func(kind uint16, n int) { full.WithLabelValues(protocol.Kind(kind).String()).Add(float64(n)) }}, cli
}

// keyPackageMetrics counts uploaded KeyPackages, stored and signature-checked.
func keyPackageMetrics(reg prometheus.Registerer) directory.KeyPackageMetrics {
	up := prometheus.NewCounter(prometheus.CounterOpts{Name: "mimids_key_packages_uploaded_total",
		Help: "KeyPackages stored by uploads."})
	ver := prometheus.NewCounter(prometheus.CounterOpts{Name: "mimids_key_packages_verified_total",
		Help: "Uploaded KeyPackages whose signatures were verified (refusals found earlier verify none)."})
	reg.MustRegister(up, ver)
	return directory.KeyPackageMetrics{Uploaded: func(n int) { up.Add(float64(n)) }, Verified: func(n int) { ver.Add(float64(n)) }}
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
		counter("mimids_hub_catch_ups_total", "Partition states brought up to handshakes other nodes sequenced.", func(s hub.Stats) int64 { return s.CatchUps }),
		counter("mimids_hub_rechecks_total", "Handshakes checked again because another node sequenced one to the partition meanwhile.", func(s hub.Stats) int64 { return s.Rechecks }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mimids_hub_cached_states", Help: "Partition states in memory."},
			func() float64 { return float64(h.Stats().CachedStates) }),
	)
}

// registerClusterMetrics exports the NATS bus's counters (a node of several).
func registerClusterMetrics(reg prometheus.Registerer, b *natsbus.Bus) {
	counter := func(name, help string, v func(natsbus.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(b.Stats())) })
	}
	reg.MustRegister(
		counter("mimids_cluster_published_total", "Notifications published to the other nodes.", func(s natsbus.Stats) int64 { return s.Published }),
		counter("mimids_cluster_publish_errors_total", "Notifications NATS refused (the others catch up from the store).", func(s natsbus.Stats) int64 { return s.PublishErrors }),
		counter("mimids_cluster_received_total", "Notifications received from the other nodes.", func(s natsbus.Stats) int64 { return s.Received }),
		counter("mimids_cluster_resyncs_total", "Times every subscriber refetched from the store (NATS reconnect or drop).", func(s natsbus.Stats) int64 { return s.Resyncs }),
		counter("mimids_cluster_poll_pokes_total", "Partitions the safety-net poll found ahead of what NATS announced.", func(s natsbus.Stats) int64 { return s.PollPokes }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mimids_cluster_nats_connected", Help: "1 while the node is connected to NATS."},
			func() float64 {
				if b.Health() == nil {
					return 1
				}
				return 0
			}),
	)
}
