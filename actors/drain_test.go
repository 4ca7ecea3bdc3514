package actors

import (
	"sync"
	"sync/atomic"
	"testing"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestDrainGate: the drain ends when the last request admitted before it is done, never earlier, and
// refuses everything after it.
func TestDrainGate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name               string
		before             int // admitted before the drain
		doneBefore         int // of them, done before the drain
		doneAfter          int // done after it
		wantIdle           bool
		wantOpen, refusals int64
	}{
		{"nothing in flight", 0, 0, 0, true, 0, 0},
		{"all answered before", 3, 3, 0, true, 0, 0},
		{"one still pending", 3, 1, 1, false, 1, 0},
		{"the last answer ends it", 3, 1, 2, true, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newDrainGate()
			for i := 0; i < tt.before; i++ {
				if !g.admit() {
					t.Fatal("refused before the drain")
				}
			}
			g.done(int64(tt.doneBefore))
			idle := g.drain()
			if g.admit() {
				t.Fatal("admitted during the drain")
			}
			g.done(int64(tt.doneAfter))
			if closed(idle) != tt.wantIdle || g.open.Load() != tt.wantOpen || g.rejected.Load() != 1 {
				t.Fatalf("idle %v (want %v), open %d (want %d), refused %d (want 1)", closed(idle), tt.wantIdle,
					g.open.Load(), tt.wantOpen, g.rejected.Load())
			}
		})
	}
}

// TestDrainGateConcurrent: requests racing the drain are either refused or waited for: when the drain is
// idle, none that was admitted is still being worked on.
func TestDrainGateConcurrent(t *testing.T) {
	t.Parallel()
	for round := 0; round < 200; round++ {
		g := newDrainGate()
		var working atomic.Int64
		release := make(chan struct{})
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if g.admit() {
					working.Add(1)
					<-release
					working.Add(-1)
					g.done(1)
				}
			}()
		}
		idle := g.drain()
		close(release)
		<-idle
		if n := working.Load(); n != 0 {
			t.Fatalf("round %d: idle while %d admitted requests are unanswered", round, n)
		}
		wg.Wait()
	}
}
