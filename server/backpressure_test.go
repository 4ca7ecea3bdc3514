package server

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wsgate/wsgate/actors"
)

// fakeConn records what backpressure told it; it yields inside the call, as the real one may wait for a lock,
// so that calls made in one order can land in another.
type fakeConn struct {
	actors.Conn // not used by backpressure
	mu          sync.Mutex
	paused      bool
	calls       atomic.Int64
}

func (f *fakeConn) SetReadPaused(p bool) {
	runtime.Gosched()
	f.mu.Lock()
	f.paused = p
	f.mu.Unlock()
	f.calls.Add(1)
}

func (f *fakeConn) ChargeBuffer(int) {}

// TestBacklogPauseFollowsTheCount races messages in (OnMessage) against messages handled (Handled, from the
// session's goroutine) around the pause and resume thresholds: once everything is handled, the connection
// must be reading, and while it is paused the count must be at or above the resume threshold.
func TestBacklogPauseFollowsTheCount(t *testing.T) {
	t.Parallel()
	var pauses int64
	for round := 0; round < 200; round++ {
		fc := &fakeConn{}
		cs := &connState{conn: fc}
		inbox := make(chan struct{}, 4*maxInboundBacklog)
		var wg sync.WaitGroup
		const producers, perProducer = 4, 3 * maxInboundBacklog / 4
		for p := 0; p < producers; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < perProducer; i++ {
					cs.addBacklog(1, 100)
					inbox <- struct{}{}
				}
			}()
		}
		done := make(chan struct{})
		go func() { // the session: handles messages as they come
			defer close(done)
			for i := 0; i < producers*perProducer; i++ {
				<-inbox
				(&inboundDone{cs, 100}).Handled()
			}
		}()
		wg.Wait()
		<-done
		fc.mu.Lock()
		paused := fc.paused
		fc.mu.Unlock()
		pauses += fc.calls.Load()
		if paused {
			t.Fatalf("round %d: backlog %d, but the connection stays paused (%d calls)", round, cs.backlog, fc.calls.Load())
		}
	}
	if pauses == 0 {
		t.Fatal("the backlog never reached the pause threshold: the test tests nothing")
	}
}
