package redisq_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/redisq"
)

// countingEcho is echoRPC that counts its runs.
func countingEcho(runs *atomic.Int32) redisq.Handler {
	return redisq.HandlerFunc(func(ctx context.Context, job *redisq.Job) (redisq.Result, error) {
		runs.Add(1)
		return echoRPC.ServeJob(ctx, job)
	})
}

// TestOrphanTimeout: a Perl worker takes a job as it does (BRPOPLPUSH, HGETALL, HMSET _started, with no
// heartbeat and no _worker) and dies. With OrphanTimeout a Go worker requeues and runs it once; without, the
// job is left alone (the Perl at-most-once behaviour), however old it is.
func TestOrphanTimeout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		started func() time.Time // the dead Perl worker's _started
	}{
		{"off", 0, func() time.Time { return time.Now().Add(-time.Hour) }},
		{"on", 300 * time.Millisecond, time.Now},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := redistest.Start(t)
			c, col := startClient(t, srv, redisq.ClientConfig{})
			id := redisq.NewID()
			c.Submit(redisq.RPCSubmission(id, "echo", []byte(`{"args":"orphan"}`)))
			perl, ctx := srv.Client(), context.Background()
			if got, err := perl.BRPopLPush(ctx, "jobs::pending", "jobs::processing", time.Second).Result(); err != nil || got != id {
				t.Fatalf("BRPOPLPUSH: %q %v", got, err)
			}
			perl.HGetAll(ctx, redisq.JobKey(id))
			started := tc.started()
			perl.HSet(ctx, redisq.JobKey(id), "_started", fmt.Sprintf("%.5f", float64(started.UnixMicro())/1e6))
			// ... and the Perl worker dies.

			var runs atomic.Int32
			w := startTestWorker(t, srv, redisq.WorkerConfig{Handler: countingEcho(&runs),
				Heartbeat: 50 * time.Millisecond, OrphanTimeout: tc.timeout})
			if tc.timeout == 0 {
				for i := 0; i < 3; i++ {
					if err := w.Reap(ctx); err != nil {
						t.Fatal(err)
					}
				}
				if ids, _ := perl.LRange(ctx, "jobs::processing", 0, -1).Result(); len(ids) != 1 || ids[0] != id {
					t.Fatalf("processing %v, want the Perl worker's job left alone", ids)
				}
				if runs.Load() != 0 || w.Stats().Requeued != 0 {
					t.Fatalf("the job of a Perl worker was taken over (%d runs)", runs.Load())
				}
				return
			}
			got := col.wait(t, 1)[0]
			if res, _ := redisq.RPCResult(got.Result); got.JobID != id || got.Err != nil || string(res) != `"orphan"` {
				t.Fatalf("completion %+v", got)
			}
			if age := time.Since(started); age < tc.timeout {
				t.Fatalf("requeued after %v, before the orphan timeout", age)
			}
			// Exactly one run and one result, even though every reaper pass sees the job until it is answered.
			waitFor(t, func() bool { n, _ := perl.LLen(ctx, "jobs::processing").Result(); return n == 0 })
			for i := 0; i < 3; i++ {
				_ = w.Reap(ctx)
			}
			if n := runs.Load(); n != 1 || c.Stats().Completed != 1 || w.Stats().Requeued != 1 {
				t.Fatalf("%d runs, client %+v, worker %+v", n, c.Stats(), w.Stats())
			}
		})
	}
}

// TestUnmarkedJobIsRequeued: a worker moved a job to processing and died before marking it (no _started, no
// _worker). Reapers stamp _orphan_seen the first time they see it and requeue it three heartbeats later.
func TestUnmarkedJobIsRequeued(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c, col := startClient(t, srv, redisq.ClientConfig{})
	id := redisq.NewID()
	c.Submit(redisq.RPCSubmission(id, "echo", []byte(`{"args":"moved"}`)))
	rdb, ctx := srv.Client(), context.Background()
	waitFor(t, func() bool { n, _ := rdb.LLen(ctx, "jobs::pending").Result(); return n == 1 })
	rdb.LMove(ctx, "jobs::pending", "jobs::processing", "RIGHT", "LEFT")

	var runs atomic.Int32
	w := startTestWorker(t, srv, redisq.WorkerConfig{Handler: countingEcho(&runs), Heartbeat: 100 * time.Millisecond})
	if err := w.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	seen, _ := rdb.HGet(ctx, redisq.JobKey(id), "_orphan_seen").Float64()
	if seen == 0 {
		t.Fatal("the reaper did not stamp _orphan_seen")
	}
	got := col.wait(t, 1)[0]
	if got.JobID != id || got.Err != nil {
		t.Fatalf("completion %+v", got)
	}
	if now, _ := rdb.Time(ctx).Result(); now.Sub(time.UnixMicro(int64(seen*1e6))) < 300*time.Millisecond {
		t.Fatal("requeued before the grace of three heartbeats")
	}
	if n := runs.Load(); n != 1 || w.Stats().Requeued != 1 {
		t.Fatalf("%d runs, worker %+v", n, w.Stats())
	}
}

