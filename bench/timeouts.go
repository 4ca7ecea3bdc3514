package main

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// TimeoutsResult is the outcome of the timeouts scenario.
type TimeoutsResult struct {
	Scenario          string     `json:"scenario"`
	Jobs              int        `json:"jobs"`
	Timeout           float64    `json:"queue_timeout_s"`
	Answered          int64      `json:"answered_request_timeout"`
	Other             int64      `json:"other_replies"`
	EarliestMs        float64    `json:"earliest_after_timeout_ms"`
	P50LateMs         float64    `json:"p50_after_timeout_ms"`
	P99LateMs         float64    `json:"p99_after_timeout_ms"`
	MaxLateMs         float64    `json:"max_after_timeout_ms"`
	Before            procSample `json:"before"`
	WhilePending      procSample `json:"while_pending"`
	HeapPerPendingJob float64    `json:"heap_bytes_per_pending_job"`
	RSSPerPendingJob  float64    `json:"rss_bytes_per_pending_job"`
}

// runTimeouts submits many jobs with no worker running: every one must come back as RequestTimeout, on time.
// It measures how late the timeouts fire (the timing wheel's accuracy) and the gateway's memory per pending job.
func runTimeouts(args []string) error {
	fs := flag.NewFlagSet("timeouts", flag.ContinueOnError)
	jobs := fs.Int("jobs", 20000, "jobs left pending")
	conns := fs.Int("conns", 200, "connections they come from")
	timeout := fs.Duration("timeout", 10*time.Second, "QUEUE_TIMEOUT")
	out := fs.String("out", "bench/out", "directory for results")
	if err := fs.Parse(args); err != nil {
		return err
	}
	os.MkdirAll(*out, 0o755)
	st, cleanup, err := newStack(stackConfig{workers: 0, mode: "reliable",
		env: []string{fmt.Sprintf("QUEUE_TIMEOUT=%g", timeout.Seconds())}, gatewayArgs: []string{"--compression=false"}})
	if err != nil {
		return err
	}
	defer cleanup()
	time.Sleep(500 * time.Millisecond)
	before, err := sampleGateway(st.gateway.pid(), st.adminAddr)
	if err != nil {
		return err
	}
	l, err := dialLoad(st.wsURL, *conns, 15000, "ping", false)
	if err != nil {
		return err
	}
	defer l.closeAll()
	l.action = "ping"
	// Replies are RequestTimeout errors: count them and how late they come, from req_id (the send time).
	lateness := newLatenessRecorder(*timeout)
	l.onError = lateness.record
	l.start = time.Now()
	l.record.Store(true)
	perConn := *jobs / *conns
	for k := 0; k < perConn; k++ {
		for _, c := range l.conns {
			l.send(c, l.micros(time.Now()))
		}
	}
	time.Sleep(*timeout / 2)
	pending, err := sampleGateway(st.gateway.pid(), st.adminAddr)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(*timeout + 30*time.Second)
	for lateness.count() < int64(perConn**conns) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	res := lateness.result()
	res.Scenario, res.Jobs, res.Timeout = "timeouts", perConn**conns, timeout.Seconds()
	res.Before, res.WhilePending = before, pending
	res.HeapPerPendingJob = float64(pending.HeapInuse-before.HeapInuse) / float64(res.Jobs)
	res.RSSPerPendingJob = float64(pending.RSSBytes-before.RSSBytes) / float64(res.Jobs)
	fmt.Printf("%d jobs pending on %d connections, QUEUE_TIMEOUT %v, no worker:\n", res.Jobs, *conns, *timeout)
	fmt.Printf("  RequestTimeout replies: %d (other replies %d)\n", res.Answered, res.Other)
	fmt.Printf("  after the timeout: earliest %.1f ms, p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		res.EarliestMs, res.P50LateMs, res.P99LateMs, res.MaxLateMs)
	fmt.Printf("  gateway memory per pending job (connections included): heap %.0f B, RSS %.0f B\n",
		res.HeapPerPendingJob, res.RSSPerPendingJob)
	return writeJSON(filepath.Join(*out, "timeouts.json"), res)
}

var requestTimeout = []byte(`"RequestTimeout"`)

func (r *latenessRecorder) record(payload []byte, sentMicros, nowMicros int64) {
	if !bytes.Contains(payload, requestTimeout) {
		r.other.Add(1)
		return
	}
	r.add(nowMicros - sentMicros)
}

// latenessRecorder collects how long after QUEUE_TIMEOUT each RequestTimeout arrived.
type latenessRecorder struct {
	mu       sync.Mutex
	timeout  int64 // µs
	hist     *hdrhistogram.Histogram
	earliest int64
	n, other atomic.Int64
}

func newLatenessRecorder(timeout time.Duration) *latenessRecorder {
	return &latenessRecorder{timeout: timeout.Microseconds(), hist: hdrhistogram.New(1, 600_000_000, 3),
		earliest: math.MaxInt64}
}

func (r *latenessRecorder) add(latencyMicros int64) {
	late := latencyMicros - r.timeout
	r.mu.Lock()
	r.earliest = min(r.earliest, late) // negative would mean a timeout fired early
	_ = r.hist.RecordValue(max(late, 1))
	r.mu.Unlock()
	r.n.Add(1)
}

func (r *latenessRecorder) count() int64 { return r.n.Load() }

func (r *latenessRecorder) result() TimeoutsResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	ms := func(us int64) float64 { return float64(us) / 1000 }
	res := TimeoutsResult{Answered: r.n.Load(), Other: r.other.Load(), P50LateMs: ms(r.hist.ValueAtQuantile(50)),
		P99LateMs: ms(r.hist.ValueAtQuantile(99)), MaxLateMs: ms(r.hist.Max())}
	if r.n.Load() > 0 {
		res.EarliestMs = ms(r.earliest)
	}
	return res
}
