package redisq

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/testutil"
)

// handToWaiting gives fn to a runner that waits for work, if one does.
func handToWaiting(r *runners, fn func()) bool {
	select {
	case r.work <- fn:
		return true
	default:
		return false
	}
}

// TestRunnersReuseAWaitingGoroutine: a job started while a runner waits runs on it (no new goroutine), one
// started while every runner is busy gets a new runner, and shutdown ends the waiting ones.
func TestRunnersReuseAWaitingGoroutine(t *testing.T) {
	r := newRunners()
	first := make(chan struct{})
	r.run(func() { close(first) })
	<-first
	reused := make(chan struct{})
	testutil.WaitFor(t, func() bool { return handToWaiting(r, func() { close(reused) }) })
	<-reused
	if n := r.spawned.Load(); n != 1 {
		t.Fatalf("%d runners started for two jobs in a row, want 1", n)
	}

	block, blocked, other := make(chan struct{}), make(chan struct{}), make(chan struct{})
	testutil.WaitFor(t, func() bool { return handToWaiting(r, func() { close(blocked); <-block }) })
	<-blocked
	r.run(func() { close(other) }) // the only runner is busy: a new one
	<-other
	if n := r.spawned.Load(); n != 2 {
		t.Fatalf("%d runners started, want 2 (the first one was busy)", n)
	}
	close(block)
	r.shutdown() // ends both; goleak in TestMain would see one left behind
}

// TestRunnersRunEveryJobOnce runs many jobs from several goroutines, some while runners are busy.
func TestRunnersRunEveryJobOnce(t *testing.T) {
	r := newRunners()
	const senders, each = 8, 500
	var ran atomic.Int64
	var jobs, wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				jobs.Add(1)
				r.run(func() {
					defer jobs.Done()
					if i%50 == 0 {
						time.Sleep(time.Millisecond) // a slow one keeps its runner busy
					}
					ran.Add(1)
				})
			}
		}()
	}
	wg.Wait()
	jobs.Wait()
	r.shutdown()
	if n := ran.Load(); n != senders*each {
		t.Fatalf("%d jobs ran, want %d", n, senders*each)
	}
	if n := r.spawned.Load(); n >= senders*each {
		t.Errorf("%d runners for %d jobs: none was reused", n, senders*each)
	}
}
