package actors

import (
	"context"
	"fmt"
	"sync"
)

// awaitStopped is the end of every Shutdown here: it waits until done is closed (what was stopping has
// stopped), or until ctx ends, and then says what was still running.
func awaitStopped(ctx context.Context, done <-chan struct{}, what string) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("actors: %s: %w", what, ctx.Err())
	}
}

// closeWhenDone returns a channel that is closed once wg's count is zero (a goroutine waits for it).
func closeWhenDone(wg *sync.WaitGroup) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	return done
}
