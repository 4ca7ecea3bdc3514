package redisq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/runner"
)

// Handler runs one job. It is shaped like net/http's Handler: the worker calls ServeJob for every job it takes,
// from several goroutines at once (WorkerConfig.Concurrency). A returned error is written back as a failure, so
// the caller learns of it at once. In reliable mode a job may run more than once (its worker died mid-job):
// Job.ID and Job.Deliveries make idempotence easy.
type Handler interface {
	ServeJob(ctx context.Context, job *Job) (Result, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, job *Job) (Result, error)

// ServeJob calls f.
func (f HandlerFunc) ServeJob(ctx context.Context, job *Job) (Result, error) { return f(ctx, job) }

// Middleware wraps a Handler, as net/http middleware does.
type Middleware func(Handler) Handler

// Chain applies middleware so that the first one listed runs first.
func Chain(h Handler, mw ...Middleware) Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// Router sends each job to the handler registered for its `name` field (the JobAsync convention), like
// net/http's ServeMux. A job whose name has no handler fails.
type Router struct {
	handlers map[string]Handler
	// NotFound handles jobs with an unknown name; nil means they fail with ErrUnknownJob.
	NotFound Handler
}

// ErrUnknownJob is the failure of a job that no handler is registered for.
var ErrUnknownJob = errors.New("redisq: no handler for job")

// NewRouter returns an empty Router.
func NewRouter() *Router { return &Router{handlers: make(map[string]Handler)} }

// Handle registers h for jobs named name.
func (r *Router) Handle(name string, h Handler) { r.handlers[name] = h }

// HandleFunc registers f for jobs named name.
func (r *Router) HandleFunc(name string, f func(ctx context.Context, job *Job) (Result, error)) {
	r.Handle(name, HandlerFunc(f))
}

// ServeJob dispatches the job by name.
func (r *Router) ServeJob(ctx context.Context, job *Job) (Result, error) {
	name := job.Text("name")
	if h, ok := r.handlers[name]; ok {
		return h.ServeJob(ctx, job)
	}
	if r.NotFound != nil {
		return r.NotFound.ServeJob(ctx, job)
	}
	return Result{}, fmt.Errorf("%w %q", ErrUnknownJob, name)
}

// WorkerConfig configures a Worker. Each field's zero value means the default named in its comment.
type WorkerConfig struct {
	// Redis is the connection; required. Each fetch loop holds one pooled connection in its blocking fetch
	// and needs another to answer, so the pool should hold at least 2×Concurrency connections (NewWorker
	// warns when a *redis.Client's pool is smaller; WorkerRedisOptions sets it).
	Redis redis.UniversalClient
	// Mode must match the clients'; "" means DefaultMode (reliable, the Perl protocol).
	Mode Mode
	// Keys names the queue; the zero value is the Perl default `jobs::pending`.
	Keys Keys
	// Handler runs the jobs; required.
	Handler Handler
	// Concurrency is how many jobs run at once; 0 means 16.
	Concurrency int
	// Fetchers is how many goroutines wait for jobs (each holds one Redis connection in a blocking fetch);
	// 0 means min(4, Concurrency).
	Fetchers int
	// FetchBatch bounds the jobs one fetch takes (and the jobs whose results share one pipeline); 0 means 32.
	FetchBatch int
	// PollTimeout is the blocking wait of one fetch; 0 means 3 s, as the Perl worker. Shutdown ends the wait at
	// once (CLIENT UNBLOCK, unblock.go), except on Redis Cluster, where it may wait this long.
	PollTimeout time.Duration
	// Multi wraps the writes that answer a job in MULTI/EXEC (the Perl worker's use_multi).
	Multi bool
	// WorkerID names the worker's heartbeat key; "" means a new random ID.
	WorkerID string
	// Heartbeat is how often a reliable-mode worker proves it is alive; its key expires after 3 beats. 0 means 2 s.
	Heartbeat time.Duration
	// ReapInterval is how often a reliable-mode worker looks for jobs of dead workers; 0 means Heartbeat.
	ReapInterval time.Duration
	// MaxDeliveries is how many times a job is handed to a worker before it goes to the dead-letter list
	// (`<prefix>::dead`) and its caller gets a failure; 0 means 5.
	MaxDeliveries int
	// OrphanTimeout (reliable mode) requeues, like a dead worker's job, an ID that sat in `processing` for
	// longer with a `_started` time but no `_worker` lease: taken by a worker that sends no heartbeats (a Perl
	// worker) and, presumably, died. A job that runs longer than this on a live Perl worker runs twice (see
	// PROTOCOL.md), so set it well above the slowest Perl job. 0 means off: such IDs are left alone (the Perl
	// workers' at-most-once behaviour). IDs that were moved but never marked are requeued after three
	// heartbeats either way (orphans.go).
	OrphanTimeout time.Duration
	// MaxDeadLetters bounds the dead-letter list (the newest are kept); 0 means 10,000.
	MaxDeadLetters int
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Validate reports a configuration error.
func (c *WorkerConfig) Validate() error {
	if c.Redis == nil {
		return errors.New("redisq: WorkerConfig.Redis is required")
	}
	if c.Handler == nil {
		return errors.New("redisq: WorkerConfig.Handler is required")
	}
	if _, err := ParseMode(string(c.Mode)); err != nil {
		return err
	}
	if c.Concurrency < 0 || c.PollTimeout < 0 || c.Heartbeat < 0 || c.ReapInterval < 0 || c.MaxDeliveries < 0 ||
		c.MaxDeadLetters < 0 || c.OrphanTimeout < 0 {
		return errors.New("redisq: WorkerConfig numbers must not be negative")
	}
	if _, cluster := c.Redis.(*redis.ClusterClient); cluster {
		if m, _ := ParseMode(string(c.Mode)); m == ModeReliable && !c.Keys.hashTagged() {
			return errors.New("redisq: reliable mode on Redis Cluster needs a prefix with a hash tag, such as " +
				"\"{jobs}\", so that the pending and processing lists share a slot")
		}
		if c.Multi {
			return errors.New("redisq: Multi does not work on Redis Cluster (a job's keys are in different slots)")
		}
	}
	return nil
}

// WorkerStats are counters of a Worker since it started.
type WorkerStats struct {
	Processed    uint64 // jobs answered with a result
	Failed       uint64 // jobs answered with a failure
	Skipped      uint64 // IDs whose hash was gone (cancelled or expired) or simple jobs past their expiry
	Requeued     uint64 // jobs of dead workers put back by this worker's reaper
	DeadLettered uint64
	// FetchWait is the time spent waiting for jobs with a free slot: high means idle workers, near zero with
	// jobs waiting means too few.
	FetchWait time.Duration
}

// Worker takes jobs from a queue and runs them.
type Worker struct {
	cfg     WorkerConfig
	log     *slog.Logger
	stop    chan struct{}
	once    sync.Once
	startMu sync.Mutex // Start and Shutdown's first step: a worker shut down never starts
	started bool
	slots   chan struct{}  // one per running job: bounds concurrency
	answers chan answer    // finished jobs, for the answerer
	done    chan struct{}  // closed when Shutdown has stopped everything
	wg      sync.WaitGroup // fetchers
	jobs    sync.WaitGroup // running jobs
	runners *runner.Pool   // the goroutines that run them, reused from job to job
	bg      sync.WaitGroup // answerer, heartbeat and reaper

	blocking  blockingSet   // client IDs of the fetchers' connections, for CLIENT UNBLOCK (unblock.go)
	otherPoll otherListPoll // the list this worker does not block on (lists.go)

	stats struct {
		sync.Mutex
		WorkerStats
	}
}

// NewWorker checks cfg and returns a Worker that is not running yet.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Mode, _ = ParseMode(string(cfg.Mode))
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 16
	}
	if cfg.Fetchers == 0 {
		cfg.Fetchers = min(4, cfg.Concurrency)
	}
	if cfg.FetchBatch == 0 {
		cfg.FetchBatch = 32
	}
	if cfg.PollTimeout == 0 {
		cfg.PollTimeout = 3 * time.Second
	}
	if cfg.WorkerID == "" {
		cfg.WorkerID = NewID()
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = 2 * time.Second
	}
	if cfg.ReapInterval == 0 {
		cfg.ReapInterval = cfg.Heartbeat
	}
	if cfg.MaxDeliveries == 0 {
		cfg.MaxDeliveries = 5
	}
	if cfg.MaxDeadLetters == 0 {
		cfg.MaxDeadLetters = 10000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Worker{cfg: cfg, stop: make(chan struct{}), slots: make(chan struct{}, cfg.Concurrency),
		answers: make(chan answer, cfg.Concurrency), done: make(chan struct{}), runners: runner.New(0),
		log: cfg.Logger.With("component", "redisq.worker", "worker_id", cfg.WorkerID)}
	w.blocking.ids = make(map[int64]struct{})
	if c, ok := cfg.Redis.(*redis.Client); ok && c.Options().PoolSize < cfg.Fetchers+4 {
		w.log.Warn("redis pool is smaller than fetchers+4: jobs will wait for connections",
			"pool_size", c.Options().PoolSize, "fetchers", cfg.Fetchers)
	}
	return w, nil
}

// WorkerRedisOptions sizes opts for a worker of the given concurrency: fetchers hold a connection each in
// their blocking fetch, and handlers may use the pool too.
func WorkerRedisOptions(opts *redis.Options, concurrency int) *redis.Options {
	opts.PoolSize = max(opts.PoolSize, concurrency+8)
	return opts
}

// ID is the worker's ID.
func (w *Worker) ID() string { return w.cfg.WorkerID }

// Stats returns the worker's counters.
func (w *Worker) Stats() WorkerStats {
	w.stats.Lock()
	defer w.stats.Unlock()
	return w.stats.WorkerStats
}

func (w *Worker) count(f func(*WorkerStats)) {
	w.stats.Lock()
	f(&w.stats.WorkerStats)
	w.stats.Unlock()
}

// ErrWorkerStopped is Start's error after Shutdown.
var ErrWorkerStopped = errors.New("redisq: worker is shut down")

// Start launches the fetchers, the answerer and the heartbeat (and in reliable mode the reaper) and returns.
// ctx bounds the first heartbeat. Safe to call twice (the second call does nothing); after Shutdown it fails.
func (w *Worker) Start(ctx context.Context) error {
	w.startMu.Lock()
	defer w.startMu.Unlock()
	if w.stopping() {
		return ErrWorkerStopped
	}
	if w.started {
		return nil
	}
	w.started = true
	w.beat(ctx) // alive before the first job is taken (every mode: operators count workers)
	w.bg.Add(1)
	go w.heartbeatLoop()
	if w.cfg.Mode == ModeReliable {
		w.bg.Add(1)
		go w.reapLoop()
	}
	w.bg.Add(1)
	go w.answerLoop()
	for i := 0; i < w.cfg.Fetchers; i++ {
		w.wg.Add(1)
		go w.fetchLoop()
	}
	return nil
}

// Run starts the worker and blocks until ctx ends, then shuts it down gracefully.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), w.cfg.PollTimeout+30*time.Second)
	defer cancel()
	return w.Shutdown(sctx)
}

