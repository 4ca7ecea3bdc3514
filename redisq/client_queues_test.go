package redisq

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
)

// A Client's submit queue grows with a burst and shrinks back once the submit loop has sent it.
func TestClientSubmitQueueShrinksAfterABurst(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	c, err := NewClient(ClientConfig{Redis: rdb, Mode: ModeRecoverable, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnComplete: func(Completion) {}})
	if err != nil {
		t.Fatal(err)
	}
	const burst = 5000
	for i := range burst { // before Start: nothing takes them yet
		if err := c.Submit(Submission{ID: fmt.Sprintf("burst-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := bufLen(c.submits); n < burst {
		t.Fatalf("submit queue buffer of %d for %d submits", n, burst)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Shutdown(context.Background())
	testutil.WaitFor(t, func() bool { return c.Stats().Submitted == burst })
	if n, keep := bufLen(c.submits), 4*c.cfg.MaxBatch; n > keep {
		t.Fatalf("submit queue buffer of %d once the burst was sent, want at most %d", n, keep)
	}
}
