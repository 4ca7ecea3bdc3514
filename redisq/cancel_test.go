package redisq_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/redisq"
)

// TestCancelledJobIsNotRunByAGoWorker: a worker of any hash mode that took the ID of a cancelled job (just
// before the client's LREM; here the ID is pushed back to stand for that) skips it, and leaves nothing behind.
func TestCancelledJobIsNotRunByAGoWorker(t *testing.T) {
	for _, mode := range []redisq.Mode{redisq.ModeSimple, redisq.ModeRecoverable, redisq.ModeReliable} {
		t.Run("worker="+string(mode), func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			c, _ := startClient(t, srv, redisq.ClientConfig{Mode: redisq.ModeReliable, CancelForgotten: true})
			id := redisq.NewID()
			c.Submit(redisq.RPCSubmission(id, "echo", []byte(`{"args":1}`)))
			rdb := srv.Client()
			ctx := context.Background()
			waitFor(t, func() bool { n, _ := rdb.LLen(ctx, "jobs::pending").Result(); return n == 1 })
			c.Forget(id) // the caller timed out
			waitFor(t, func() bool { n, _ := rdb.HExists(ctx, redisq.JobKey(id), "_cancelled").Result(); return n })
			rdb.RPush(ctx, "jobs::pending", id)
			var ran atomic.Int32
			w := startTestWorker(t, srv, redisq.WorkerConfig{Mode: mode,
				Handler: redisq.HandlerFunc(func(ctx context.Context, job *redisq.Job) (redisq.Result, error) {
					ran.Add(1)
					return echoRPC.ServeJob(ctx, job)
				})})
			waitFor(t, func() bool { return w.Stats().Skipped == 1 })
			if n := ran.Load(); n != 0 {
				t.Fatalf("the cancelled job ran %d times", n)
			}
			if n, _ := rdb.LLen(ctx, "jobs::processing").Result(); n != 0 {
				t.Fatalf("%d IDs left in processing", n)
			}
			if h, _ := rdb.HGetAll(ctx, redisq.JobKey(id)).Result(); h["_started"] != "" {
				t.Fatalf("the worker marked the cancelled job started: %v", h)
			}
			if leaked := keysWithoutTTL(t, rdb); len(leaked) > 0 {
				t.Fatalf("keys without a TTL: %v", leaked)
			}
			if st := c.Stats(); st.Completed != 0 || st.Late != 0 {
				t.Fatalf("client stats %+v", st)
			}
		})
	}
}

// TestTimeoutsInAMixedFleetLeaveNoKeyWithoutTTL: the gateway's timeouts (Forget) in a burst, with a Perl
// worker that took one of the jobs just before and the others after: the Perl worker finds no cancelled ID on
// the list, and the job it had taken is written into a hash that still expires. (With the hash deleted and the
// IDs left on the list, every late Perl fetch re-created a hash that never expired.)
func TestTimeoutsInAMixedFleetLeaveNoKeyWithoutTTL(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c, _ := startClient(t, srv, redisq.ClientConfig{CancelForgotten: true})
	rdb := srv.Client()
	ctx := context.Background()
	keys := redisq.Keys{}
	const n = 31
	ids := make([]string, n)
	for i := range ids {
		ids[i] = redisq.NewID()
		c.Submit(redisq.RPCSubmission(ids[i], "echo", []byte(`{"args":1}`)))
	}
	waitFor(t, func() bool { l, _ := rdb.LLen(ctx, keys.Pending()).Result(); return l == n })
	taken, ok := perlFetch(ctx, rdb, keys, time.Second) // the oldest job, taken before the timeout
	if !ok || taken != ids[0] {
		t.Fatalf("perl fetch: %q %v, want %s", taken, ok, ids[0])
	}
	for _, id := range ids {
		c.Forget(id)
	}
	waitFor(t, func() bool { return c.Stats().CancelledJobs == n })
	perlServe(ctx, rdb, keys, taken)
	if ttl, _ := rdb.Do(ctx, "TTL", redisq.JobKey(taken)).Int(); ttl == -1 { // -2: the client read and deleted it
		t.Fatal("the Perl worker's job hash has no TTL")
	}
	for {
		id, ok := perlFetch(ctx, rdb, keys, time.Second)
		if !ok {
			break
		}
		perlServe(ctx, rdb, keys, id) // what a Perl worker would do with a cancelled job left on the list
		t.Errorf("a Perl worker fetched cancelled job %s", id)
	}
	if leaked := keysWithoutTTL(t, rdb); len(leaked) > 0 {
		t.Fatalf("keys without a TTL: %v", leaked)
	}
}
