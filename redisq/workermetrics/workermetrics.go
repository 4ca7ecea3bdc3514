// Package workermetrics measures a redisq.Worker for Prometheus: jobs run and failed, how long they take, how
// many run at once, and how long the worker waits for work. It is kept out of redisq so that the queue
// library does not depend on Prometheus.
package workermetrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsgate/wsgate/redisq"
)

// Metrics are one worker's metrics (namespace wsgate_worker).
type Metrics struct {
	jobs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

// New registers the metrics on reg. stats, if not nil, is read at each scrape for what only the worker knows
// (fetch wait, skipped and requeued jobs); pass the worker's Stats method once the worker exists.
func New(reg prometheus.Registerer, stats func() redisq.WorkerStats) (*Metrics, error) {
	m := &Metrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "wsgate_worker", Name: "jobs_total",
			Help: "Jobs run, by job name and outcome (ok or failed)."}, []string{"name", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "wsgate_worker", Name: "job_duration_seconds",
			Help:    "Time a handler took, by job name.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5, 10, 30, 60, 300}}, []string{"name"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "wsgate_worker", Name: "jobs_in_flight",
			Help: "Jobs running now."}),
	}
	cs := []prometheus.Collector{m.jobs, m.duration, m.inFlight}
	if stats != nil {
		counter := func(name, help string, f func(redisq.WorkerStats) float64) prometheus.Collector {
			return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "wsgate_worker", Name: name, Help: help},
				func() float64 { return f(stats()) })
		}
		cs = append(cs,
			counter("fetch_wait_seconds_total", "Time spent waiting for a job with a free slot (idle).",
				func(s redisq.WorkerStats) float64 { return s.FetchWait.Seconds() }),
			counter("skipped_total", "Jobs skipped: cancelled, expired, or gone before they could run.",
				func(s redisq.WorkerStats) float64 { return float64(s.Skipped) }),
			counter("requeued_total", "Jobs of dead workers this worker's reaper put back on the queue.",
				func(s redisq.WorkerStats) float64 { return float64(s.Requeued) }),
			counter("dead_lettered_total", "Jobs this worker's reaper moved to the dead-letter list.",
				func(s redisq.WorkerStats) float64 { return float64(s.DeadLettered) }),
		)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Middleware measures every job that passes through it; put it first in redisq.Chain.
func (m *Metrics) Middleware() redisq.Middleware {
	return func(next redisq.Handler) redisq.Handler {
		return redisq.HandlerFunc(func(ctx context.Context, job *redisq.Job) (redisq.Result, error) {
			name := job.Text("name")
			if name == "" {
				name = "none"
			}
			m.inFlight.Inc()
			start := time.Now()
			res, err := next.ServeJob(ctx, job)
			m.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
			m.inFlight.Dec()
			outcome := "ok"
			if err != nil {
				outcome = "failed"
			}
			m.jobs.WithLabelValues(name, outcome).Inc()
			return res, err
		})
	}
}