// Shutdown stops taking new jobs, lets running jobs finish and writes their results, and waits for that, or
// for ctx; then it stops the heartbeat (deleting its key). Safe to call twice. Order: fetchers, running jobs,
// the answerer, heartbeat and reaper.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.once.Do(func() {
		w.startMu.Lock()
		close(w.stop)
		w.startMu.Unlock()
		fetched, unblocked := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(unblocked)
			w.unblockFetchers(fetched) // the blocking fetches end now, not after PollTimeout
		}()
		go func() {
			w.wg.Wait()
			close(fetched)
			<-unblocked
			w.jobs.Wait()
			_ = w.runners.Shutdown(context.Background()) // the jobs are done: it ends the waiting goroutines
			close(w.answers)
			w.bg.Wait()
			close(w.done)
		}()
	})
	select {
	case <-w.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	w.cfg.Redis.Del(context.Background(), w.cfg.Keys.heartbeat(w.cfg.WorkerID))
	w.cfg.Redis.ZRem(context.Background(), w.cfg.Keys.workers(), w.cfg.WorkerID)
	return nil
}

func (w *Worker) stopping() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

// sleep waits d or until Shutdown; it reports whether to go on.
func (w *Worker) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.stop:
		return false
	case <-t.C:
		return true
	}
}

