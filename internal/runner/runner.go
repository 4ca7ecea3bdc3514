// Package runner runs short tasks on goroutines that outlive one task.
//
// A goroutine started per task begins with a small stack and grows it, copying, whenever the task goes deep
// (a job handler's JSON, a session's reply and writev): on a busy worker or gateway that was a tenth of the
// CPU. A task handed to a goroutine that is waiting for work reuses a stack that has already grown. A task
// that finds no goroutine waiting starts a new one, so a task never waits for a goroutine (unlike a fixed
// pool with a queue, where it would wait behind others), and a goroutine that has had no task for its idle
// time ends, so an idle process keeps none.
//
// Concurrency: Run may be called from any goroutine, also after Shutdown (the task then gets a goroutine of
// its own, not tracked). Shutdown ends the waiting goroutines and waits for the busy ones.
package runner

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// Pool is a set of goroutines that run tasks and wait a while for the next one.
type Pool struct {
	idle    time.Duration
	work    chan func() // unbuffered: a send succeeds only when a goroutine is waiting
	mu      sync.RWMutex
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
	spawned atomic.Int64
	live    atomic.Int64 // goroutines running or waiting
}

// New returns a pool whose goroutines end after idle without a task (0 means 10 s).
func New(idle time.Duration) *Pool {
	if idle <= 0 {
		idle = 10 * time.Second
	}
	return &Pool{idle: idle, work: make(chan func()), stop: make(chan struct{})}
}

// Run runs fn on a waiting goroutine, or on a new one. It never blocks.
func (p *Pool) Run(fn func()) {
	select {
	case p.work <- fn:
		return
	default:
	}
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		go fn()
		return
	}
	p.wg.Add(1)
	p.spawned.Add(1)
	p.live.Add(1)
	go p.loop(fn)
}

// Spawned is the number of goroutines the pool has started: a task handed to a waiting one starts none.
func (p *Pool) Spawned() int64 { return p.spawned.Load() }

// Live is the number of the pool's goroutines, busy or waiting.
func (p *Pool) Live() int64 { return p.live.Load() }

func (p *Pool) loop(fn func()) {
	defer p.wg.Done()
	defer p.live.Add(-1)
	idle := time.NewTimer(p.idle)
	defer idle.Stop()
	for {
		fn()
		fn = nil // what the task held can go while the goroutine waits
		idle.Reset(p.idle)
		select {
		case fn = <-p.work:
		case <-idle.C:
			return
		case <-p.stop:
			return
		}
	}
}

// Shutdown ends the waiting goroutines and waits for the busy ones to finish their task, or for ctx. Tasks
// run after it get goroutines of their own. Safe to call twice.
func (p *Pool) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.stop)
	}
	p.mu.Unlock()
	done := make(chan struct{})
	go func() {
		p.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
