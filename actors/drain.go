package actors

import (
	"sync"
	"sync/atomic"
)

// drainGate counts the requests that sessions have taken and not answered yet, and once draining refuses new
// ones and signals when the count reaches zero.
//
// Every request is counted (admit) before it is checked against the draining flag, and uncounted (done) when
// its one reply is sent or its session stops without answering it. Both sides use sequentially consistent
// atomics, so either a request sees the flag and is refused, or Drain sees its count: none slips through.
type drainGate struct {
	open     atomic.Int64 // taken and not answered
	draining atomic.Bool
	rejected atomic.Uint64 // refused since draining began
	idleOnce sync.Once
	idle     chan struct{} // closed when draining and open == 0
}

func newDrainGate() *drainGate { return &drainGate{idle: make(chan struct{})} }

// admit counts a new request; false means the gateway is draining and the request must be refused.
func (g *drainGate) admit() bool {
	g.open.Add(1)
	if g.draining.Load() {
		g.rejected.Add(1)
		g.done(1)
		return false
	}
	return true
}

// done uncounts n requests that were admitted.
func (g *drainGate) done(n int64) {
	if g.open.Add(-n) == 0 && g.draining.Load() {
		g.idleOnce.Do(func() { close(g.idle) })
	}
}

// drain starts draining; the channel is closed once no admitted request is left unanswered.
func (g *drainGate) drain() <-chan struct{} {
	g.draining.Store(true)
	if g.open.Load() == 0 {
		g.idleOnce.Do(func() { close(g.idle) })
	}
	return g.idle
}

// Drain makes every session refuse new requests with ServiceUnavailable (replies to requests taken before go
// on as usual). The channel it returns is closed when every request taken before has been answered, or
// forgotten because its connection closed. Requests whose jobs are pending can be answered at once with
// Registry.ExpireAll. Safe to call more than once; it cannot be undone.
func (s *Sessions) Drain() <-chan struct{} { return s.gate.drain() }

// InFlight is the number of requests taken and not answered yet (waiting for a job or a deferred hook).
func (s *Sessions) InFlight() int64 { return s.gate.open.Load() }

// Refused is the number of requests answered ServiceUnavailable because the gateway was draining.
func (s *Sessions) Refused() uint64 { return s.gate.rejected.Load() }
