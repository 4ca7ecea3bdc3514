package actors

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPoolDispatcher(t *testing.T) {
	t.Parallel()
	d := NewPoolDispatcher(2, 300)
	if d.Throughput() != 300 {
		t.Fatalf("throughput %d", d.Throughput())
	}
	ctx := context.Background()
	if err := d.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx); err != nil { // twice: no second set of workers
		t.Fatal(err)
	}
	// More work than workers and queue together, some of it blocked for a while: Schedule never waits.
	release := make(chan struct{})
	var ran atomic.Int64
	var wg sync.WaitGroup
	const n = 200
	wg.Add(n)
	start := time.Now()
	for i := 0; i < n; i++ {
		d.Schedule(func() {
			defer wg.Done()
			if i < 4 {
				<-release
			}
			ran.Add(1)
		})
	}
	if waited := time.Since(start); waited > 2*time.Second {
		t.Fatalf("Schedule blocked for %v", waited)
	}
	close(release)
	wg.Wait()
	if ran.Load() != n {
		t.Fatalf("%d of %d ran", ran.Load(), n)
	}
	for range 2 { // safe twice
		if err := d.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	d.Schedule(func() { close(done) }) // after Shutdown: still runs, on a goroutine of its own
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("work scheduled after Shutdown did not run")
	}
}
