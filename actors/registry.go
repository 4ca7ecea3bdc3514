package actors

import (
	"context"
	"errors"
	"hash/maphash"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// RegistryConfig configures a Registry.
type RegistryConfig struct {
	// Shards is the number of shard actors; 0 means runtime.GOMAXPROCS(0).
	Shards int
	// Tick is the resolution of timeouts; 0 means 50 ms.
	Tick time.Duration
	// WheelSlots is the number of slots of each shard's timing wheel; 0 means 4096.
	WheelSlots int
	// OnAbandon is called (from a shard actor; it must not block) for each job that nobody waits for any more:
	// its deadline passed, or its session ended. The queue can then cancel it. Optional.
	OnAbandon func(jobID string)
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// RegistryStats are counters of a Registry since it started.
type RegistryStats struct {
	Pending   int64 // jobs registered and not yet answered
	Completed uint64
	TimedOut  uint64
	Late      uint64 // completions of jobs that were no longer pending (timed out, or their session ended)
}

// Registry correlates job completions with the sessions that wait for them and fires timeouts.
type Registry struct {
	cfg    RegistryConfig
	root   *actor.RootContext
	shards []*actor.PID
	seed   maphash.Seed
	epoch  time.Time

	pending                   atomic.Int64
	completed, timedOut, late atomic.Uint64
	life                      sync.Mutex // guards started and stopped: Start and Shutdown may race
	started, stopped          bool
	stop                      chan struct{}
	tickerDone                chan struct{}
	shardsDone                chan struct{}
}

// ErrRegistryStopped is Start's error after Shutdown.
var ErrRegistryStopped = errors.New("actors: registry is shut down")

// NewRegistry checks cfg and returns a registry; nothing runs until Start.
func NewRegistry(root *actor.RootContext, cfg RegistryConfig) (*Registry, error) {
	if root == nil {
		return nil, errors.New("actors: NewRegistry needs a root context")
	}
	if cfg.Shards <= 0 {
		cfg.Shards = runtime.GOMAXPROCS(0)
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 50 * time.Millisecond
	}
	if cfg.WheelSlots <= 0 {
		cfg.WheelSlots = 4096
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Registry{cfg: cfg, root: root, seed: maphash.MakeSeed(), epoch: time.Now(),
		stop: make(chan struct{}), tickerDone: make(chan struct{}), shardsDone: make(chan struct{})}, nil
}

// Start spawns the shard actors and starts the tick source. Safe to call twice; after Shutdown it fails.
func (r *Registry) Start(context.Context) error {
	r.life.Lock()
	defer r.life.Unlock()
	switch {
	case r.stopped:
		return ErrRegistryStopped
	case r.started:
		return nil
	}
	r.started = true
	for i := 0; i < r.cfg.Shards; i++ {
		s := &registryShard{reg: r, jobs: make(map[string]*pendingJob), wheel: newWheel(r.cfg.WheelSlots, 0)}
		r.shards = append(r.shards, r.root.Spawn(actor.PropsFromProducer(func() actor.Actor { return s })))
	}
	go r.tickLoop()
	return nil
}

// ticks converts a time to the registry's tick count.
func (r *Registry) ticks(t time.Time) int64 { return int64(t.Sub(r.epoch) / r.cfg.Tick) }

// deadline returns the first tick at or after the moment a job registered now with timeout d is due: it fires
// on that tick, so never early and at most one tick late.
func (r *Registry) deadline(d time.Duration) int64 {
	since := time.Now().Add(d).Sub(r.epoch)
	return int64((since + r.cfg.Tick - 1) / r.cfg.Tick)
}

func (r *Registry) tickLoop() {
	defer close(r.tickerDone)
	t := time.NewTicker(r.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case now := <-t.C:
			msg := &tick{now: r.ticks(now)}
			for _, s := range r.shards {
				r.root.Send(s, msg)
			}
		}
	}
}

func (r *Registry) shard(jobID string) *actor.PID {
	return r.shards[maphash.String(r.seed, jobID)%uint64(len(r.shards))]
}

// register tells the job's shard that session waits for it with request req until the deadline (in ticks).
// The session gets req back with the outcome.
func (r *Registry) register(sender actor.SenderContext, jobID string, session *actor.PID, req *Request, deadline int64) {
	r.pending.Add(1)
	sender.Send(r.shard(jobID), &pendingJob{id: jobID, session: session, req: req, due: deadline})
}

// forget drops pending jobs (their session ended, or their submit failed); late results for them are counted.
func (r *Registry) forget(sender actor.SenderContext, jobIDs ...string) {
	if len(jobIDs) == 1 {
		sender.Send(r.shard(jobIDs[0]), &forget{jobIDs: jobIDs})
		return
	}
	byShard := map[*actor.PID][]string{}
	for _, id := range jobIDs {
		s := r.shard(id)
		byShard[s] = append(byShard[s], id)
	}
	for s, ids := range byShard {
		sender.Send(s, &forget{jobIDs: ids})
	}
}

// Complete delivers a job's outcome to the session waiting for it. Safe from any goroutine; it never blocks.
func (r *Registry) Complete(jobID string, outcome JobOutcome) {
	r.root.Send(r.shard(jobID), &complete{jobID: jobID, outcome: outcome})
}

// ExpireAll times out every pending job now: each waiting session answers RequestTimeout, as if the job's
// deadline had passed (the job may still run). A draining gateway calls it when its drain timeout is up, so
// that no request taken goes without an answer. It returns at once; the sessions answer shortly after.
func (r *Registry) ExpireAll() {
	for _, s := range r.shards {
		r.root.Send(s, expireAll{})
	}
}

// Stats returns the registry's counters.
func (r *Registry) Stats() RegistryStats {
	return RegistryStats{Pending: r.pending.Load(), Completed: r.completed.Load(), TimedOut: r.timedOut.Load(),
		Late: r.late.Load()}
}

// Shutdown stops the tick source and the shard actors, and waits for them or for ctx. Pending jobs get no
// answer after it: drain first. Safe to call twice.
func (r *Registry) Shutdown(ctx context.Context) error {
	r.life.Lock()
	if !r.stopped {
		r.stopped = true
		close(r.stop)
		if !r.started {
			close(r.tickerDone)
			close(r.shardsDone)
		} else {
			go func() { // the shards' stop is a future; waiting for it here would ignore ctx
				<-r.tickerDone
				for _, s := range r.shards {
					_ = r.root.StopFuture(s).Wait()
				}
				close(r.shardsDone)
			}()
		}
	}
	r.life.Unlock()
	return awaitStopped(ctx, r.shardsDone, "registry shards still running")
}

func (r *Registry) abandon(jobID string) {
	if r.cfg.OnAbandon != nil {
		r.cfg.OnAbandon(jobID)
	}
}

// registryShard owns the pending jobs whose IDs hash to it.
type registryShard struct {
	reg   *Registry
	jobs  map[string]*pendingJob
	wheel *wheel
}

func (s *registryShard) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *pendingJob: // a registration
		if old, dup := s.jobs[m.id]; dup { // IDs are random: a duplicate is a caller bug; keep the newer
			s.wheel.remove(old)
			s.reg.pending.Add(-1)
		}
		s.jobs[m.id] = m
		s.wheel.add(m)
	case *complete:
		p, ok := s.jobs[m.jobID]
		if !ok {
			s.reg.late.Add(1)
			return
		}
		s.drop(p)
		s.reg.completed.Add(1)
		p.outcome = m.outcome
		ctx.Send(p.session, p) // the shard lets go of p: the session owns it now
	case *forget:
		for _, id := range m.jobIDs {
			if p, ok := s.jobs[id]; ok {
				s.drop(p)
				s.reg.abandon(id)
			}
		}
	case expireAll:
		for _, p := range s.jobs {
			s.drop(p)
			s.reg.timedOut.Add(1)
			p.timedOut = true
			s.reg.abandon(p.id)
			ctx.Send(p.session, p)
		}
	case *tick:
		s.wheel.advance(m.now, func(p *pendingJob) {
			delete(s.jobs, p.id)
			s.reg.pending.Add(-1)
			s.reg.timedOut.Add(1)
			p.timedOut = true
			s.reg.abandon(p.id)
			ctx.Send(p.session, p)
		})
	}
}

func (s *registryShard) drop(p *pendingJob) {
	delete(s.jobs, p.id)
	s.wheel.remove(p)
	s.reg.pending.Add(-1)
}
