package redisq

import (
	"sync"
	"sync/atomic"
	"time"
)

// runners runs a Worker's jobs on goroutines that outlive one job. A goroutine started per job begins with a
// small stack and grows it, copying, on every job (a tenth of a busy worker's CPU went to that); a job handed
// to a runner that is waiting for work reuses a goroutine whose stack has already grown. A job that finds no
// runner waiting starts a new one, so a job never waits for a runner, and a runner that has had no job for
// idleRunner ends, so an idle worker keeps no goroutines beyond its fetchers. Jobs are started only under a
// Worker slot, so the runners busy at once are at most Concurrency; those waiting end within idleRunner.
type runners struct {
	work chan func() // unbuffered: a send succeeds only when a runner is waiting
	stop chan struct{}
	wg   sync.WaitGroup
	// spawned counts the runners started (for tests: a reused runner starts none).
	spawned atomic.Int64
}

// idleRunner is how long a runner waits for its next job before it ends.
const idleRunner = 10 * time.Second

func newRunners() *runners {
	return &runners{work: make(chan func()), stop: make(chan struct{})}
}

// run runs fn on a waiting runner, or on a new one. It must not be called once shutdown has begun.
func (r *runners) run(fn func()) {
	select {
	case r.work <- fn:
	default:
		r.wg.Add(1)
		r.spawned.Add(1)
		go r.loop(fn)
	}
}

func (r *runners) loop(fn func()) {
	defer r.wg.Done()
	idle := time.NewTimer(idleRunner)
	defer idle.Stop()
	for {
		fn()
		fn = nil // what the job held can go while the runner waits
		idle.Reset(idleRunner)
		select {
		case fn = <-r.work:
		case <-idle.C:
			return
		case <-r.stop:
			return
		}
	}
}

// shutdown ends the waiting runners and waits for every runner; call it once the jobs have finished.
func (r *runners) shutdown() {
	close(r.stop)
	r.wg.Wait()
}
