package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mimids/mimids/gateway/conn"
)

type metrics struct {
	connected  prometheus.Gauge
	accepted   prometheus.Counter
	closes     *prometheus.CounterVec
	framesIn   *prometheus.CounterVec
	framesOut  prometheus.Counter
	delivered  prometheus.Counter
	acked      prometheus.Counter
	requests   *prometheus.CounterVec
	reqLatency prometheus.Histogram

	refused       *prometheus.CounterVec // sockets refused by a limit, by reason
	unauth        prometheus.Gauge
	refusedBodies prometheus.Counter

	// Partition catch-up: pages read from the store by a socket or by a topic
	// for all its sockets, and catch-ups served from a topic's recent frames.
	partReads *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		connected: prometheus.NewGauge(prometheus.GaugeOpts{Name: "mimids_sockets_connected",
			Help: "Client sockets currently authenticated."}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{Name: "mimids_sockets_accepted_total",
			Help: "Client sockets accepted (before authentication)."}),
		closes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mimids_socket_closes_total",
			Help: "Client sockets closed, by reason."}, []string{"reason"}),
		framesIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mimids_frames_received_total",
			Help: "Frames received from clients, by type."}, []string{"type"}),
		framesOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "mimids_frames_sent_total",
			Help: "Frames written to clients."}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "mimids_mailbox_delivered_total",
			Help: "Mailbox entries written to client sockets (redeliveries included)."}),
		acked: prometheus.NewCounter(prometheus.CounterOpts{Name: "mimids_mailbox_acks_total",
			Help: "Mailbox acknowledgements committed."}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mimids_requests_total",
			Help: "Client requests answered, by method and result code."}, []string{"method", "code"}),
		reqLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mimids_request_seconds",
			Help: "Time to answer a client request.", Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9)}),
	}
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mimids_sockets_refused_total",
		Help: "Client sockets refused by a limit, by reason: too_many_sockets_client, too_many_sockets_user " +
			"(closed 4009 after auth), unauthenticated_total (HTTP 503), unauthenticated_per_address (HTTP 429)."}, []string{"reason"})
	for _, r := range []string{refusedClient, refusedUser, refusedUnauthTotal, refusedUnauthPerAddr} {
		m.refused.WithLabelValues(r)
	}
	m.unauth = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mimids_sockets_unauthenticated",
		Help: "Client sockets accepted and not yet authenticated."})
	m.refusedBodies = prometheus.NewCounter(prometheus.CounterOpts{Name: "mimids_http_bodies_refused_total",
		Help: "HTTP requests refused with 413 because their body is over http.max_body_bytes."})
	m.partReads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mimids_partition_catchups_total",
		Help: "Partition catch-ups: pages read from the store by one socket (socket_read), by a topic for every socket (topic_read) or as a shared page for every socket behind (page_read), and catch-ups served from a topic's recent frames (recent) or from a shared page another socket read (page)."},
		[]string{"source"})
	reg.MustRegister(m.connected, m.accepted, m.closes, m.framesIn, m.framesOut, m.delivered, m.acked,
		m.requests, m.reqLatency, m.refused, m.unauth, m.refusedBodies, m.partReads)
	return m
}

// queueGauges exports the send queue budget of every socket: what is queued now
// and the limit.
func (m *metrics) queueGauges(reg prometheus.Registerer, total *conn.Budget) {
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mimids_socket_queued_bytes",
			Help: "Bytes queued for client sockets (waiting or being written), a frame shared by several queues counted in each."},
			func() float64 { return float64(total.Used()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "mimids_socket_queue_budget_bytes",
			Help: "The budget of mimids_socket_queued_bytes (total_queue_bytes); past it the largest queues are closed (4010)."},
			func() float64 { return float64(total.Limit()) }))
}

// NewRegistry returns a Prometheus registry with the process and Go runtime collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return reg
}
