package actors

import (
	"context"
	"errors"
	"sync"

	"github.com/asynkron/protoactor-go/actor"
)

// PoolDispatcher runs actor mailboxes on a fixed set of long-lived goroutines instead of a new goroutine for
// every run of a mailbox (protoactor's default). A fresh goroutine starts with a small stack and grows it
// (copying) whenever a message's handling goes deep, as a session's does (JSON, then a writev); long-lived
// goroutines keep their grown stacks. When every worker is busy and the queue is full, Schedule falls back to
// a new goroutine, so an actor that schedules another never waits for a worker.
type PoolDispatcher struct {
	work       chan func()
	workers    int
	throughput int
	mu         sync.RWMutex // guards the state against Schedule, so the channel closes only once idle
	started    bool
	closed     bool
	wg         sync.WaitGroup
	done       <-chan struct{} // closed when the workers have finished (set by Shutdown)
}

var _ actor.Dispatcher = (*PoolDispatcher)(nil)

// NewPoolDispatcher returns a dispatcher of workers goroutines, started by Start; throughput is how many
// messages an actor handles per run. Until Start (and after Shutdown) every Schedule gets a goroutine of its
// own.
func NewPoolDispatcher(workers, throughput int) *PoolDispatcher {
	return &PoolDispatcher{work: make(chan func(), 16*workers), workers: workers, throughput: throughput}
}

// ErrDispatcherStopped is Start's error after Shutdown.
var ErrDispatcherStopped = errors.New("actors: dispatcher is shut down")

// Start starts the workers. Safe to call twice; after Shutdown it fails.
func (d *PoolDispatcher) Start(context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.closed:
		return ErrDispatcherStopped
	case d.started:
		return nil
	}
	d.started = true
	for i := 0; i < d.workers; i++ {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			for fn := range d.work {
				fn()
			}
		}()
	}
	return nil
}

// Schedule implements actor.Dispatcher.
func (d *PoolDispatcher) Schedule(fn func()) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.started && !d.closed {
		select {
		case d.work <- fn:
			return
		default:
		}
	}
	go fn()
}

// Throughput implements actor.Dispatcher.
func (d *PoolDispatcher) Throughput() int { return d.throughput }

// Shutdown lets the workers finish what is queued and waits for them, or for ctx; later Schedules get
// goroutines of their own. Safe to call twice.
func (d *PoolDispatcher) Shutdown(ctx context.Context) error {
	d.mu.Lock()
	if !d.closed {
		d.closed = true
		close(d.work)
		d.done = closeWhenDone(&d.wg)
	}
	d.mu.Unlock()
	return awaitStopped(ctx, d.done, "dispatcher workers still running")
}
