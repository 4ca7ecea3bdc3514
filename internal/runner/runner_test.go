package runner

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/internal/testutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// handToWaiting gives fn to a goroutine that waits for work, if one does.
func handToWaiting(p *Pool, fn func()) bool {
	select {
	case p.work <- fn:
		return true
	default:
		return false
	}
}

// TestReuseAWaitingGoroutine: a task handed over while a goroutine waits runs on it, one run while every
// goroutine is busy gets a new one, and Shutdown ends the waiting ones (goleak checks).
func TestReuseAWaitingGoroutine(t *testing.T) {
	p := New(0)
	first := make(chan struct{})
	p.Run(func() { close(first) })
	<-first
	reused := make(chan struct{})
	testutil.WaitFor(t, func() bool { return handToWaiting(p, func() { close(reused) }) })
	<-reused
	if n := p.Spawned(); n != 1 {
		t.Fatalf("%d goroutines started for two tasks in a row, want 1", n)
	}
	block, blocked, other := make(chan struct{}), make(chan struct{}), make(chan struct{})
	testutil.WaitFor(t, func() bool { return handToWaiting(p, func() { close(blocked); <-block }) })
	<-blocked
	p.Run(func() { close(other) }) // the only goroutine is busy: a new one
	<-other
	if n := p.Spawned(); n != 2 {
		t.Fatalf("%d goroutines started, want 2 (the first one was busy)", n)
	}
	close(block)
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestEveryTaskRunsOnce runs many tasks from several goroutines, some while every goroutine is busy, and
// checks that goroutines were reused.
func TestEveryTaskRunsOnce(t *testing.T) {
	p := New(0)
	const senders, each = 8, 500
	var ran atomic.Int64
	var tasks, wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				tasks.Add(1)
				p.Run(func() {
					defer tasks.Done()
					if i%50 == 0 {
						time.Sleep(time.Millisecond) // a slow one keeps its goroutine busy
					}
					ran.Add(1)
				})
			}
		}()
	}
	wg.Wait()
	tasks.Wait()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := ran.Load(); n != senders*each {
		t.Fatalf("%d tasks ran, want %d", n, senders*each)
	}
	if n := p.Spawned(); n >= senders*each {
		t.Errorf("%d goroutines for %d tasks: none was reused", n, senders*each)
	}
}

// TestIdleGoroutinesEnd: a goroutine without a task for the idle time ends by itself.
func TestIdleGoroutinesEnd(t *testing.T) {
	p := New(20 * time.Millisecond)
	done := make(chan struct{})
	p.Run(func() { close(done) })
	<-done
	testutil.WaitFor(t, func() bool { return p.Live() == 0 })
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestRunAfterShutdown: a task run after Shutdown still runs.
func TestRunAfterShutdown(t *testing.T) {
	p := New(0)
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	p.Run(func() { close(done) })
	<-done
}
