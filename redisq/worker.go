package redisq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Handler runs one job. It is shaped like net/http's Handler: the worker calls ServeJob for every job it takes,
// from several goroutines at once (WorkerConfig.Concurrency). A returned error is written back as a failure, so
// the caller learns of it at once.
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

// WorkerConfig configures a Worker.
type WorkerConfig struct {
	// Redis is the connection; required. Each fetch loop holds one pooled connection in its blocking fetch
	// and needs another to answer, so the pool should hold at least 2×Concurrency connections (NewWorker
	// warns when a *redis.Client's pool is smaller; WorkerRedisOptions sets it).
	Redis redis.UniversalClient
	// Keys names the queue; the zero value is the Perl default `jobs::pending`.
	Keys Keys
	// Handler runs the jobs; required.
	Handler Handler
	// Concurrency is how many jobs run at once (each has its own fetch loop); 0 means 16.
	Concurrency int
	// PollTimeout is the blocking wait of one fetch; 0 means 3 s, as the Perl worker. Shutdown may wait this long
	// for an idle fetch to return.
	PollTimeout time.Duration
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
	if c.Concurrency < 0 || c.PollTimeout < 0 {
		return errors.New("redisq: WorkerConfig.Concurrency and PollTimeout must not be negative")
	}
	return nil
}

// Worker takes jobs from a queue and runs them.
type Worker struct {
	cfg  WorkerConfig
	log  *slog.Logger
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// NewWorker checks cfg and returns a Worker that is not running yet.
func NewWorker(cfg WorkerConfig) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 16
	}
	if cfg.PollTimeout == 0 {
		cfg.PollTimeout = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Worker{cfg: cfg, log: cfg.Logger.With("component", "redisq.worker"), stop: make(chan struct{})}
	if c, ok := cfg.Redis.(*redis.Client); ok && c.Options().PoolSize < 2*cfg.Concurrency {
		w.log.Warn("redis pool is smaller than 2×concurrency: jobs will wait for connections",
			"pool_size", c.Options().PoolSize, "concurrency", cfg.Concurrency)
	}
	return w, nil
}

// WorkerRedisOptions sizes opts for a worker of the given concurrency: a pool of 2×concurrency+2 connections
// and no read timeout shorter than a blocking fetch.
func WorkerRedisOptions(opts *redis.Options, concurrency int) *redis.Options {
	opts.PoolSize = max(opts.PoolSize, 2*concurrency+2)
	return opts
}

// Start launches the fetch loops and returns.
func (w *Worker) Start() {
	for i := 0; i < w.cfg.Concurrency; i++ {
		w.wg.Add(1)
		go w.loop()
	}
}

// Run starts the worker and blocks until ctx ends, then shuts it down gracefully.
func (w *Worker) Run(ctx context.Context) error {
	w.Start()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), w.cfg.PollTimeout+30*time.Second)
	defer cancel()
	return w.Shutdown(sctx)
}

// Shutdown stops taking new jobs, lets running jobs finish and waits for that, or for ctx. Safe to call twice.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.once.Do(func() { close(w.stop) })
	done := make(chan struct{})
	go func() {
		w.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *Worker) stopping() bool {
	select {
	case <-w.stop:
		return true
	default:
		return false
	}
}

func (w *Worker) loop() {
	defer w.wg.Done()
	ctx := context.Background()
	backoff := 50 * time.Millisecond
	for !w.stopping() {
		// BRPOPLPUSH pending processing: the job ID stays in `processing` until it is answered (reliable mode).
		id, err := w.cfg.Redis.BLMove(ctx, w.cfg.Keys.Pending(), w.cfg.Keys.Processing(), "RIGHT", "LEFT",
			w.cfg.PollTimeout).Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			w.log.Warn("fetch failed", "err", err)
			select {
			case <-w.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		w.process(ctx, id)
	}
}

// process runs one job with the Perl worker's command sequence: HGETALL, HMSET _started, run, then
// HMSET _processed+result, PUBLISH client::<reply_to> <id>, LREM processing.
func (w *Worker) process(ctx context.Context, id string) {
	rdb := w.cfg.Redis
	h, err := rdb.HGetAll(ctx, JobKey(id)).Result()
	if err != nil {
		w.log.Warn("read job failed", "job_id", id, "err", err)
		return // the ID stays in processing
	}
	if len(h) == 0 { // expired or cancelled: nobody waits for it
		rdb.LRem(ctx, w.cfg.Keys.Processing(), 1, id)
		return
	}
	job, perr := parseJob(id, h)
	if job == nil {
		job = &Job{ID: id, ReplyTo: h[fieldReplyTo]}
	}
	if err := rdb.HSet(ctx, JobKey(id), fieldStarted, epoch(time.Now())).Err(); err != nil {
		w.log.Warn("mark job started failed", "job_id", id, "err", err)
	}
	var res Result
	if perr == nil {
		res, err = w.serve(ctx, job)
	} else {
		err = perr
	}
	fields := []any{fieldProcessed, epoch(time.Now())}
	if err != nil {
		w.log.Debug("job failed", "job_id", id, "err", err)
		fields = append(fields, fieldResult, string(TagText)+failedResultPrefix+err.Error(), fieldError, err.Error())
	} else {
		fields = append(fields, fieldResult, res.encode())
	}
	_, err = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, JobKey(id), fields...)
		if job.ReplyTo != "" {
			p.Publish(ctx, ClientChannel(job.ReplyTo), id)
		}
		p.LRem(ctx, w.cfg.Keys.Processing(), 1, id)
		return nil
	})
	if err != nil {
		w.log.Warn("write result failed", "job_id", id, "err", err)
	}
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
