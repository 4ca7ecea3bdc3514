package server

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsgate/wsgate/redisq"
)

// queueWatch samples the depth of every queue the gateway submits to (not per request: one pipeline per
// queue per interval), exports it as metrics, and notices a queue that nobody serves: jobs waiting longer than
// noWorkerAfter while no Go worker's heartbeat is alive. Perl workers send no heartbeats, so a queue they serve
// counts as unserved only when its jobs also sit unserved that long.
type queueWatch struct {
	interval, noWorkerAfter time.Duration
	log                     *slog.Logger
	queues                  map[string]*redisq.Inspector

	mu        sync.Mutex
	samples   map[string]redisq.QueueStats
	sampled   time.Time
	unserved  map[string]time.Time // queue → when its warning was last logged
	errs      uint64
	lastError error
}

func newQueueWatch(cfg Config, log *slog.Logger, inspectors map[string]*redisq.Inspector) *queueWatch {
	return &queueWatch{interval: cfg.QueueWatch.Interval, noWorkerAfter: cfg.QueueWatch.NoWorkerAfter, log: log,
		queues: inspectors, samples: map[string]redisq.QueueStats{}, unserved: map[string]time.Time{}}
}

// run samples until ctx ends.
func (w *queueWatch) run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		w.sample(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (w *queueWatch) sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, w.interval)
	defer cancel()
	now := time.Now()
	for name, in := range w.queues {
		st, err := in.Stats(ctx)
		w.mu.Lock()
		if err != nil {
			w.errs++
			w.lastError = err
			w.mu.Unlock()
			if ctx.Err() == nil {
				w.log.Debug("queue sample failed", "queue", name, "err", err)
			}
			continue
		}
		w.samples[name], w.sampled = st, now
		problem := w.unservedProblem(st)
		last, warned := w.unserved[name]
		switch {
		case problem == "":
			if warned {
				delete(w.unserved, name)
				w.mu.Unlock()
				w.log.Info("queue served again", "queue", name, "pending", st.Pending+st.Simple)
				continue
			}
		case !warned || now.Sub(last) >= time.Minute: // warn at once, then once a minute while it lasts
			w.unserved[name] = now
			w.mu.Unlock()
			w.log.Warn("no worker is taking jobs from a queue: requests will time out", "queue", name,
				"list", st.Queue, "pending", st.Pending+st.Simple, "oldest_ms", st.OldestPendingAge.Milliseconds(),
				"live_workers", st.LiveWorkers, "hint", "start workers on this queue (wsgate queue stats shows it)")
			continue
		}
		w.mu.Unlock()
	}
}

// unservedProblem describes why a sampled queue counts as unserved, or is "".
func (w *queueWatch) unservedProblem(st redisq.QueueStats) string {
	waiting := st.Pending + st.Simple
	if w.noWorkerAfter < 0 || waiting == 0 || st.LiveWorkers > 0 || st.OldestPendingAge < w.noWorkerAfter {
		return ""
	}
	return fmt.Sprintf("%d jobs waiting, the oldest for %s, and no live worker", waiting,
		st.OldestPendingAge.Round(time.Second))
}

// problems lists the unserved queues as of the last sample, sorted.
func (w *queueWatch) problems() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for name, st := range w.samples {
		if p := w.unservedProblem(st); p != "" {
			out = append(out, "queue "+name+": "+p)
		}
	}
	sort.Strings(out)
	return out
}

// Describe and Collect make the latest samples Prometheus gauges, labelled by queue.
var (
	queueDepthDesc = prometheus.NewDesc("wsgate_queue_jobs", "Jobs on a queue's lists at the last sample, by list (pending, simple, processing, dead).",
		[]string{"queue", "list"}, nil)
	queueOldestDesc = prometheus.NewDesc("wsgate_queue_oldest_pending_seconds", "How long the next job in line had waited at the last sample.",
		[]string{"queue"}, nil)
	queueWorkersDesc = prometheus.NewDesc("wsgate_queue_live_workers", "Go workers whose heartbeat was alive at the last sample (Perl workers send none).",
		[]string{"queue"}, nil)
	queueRateDesc = prometheus.NewDesc("wsgate_queue_jobs_per_second", "Jobs finished per second by Go workers over the last minute, at the last sample.",
		[]string{"queue"}, nil)
	queueUnservedDesc = prometheus.NewDesc("wsgate_queue_unserved", "1 when jobs have waited too long on a queue that no live worker serves.",
		[]string{"queue"}, nil)
	queueSampleErrorsDesc = prometheus.NewDesc("wsgate_queue_sample_errors_total", "Queue samples that failed (Redis unreachable).", nil, nil)
)

func (w *queueWatch) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{queueDepthDesc, queueOldestDesc, queueWorkersDesc, queueRateDesc,
		queueUnservedDesc, queueSampleErrorsDesc} {
		ch <- d
	}
}

func (w *queueWatch) Collect(ch chan<- prometheus.Metric) {
	w.mu.Lock()
	defer w.mu.Unlock()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for name, st := range w.samples {
		gauge(queueDepthDesc, float64(st.Pending), name, "pending")
		gauge(queueDepthDesc, float64(st.Simple), name, "simple")
		gauge(queueDepthDesc, float64(st.Processing), name, "processing")
		gauge(queueDepthDesc, float64(st.Dead), name, "dead")
		gauge(queueOldestDesc, st.OldestPendingAge.Seconds(), name)
		gauge(queueWorkersDesc, float64(st.LiveWorkers), name)
		gauge(queueRateDesc, st.JobsPerSecond, name)
		unserved := 0.0
		if w.unservedProblem(st) != "" {
			unserved = 1
		}
		gauge(queueUnservedDesc, unserved, name)
	}
	ch <- prometheus.MustNewConstMetric(queueSampleErrorsDesc, prometheus.CounterValue, float64(w.errs))
}

// readyNote is what /readyz adds to its body: the unserved queues, one a line.
func (w *queueWatch) readyNote() string {
	p := w.problems()
	if len(p) == 0 {
		return ""
	}
	return "warning: " + strings.Join(p, "\nwarning: ") + "\n"
}
