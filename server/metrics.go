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
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsgate", Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "wsgate", Name: name, Help: help}, f)
	}
	st := func() Stats { return g.Stats() }
	collectors := []prometheus.Collector{
		m.requests, m.latency, g.watch,
		gauge("connections", "Open WebSocket connections.", func() float64 { return float64(st().Transport.Connections) }),
		counter("connections_accepted_total", "Upgraded connections.", func() float64 { return float64(st().Transport.Accepted) }),
		counter("connections_rejected_total", "Failed or refused upgrades.", func() float64 { return float64(st().Transport.Rejected) }),
		counter("connections_refused_no_fd_total", "Upgrades refused with 503 for want of file descriptors (fd_reserve).",
			func() float64 { return float64(st().Transport.NoFDs) }),
		counter("slow_consumer_disconnects_total", "Clients closed because their write queue was full.",
			func() float64 { return float64(st().Transport.SlowConsumers) }),
		counter("write_timeout_disconnects_total", "Clients closed because they did not read for the write timeout.",
			func() float64 { return float64(st().Transport.WriteTimeouts) }),
		counter("protocol_errors_total", "Connections closed for WebSocket protocol errors.",
			func() float64 { return float64(st().Transport.ProtocolErrors) }),
		gauge("buffered_bytes", "Bytes held in unfinished client messages and write queues (against the buffer budget).",
			func() float64 { return float64(st().Transport.Buffered) }),
		counter("buffer_budget_disconnects_total", "Clients closed to keep buffered bytes under the budget.",
			func() float64 { return float64(st().Transport.BudgetEvictions) }),
		counter("message_timeout_disconnects_total", "Clients closed for not finishing a message within the message timeout.",
			func() float64 { return float64(st().Transport.MessageTimeouts) }),
		gauge("pending_jobs", "Jobs submitted and waiting for their result.", func() float64 { return float64(st().Registry.Pending) }),
		counter("job_timeouts_total", "Jobs answered RequestTimeout.", func() float64 { return float64(st().Registry.TimedOut) }),
		counter("late_results_total", "Results that arrived after their request was answered or its connection closed.",
			func() float64 { return float64(st().Queue.Late + st().Registry.Late) }),
		counter("redis_errors_total", "Jobs that could not be submitted to Redis.", func() float64 { return float64(st().Queue.SubmitErrors) }),
		counter("jobs_lost_total", "Pending jobs found gone from Redis (restart without persistence).",
			func() float64 { return float64(st().Queue.Lost) }),
		counter("redis_resubscribes_total", "Pub/sub re-subscriptions after a dropped connection.",
			func() float64 { return float64(st().Queue.Resubscribed) }),
	}
	collectors = append(collectors, g.tlsCollectors()...)
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
