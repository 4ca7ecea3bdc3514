package actors

import (
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
	throughput int
	mu         sync.RWMutex // guards closed against Schedule, so the channel closes only once idle
	closed     bool
	wg         sync.WaitGroup
	once       sync.Once
}

var _ actor.Dispatcher = (*PoolDispatcher)(nil)

// NewPoolDispatcher starts workers goroutines; throughput is how many messages an actor handles per run.
func NewPoolDispatcher(workers, throughput int) *PoolDispatcher {
	d := &PoolDispatcher{work: make(chan func(), 16*workers), throughput: throughput}
	for i := 0; i < workers; i++ {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			for fn := range d.work {
				fn()
			}
		}()
	}
	return d
}

// Schedule implements actor.Dispatcher.
func (d *PoolDispatcher) Schedule(fn func()) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if !d.closed {
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

// Stop lets the workers finish what is queued and waits for them; later Schedules get goroutines of their own.
// Safe to call twice.
func (d *PoolDispatcher) Stop() {
	d.once.Do(func() {
		d.mu.Lock()
		d.closed = true
		close(d.work)
		d.mu.Unlock()
		d.wg.Wait()
	})
}