// TestWorkerKilledAfterFetchLosesNoJob SIGKILLs a real worker process after it moved jobs to processing and
// before it marked them (it hangs in the pipeline of its take step): every job is answered exactly once.
func TestWorkerKilledAfterFetchLosesNoJob(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c, col := startClient(t, srv, redisq.ClientConfig{})
	const n = 40
	for i := 0; i < n; i++ {
		c.Submit(redisq.RPCSubmission(fmt.Sprintf("job-%02d", i), "echo", []byte(`{"args":1}`)))
	}
	rdb, ctx := srv.Client(), context.Background()
	waitFor(t, func() bool { n2, _ := rdb.LLen(ctx, "jobs::pending").Result(); return n2 == n })

	victim := exec.Command(os.Args[0], "-test.run=^$")
	victim.Env = append(os.Environ(), helperWorkerEnv+"="+srv.Addr, helperHangAtTakeEnv+"=1")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { victim.Process.Kill(); victim.Wait() })
	pid := strconv.Itoa(victim.Process.Pid)
	// All four fetchers of the victim (concurrency 8) take jobs and hang in their take step.
	waitFor(t, func() bool { m, _ := rdb.Get(ctx, "fetched::"+pid).Int(); return m == 4 })
	if err := victim.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	victim.Wait()
	moved, _ := rdb.LLen(ctx, "jobs::processing").Result()
	if moved == 0 {
		t.Fatal("the victim died holding no job: the test proves nothing")
	}

	var runs atomic.Int32
	startTestWorker(t, srv, redisq.WorkerConfig{Handler: countingEcho(&runs), Heartbeat: 100 * time.Millisecond})
	seen := map[string]bool{}
	for _, got := range col.wait(t, n) {
		if got.Err != nil || seen[got.JobID] {
			t.Fatalf("completion %+v (seen before: %v)", got, seen[got.JobID])
		}
		seen[got.JobID] = true
	}
	if r := runs.Load(); r != n {
		t.Fatalf("%d runs for %d jobs", r, n)
	}
	t.Logf("the killed worker had moved %d jobs to processing without marking them", moved)
}

// A job whose worker died and whose caller gave up (cancelled) is dropped by the reaper, not run again: a Perl
// worker would otherwise run it for nobody.
func TestReaperDropsCancelledJobsOfDeadWorkers(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb, ctx := srv.Client(), context.Background()
	for _, worker := range []string{"dead-worker", ""} { // a dead Go worker's job, and an unmarked one
		id := redisq.NewID()
		rdb.HSet(ctx, redisq.JobKey(id), "_reply_to", "gone", "text_name", "echo", "_worker", worker,
			"_cancelled", "1568884749.1")
		rdb.Expire(ctx, redisq.JobKey(id), time.Minute)
		rdb.LPush(ctx, "jobs::processing", id)
	}
	var runs atomic.Int32
	w := startTestWorker(t, srv, redisq.WorkerConfig{Handler: countingEcho(&runs)})
	if err := w.Reap(ctx); err != nil {
		t.Fatal(err)
	}
	for _, list := range []string{"jobs::processing", "jobs::pending", "jobs::dead"} {
		if n := rdb.LLen(ctx, list).Val(); n != 0 {
			t.Errorf("%s holds %d IDs after the reaper, want 0", list, n)
		}
	}
	if runs.Load() != 0 || w.Stats().Requeued != 0 {
		t.Errorf("a cancelled job was run again (%d runs, %d requeued)", runs.Load(), w.Stats().Requeued)
	}
}
