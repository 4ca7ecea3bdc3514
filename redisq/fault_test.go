package redisq_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/redisq"
)

func TestWorkerKilledMidJobIsRunAgain(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c, col := startClient(t, srv, redisq.ClientConfig{})
	victim := exec.Command(os.Args[0], "-test.run=^$")
	victim.Env = append(os.Environ(), helperWorkerEnv+"="+srv.Addr)
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { victim.Process.Kill(); victim.Wait() })

	id := redisq.NewID()
	c.Submit(redisq.RPCSubmission(id, "echo", []byte(`{"args":"survived"}`)))
	rdb := srv.Client()
	waitFor(t, func() bool { n, _ := rdb.Exists(context.Background(), "started::"+id).Result(); return n == 1 })
	if err := victim.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	victim.Wait()

	// Another worker notices the dead worker's lease and runs the job again.
	deliveries := make(chan int, 1)
	startTestWorker(t, srv, redisq.WorkerConfig{Heartbeat: 100 * time.Millisecond, Handler: redisq.HandlerFunc(
		func(ctx context.Context, job *redisq.Job) (redisq.Result, error) {
			deliveries <- job.Deliveries
			return echoRPC.ServeJob(ctx, job)
		})})
	got := col.wait(t, 1)[0]
	if res, _ := redisq.RPCResult(got.Result); got.JobID != id || got.Err != nil || string(res) != `"survived"` {
		t.Fatalf("completion %+v", got)
	}
	if d := <-deliveries; d != 2 {
		t.Fatalf("delivery %d, want 2", d)
	}
}

func TestRedisRestartedMidLoad(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for _, mode := range []redisq.Mode{redisq.ModeSimple, redisq.ModeRecoverable, redisq.ModeReliable} {
		t.Run("mode="+string(mode), func(t *testing.T) {
			keys := redisq.Keys{Prefix: "fault-" + string(mode)}
			c, col := startClient(t, srv, redisq.ClientConfig{Mode: mode, Keys: keys})
			startTestWorker(t, srv, redisq.WorkerConfig{Mode: mode, Keys: keys, Handler: echoRPC, Concurrency: 8})

			// Submit steadily; Redis dies a third of the way in and comes back 500 ms later.
			submitted := map[string]bool{}
			var mu sync.Mutex
			var restartedAt time.Time
			done := make(chan struct{})
			go func() {
				defer close(done)
				for i := 0; i < 600; i++ {
					if i == 200 {
						srv.Kill()
						time.Sleep(500 * time.Millisecond)
						srv.Restart()
						mu.Lock()
						restartedAt = time.Now()
						mu.Unlock()
					}
					id := fmt.Sprintf("%s-%04d", mode, i)
					if err := c.Submit(redisq.RPCSubmission(id, "echo", []byte(`{"args":1}`))); err == nil {
						mu.Lock()
						submitted[id] = true
						mu.Unlock()
					}
					time.Sleep(2 * time.Millisecond)
				}
			}()
			<-done
			mu.Lock()
			n := len(submitted)
			mu.Unlock()

			// Every job that was submitted gets exactly one outcome, a result or a clear error, well before its
			// timeout (JobTTL, 330 s). Simple mode too: results published while the client's pub/sub was down are
			// kept for it, and jobs wiped with Redis's data fail with ErrJobLost.
			outcomes := map[string]error{}
			var firstOK time.Time
			quiet := time.NewTimer(30 * time.Second)
			for len(outcomes) < n {
				quiet.Reset(30 * time.Second)
				select {
				case got := <-col.ch:
					if _, dup := outcomes[got.JobID]; dup {
						t.Fatalf("second outcome for %s", got.JobID)
					}
					if !submitted[got.JobID] {
						t.Fatalf("outcome for a job never submitted: %s", got.JobID)
					}
					outcomes[got.JobID] = got.Err
					mu.Lock()
					after := !restartedAt.IsZero()
					mu.Unlock()
					if got.Err == nil && firstOK.IsZero() && after && got.JobID > fmt.Sprintf("%s-%04d", mode, 200) {
						firstOK = time.Now()
					}
				case <-quiet.C:
					t.Fatalf("%d of %d submitted jobs got an outcome", len(outcomes), n)
				}
			}
			var ok, lost, failed int
			for _, err := range outcomes {
				switch {
				case err == nil:
					ok++
				case errors.Is(err, redisq.ErrJobLost):
					lost++
				default:
					failed++
				}
			}
			t.Logf("mode %s: %d submitted: %d results, %d lost with Redis, %d failed submits or reads, %d unanswered; "+
				"first result %v after Redis came back", mode, n, ok, lost, failed, n-len(outcomes),
				firstOK.Sub(restartedAt).Round(time.Millisecond))
			if ok < n/2 {
				t.Fatalf("only %d of %d jobs succeeded", ok, n)
			}
		})
	}
}
