package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
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
	reg.MustRegister(m.connected, m.accepted, m.closes, m.framesIn, m.framesOut, m.delivered, m.acked,
		m.requests, m.reqLatency)
	return m
}

// NewRegistry returns a Prometheus registry with the process and Go runtime collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())
	return reg
}
