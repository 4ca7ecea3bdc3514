package redisq_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/redisq"
)

// blockedClients is the number of connections blocked in a command (INFO clients).
func blockedClients(rdb *redis.Client) int {
	info, _ := rdb.Info(context.Background(), "clients").Result()
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "blocked_clients:"); ok {
			var n int
			fmt.Sscan(v, &n)
			return n
		}
	}
	return -1
}

// TestShutdownInterruptsTheBlockingFetch: Shutdown returns at once, not after the fetchers' PollTimeout, in
// every mode; and a job submitted at the moment of the shutdown is either run and answered or still queued,
// never dropped by the interrupted fetch.
func TestShutdownInterruptsTheBlockingFetch(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	for _, mode := range []redisq.Mode{redisq.ModeSimple, redisq.ModeRecoverable, redisq.ModeReliable} {
		t.Run("mode="+string(mode), func(t *testing.T) {
			keys := redisq.Keys{Prefix: "stop-" + string(mode)}
			c, col := startClient(t, srv, redisq.ClientConfig{Mode: mode, Keys: keys})
			var answered, queued int
			for i := 0; i < 40; i++ {
				w := startTestWorker(t, srv, redisq.WorkerConfig{Mode: mode, Keys: keys, Handler: echoRPC,
					Concurrency: 2, PollTimeout: 10 * time.Second})
				waitFor(t, func() bool { return blockedClients(rdb) >= 1 })
				if i%2 == 0 { // an idle worker: nothing but the shutdown ends its fetch
					start := time.Now()
					if err := w.Shutdown(ctx); err != nil {
						t.Fatal(err)
					}
					if took := time.Since(start); took > 2*time.Second {
						t.Fatalf("Shutdown took %v (PollTimeout 10 s)", took)
					}
					continue
				}
				id := fmt.Sprintf("%s-%02d", mode, i)
				submitted := make(chan error, 1)
				go func() { submitted <- c.Submit(redisq.RPCSubmission(id, "echo", []byte(`{"args":1}`))) }()
				if err := w.Shutdown(ctx); err != nil {
					t.Fatal(err)
				}
				if err := <-submitted; err != nil {
					t.Fatal(err)
				}
				// The submit may still be on its way to Redis: wait until the job is either queued or answered.
				// (A simple-mode client queues its jobs on a list of its own, Keys.Simple.)
				var got redisq.Completion
				waitFor(t, func() bool {
					n1, _ := rdb.LLen(ctx, keys.Pending()).Result()
					n2, _ := rdb.LLen(ctx, keys.Simple()).Result()
					if n1+n2 > 0 {
						return true
					}
					if n, _ := rdb.LLen(ctx, keys.Simple()).Result(); n > 0 { // simple mode's own list
						return true
					}
					select {
					case got = <-col.ch:
						return true
					default:
						return false
					}
				})
				if got.JobID == "" {
					queued++
					rdb.Del(ctx, keys.Pending(), keys.Simple())
					c.Forget(id)
					continue
				}
				if got.JobID != id || got.Err != nil {
					t.Fatalf("completion %+v", got)
				}
				answered++
				if n, _ := rdb.LLen(ctx, keys.Processing()).Result(); n != 0 {
					t.Fatalf("%d IDs left in processing", n)
				}
			}
			t.Logf("%d jobs answered by the stopping worker, %d left queued", answered, queued)
		})
	}
}
