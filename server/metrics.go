package server

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus metrics (namespace wsgate). Counters that the parts already keep are
// exported as functions of their stats, so the hot path pays only for the per-request outcome and latency.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	// answered and latencySum (nanoseconds) feed the console's requests/s and mean latency.
	answered, latencySum atomic.Uint64
}

// RequestDone implements actors.Observer.
func (m *metrics) RequestDone(action, outcome string, d time.Duration) {
	if action == "" {
		action = "none"
	}
	m.requests.WithLabelValues(action, outcome).Inc()
	m.answered.Add(1)
	if d > 0 {
		m.latencySum.Add(uint64(d))
		m.latency.WithLabelValues(action).Observe(d.Seconds())
	}
}

func newMetrics(reg prometheus.Registerer, g *Gateway) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "wsgate", Name: "requests_total",
			Help: "Requests answered, by action and outcome (ok, rpc_error, local, timeout, wrong_response, rate_limit, bad_request, too_large, draining)."},
			[]string{"action", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "wsgate", Name: "request_duration_seconds",
			Help:    "Time from a request's arrival to its reply, by action.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}},
			[]string{"action"}),
	}
	collectors := []prometheus.Collector{m.requests, m.latency, g.watch, newStatsCollector(g.Stats)}
	collectors = append(collectors, g.tlsCollectors()...)
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// statMetric is one metric read from the gateway's Stats.
type statMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(Stats) float64
}

// statsCollector exports the counters the parts already keep. A scrape reads Stats once and derives every
// metric from that one reading (Stats takes the transport's lock and asks every queue client).
type statsCollector struct {
	stats   func() Stats
	metrics []statMetric
}

func newStatsCollector(stats func() Stats) *statsCollector {
	c := &statsCollector{stats: stats}
	add := func(kind prometheus.ValueType, name, help string, value func(Stats) float64) {
		c.metrics = append(c.metrics, statMetric{
			desc: prometheus.NewDesc(prometheus.BuildFQName("wsgate", "", name), help, nil, nil), kind: kind,
			value: value})
	}
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	add(gauge, "connections", "Open WebSocket connections.", func(st Stats) float64 { return float64(st.Transport.Connections) })
	add(counter, "connections_accepted_total", "Upgraded connections.", func(st Stats) float64 { return float64(st.Transport.Accepted) })
	add(counter, "connections_rejected_total", "Failed or refused upgrades.", func(st Stats) float64 { return float64(st.Transport.Rejected) })
	add(counter, "connections_refused_no_fd_total", "Upgrades refused with 503 for want of file descriptors (fd_reserve).",
		func(st Stats) float64 { return float64(st.Transport.NoFDs) })
	add(counter, "slow_consumer_disconnects_total", "Clients closed because their write queue was full.",
		func(st Stats) float64 { return float64(st.Transport.SlowConsumers) })
	add(counter, "write_timeout_disconnects_total", "Clients closed because they did not read for the write timeout.",
		func(st Stats) float64 { return float64(st.Transport.WriteTimeouts) })
	add(counter, "tls_handshake_errors_total", "Failed TLS handshakes on the WebSocket listener (plain HTTP, bad certificates, scanners).",
		func(st Stats) float64 { return float64(st.Transport.TLSHandshakeErrors) })
	add(counter, "protocol_errors_total", "Connections closed for WebSocket protocol errors.",
		func(st Stats) float64 { return float64(st.Transport.ProtocolErrors) })
	add(gauge, "buffered_bytes", "Bytes held in unfinished client messages and write queues (against the buffer budget).",
		func(st Stats) float64 { return float64(st.Transport.Buffered) })
	add(counter, "buffer_budget_disconnects_total", "Clients closed to keep buffered bytes under the budget.",
		func(st Stats) float64 { return float64(st.Transport.BudgetEvictions) })
	add(counter, "message_timeout_disconnects_total", "Clients closed for not finishing a message within the message timeout.",
		func(st Stats) float64 { return float64(st.Transport.MessageTimeouts) })
	add(gauge, "lingering_sockets", "Sockets closed by the server that wait for their client to close its side (linger_timeout).",
		func(st Stats) float64 { return float64(st.Transport.Lingering) })
	add(counter, "linger_timeouts_total", "Lingering sockets closed at linger_timeout, their client not having closed its side.",
		func(st Stats) float64 { return float64(st.Transport.LingerTimeouts) })
	add(counter, "linger_overflows_total", "Sockets closed at once, without lingering, because the most allowed were lingering.",
		func(st Stats) float64 { return float64(st.Transport.LingerOverflows) })
	add(gauge, "sessions_passivated", "Open connections whose idle session has no actor now (passivate_after).",
		func(st Stats) float64 { return float64(st.Sessions.Passivated) })
	add(counter, "session_passivations_total", "Idle sessions that stopped their actor.",
		func(st Stats) float64 { return float64(st.Sessions.Passivations) })
	add(counter, "session_resumes_total", "Passivated sessions started again by a message.",
		func(st Stats) float64 { return float64(st.Sessions.Resumes) })
	add(gauge, "pending_jobs", "Jobs submitted and waiting for their result.", func(st Stats) float64 { return float64(st.Registry.Pending) })
	add(counter, "job_timeouts_total", "Jobs answered RequestTimeout.", func(st Stats) float64 { return float64(st.Registry.TimedOut) })
	add(counter, "late_results_total", "Results that arrived after their request was answered or its connection closed.",
		func(st Stats) float64 { return float64(st.Queue.Late + st.Registry.Late) })
	add(counter, "redis_errors_total", "Jobs that could not be submitted to Redis.", func(st Stats) float64 { return float64(st.Queue.SubmitErrors) })
	add(counter, "jobs_lost_total", "Pending jobs found gone from Redis (restart without persistence).",
		func(st Stats) float64 { return float64(st.Queue.Lost) })
	add(counter, "redis_resubscribes_total", "Pub/sub re-subscriptions after a dropped connection.",
		func(st Stats) float64 { return float64(st.Queue.Resubscribed) })
	return c
}

// Describe implements prometheus.Collector.
func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range c.metrics {
		ch <- m.desc
	}
}

// Collect implements prometheus.Collector: one Stats reading per scrape.
func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.stats()
	for _, m := range c.metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(st))
	}
}