// takeScript reads a job hash and, if it exists and is not cancelled, marks it started by this worker:
// HGETALL + HSET in one round trip; a cancelled job reads as a missing one. A single key, so it works on Redis
// Cluster too.
var takeScript = redis.NewScript(`
local h = redis.call('HGETALL', KEYS[1])
for i = 1, #h, 2 do
  if h[i] == '_cancelled' then return {} end
end
if #h == 0 then return h end
redis.call('HSET', KEYS[1], '_started', ARGV[1], '_worker', ARGV[2])
return h`)

// takeBatchScript is takeScript for several jobs at once (KEYS: their hashes), returning one reply per job:
// one script call per fetched batch instead of one per job, which is most of a take's cost in Redis. The
// hashes are in different Cluster slots, so on a cluster takeScript runs per job.
var takeBatchScript = redis.NewScript(`
local out = {}
for i = 1, #KEYS do
  local h = redis.call('HGETALL', KEYS[i])
  for j = 1, #h, 2 do
    if h[j] == '_cancelled' then h = {}; break end
  end
  if #h > 0 then redis.call('HSET', KEYS[i], '_started', ARGV[1], '_worker', ARGV[2]) end
  out[i] = h
end
return out`)

// updateScript sets fields of a job hash only if the hash exists (HSET would re-create an expired one, without
// a TTL). An empty value deletes the field.
var updateScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local set, del = {}, {}
for i = 1, #ARGV, 2 do
  if ARGV[i+1] == '' then del[#del+1] = ARGV[i] else set[#set+1] = ARGV[i]; set[#set+1] = ARGV[i+1] end
end
if #set > 0 then redis.call('HSET', KEYS[1], unpack(set)) end
if #del > 0 then redis.call('HDEL', KEYS[1], unpack(del)) end
return 1`)

// updateIfExists queues updateScript on p. EVALSHA in a pipeline fails if the script is not cached yet, so the
// script body goes with it (EVAL), which Redis caches by itself.
func updateIfExists(ctx context.Context, p redis.Pipeliner, id string, fieldsAndValues ...any) {
	updateScript.Eval(ctx, p, []string{JobKey(id)}, fieldsAndValues...)
}

// serve calls the handler and turns a panic into a failure, so that one bad job cannot kill the worker.
func (w *Worker) serve(ctx context.Context, job *Job) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			w.log.Error("job handler panicked", "job_id", job.ID, "panic", p, "stack", string(debug.Stack()))
			err = fmt.Errorf("redisq: handler panicked: %v", p)
		}
	}()
	return w.cfg.Handler.ServeJob(ctx, job)
}

// beat marks the worker alive for three heartbeats.
func (w *Worker) beat(ctx context.Context) {
	now, ttl := time.Now(), 3*w.cfg.Heartbeat
	_, err := w.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, w.cfg.Keys.heartbeat(w.cfg.WorkerID), epoch(now), ttl)
		w.cfg.Keys.registerWorker(ctx, p, w.cfg.WorkerID, now.Add(ttl))
		return nil
	})
	if err != nil {
		w.log.Warn("heartbeat failed", "err", err)
	}
}

func (w *Worker) heartbeatLoop() {
	defer w.bg.Done()
	for w.sleep(w.cfg.Heartbeat) {
		w.beat(context.Background())
	}
}

func (w *Worker) reapLoop() {
	defer w.bg.Done()
	for w.sleep(w.cfg.ReapInterval) {
		if err := w.Reap(context.Background()); err != nil {
			w.log.Warn("reap failed", "err", err)
		}
	}
}

// Reap requeues the jobs in `processing` whose worker is dead (its heartbeat key expired), counting a delivery
// each time, and moves a job that was delivered MaxDeliveries times to the dead-letter list, answering its
// caller with a failure. Jobs without a `_worker` field are orphans (orphans.go): requeued when never marked
// for three heartbeats, or, with OrphanTimeout, when taken by a Perl worker that long ago; otherwise left
// alone. Every reliable-mode worker runs it periodically; LREM decides which reaper wins a job.
func (w *Worker) Reap(ctx context.Context) error {
	rdb, keys := w.cfg.Redis, w.cfg.Keys
	ids, err := rdb.LRange(ctx, keys.Processing(), 0, -1).Result()
	if err != nil || len(ids) == 0 {
		return err
	}
	leases := make([]*redis.SliceCmd, len(ids))
	if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			leases[i] = p.HMGet(ctx, JobKey(id), fieldWorker, fieldDeliveries, fieldReplyTo, fieldStarted, fieldOrphanSeen,
				fieldCancelled)
		}
		return nil
	}); err != nil {
		return err
	}
	alive := map[string]bool{w.cfg.WorkerID: true}
	clock := &redisClock{rdb: rdb}
	for i, id := range ids {
		vals, _ := leases[i].Result()
		if len(vals) < 6 {
			continue
		}
		worker, _ := vals[0].(string)
		replyTo, exists := vals[2].(string)
		_, cancelled := vals[5].(string)
		if !exists || (cancelled && worker == "") { // expired or given up on, and not running: nobody waits
			rdb.LRem(ctx, keys.Processing(), 1, id)
			continue
		}
		live, known := alive[worker]
		switch {
		case worker == "": // no lease: see orphans.go
			orphan, err := w.orphaned(ctx, id, vals[3], vals[4], clock)
			if err != nil {
				return err
			}
			live = !orphan
		case !known:
			n, err := rdb.Exists(ctx, keys.heartbeat(worker)).Result()
			if err != nil {
				return err
			}
			live = n > 0
			alive[worker] = live
		}
		if live {
			continue
		}
		delivered, _ := strconv.Atoi(fmt.Sprint(vals[1]))
		delivered++ // the delivery that died
		if removed, err := rdb.LRem(ctx, keys.Processing(), 1, id).Result(); err != nil || removed == 0 {
			continue // another reaper took it
		}
		if cancelled { // its worker died and its caller gave up: drop it rather than run it again
			continue
		}
		if delivered >= w.cfg.MaxDeliveries {
			w.deadLetter(ctx, id, replyTo, delivered)
			continue
		}
		err := pipelineInOrder(ctx, rdb, false, func(p redis.Pipeliner) {
			updateIfExists(ctx, p, id, fieldDeliveries, delivered, fieldWorker, "", fieldStarted, "", fieldOrphanSeen, "")
		}, func(p redis.Pipeliner) {
			p.RPush(ctx, keys.Pending(), id) // the right end: the next job to be taken
		})
		if err != nil {
			return err
		}
		w.count(func(s *WorkerStats) { s.Requeued++ })
		w.log.Info("requeued a job of a dead worker", "job_id", id, "dead_worker", worker, "deliveries", delivered)
		// (dead_worker "" is an orphan: a job fetched by a worker that died before marking it, or with
		// OrphanTimeout one taken by a worker without heartbeats.)
	}
	return nil
}

func (w *Worker) deadLetter(ctx context.Context, id, replyTo string, delivered int) {
	msg := fmt.Sprintf("redisq: job dead-lettered after %d deliveries", delivered)
	err := pipelineInOrder(ctx, w.cfg.Redis, false, func(p redis.Pipeliner) {
		updateIfExists(ctx, p, id, fieldDeliveries, delivered, fieldProcessed, epoch(time.Now()),
			fieldResult, string(TagText)+failedResultPrefix+msg, fieldError, msg)
	}, func(p redis.Pipeliner) {
		p.LPush(ctx, w.cfg.Keys.Dead(), id)
		p.LTrim(ctx, w.cfg.Keys.Dead(), 0, int64(w.cfg.MaxDeadLetters)-1)
		p.Publish(ctx, ClientChannel(replyTo), id)
	})
	if err != nil {
		w.log.Warn("dead-letter failed", "job_id", id, "err", err)
		return
	}
	w.count(func(s *WorkerStats) { s.DeadLettered++ })
	w.log.Warn("job dead-lettered", "job_id", id, "deliveries", delivered)
}
