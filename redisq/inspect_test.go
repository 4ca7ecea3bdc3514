package redisq_test

import (
	"context"
	"slices"
	"testing"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/redisq"
)

// Operators count live workers from their heartbeats, so a Go worker beats in every mode and removes its
// heartbeat when it stops.
func TestInspectorSeesWorkersOfEveryMode(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	in := redisq.NewInspector(srv.Client(), redisq.Keys{})
	for _, mode := range []redisq.Mode{redisq.ModeSimple, redisq.ModeRecoverable, redisq.ModeReliable} {
		t.Run(string(mode), func(t *testing.T) {
			w := startTestWorker(t, srv, redisq.WorkerConfig{Mode: mode, Handler: redisq.HandlerFunc(nil)})
			ids, err := in.Workers(context.Background())
			if err != nil || !slices.Contains(ids, w.ID()) {
				t.Fatalf("workers %v (%v), want %s among them", ids, err, w.ID())
			}
			if err := w.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			testutil.WaitFor(t, func() bool {
				ids, _ := in.Workers(context.Background())
				return !slices.Contains(ids, w.ID())
			})
		})
	}
}
