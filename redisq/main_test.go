package redisq_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/redisq"
)

// helperWorkerEnv makes the test binary run as a worker process (for tests that kill a worker).
const helperWorkerEnv = "REDISQ_TEST_HELPER_WORKER"

func TestMain(m *testing.M) {
	if addr := os.Getenv(helperWorkerEnv); addr != "" {
		runHelperWorker(addr)
		return
	}
	// Every goroutine a test starts must be stopped by the end of the package's tests.
	goleak.VerifyTestMain(m)
}

// runHelperWorker serves jobs by announcing them (SET started::<id>) and then hanging until it is killed.
func runHelperWorker(addr string) {
	rdb := redis.NewClient(redisq.WorkerRedisOptions(&redis.Options{Addr: addr}, 1))
	w, err := redisq.NewWorker(redisq.WorkerConfig{Redis: rdb, Concurrency: 1, Heartbeat: 100 * time.Millisecond,
		Logger: quiet, Handler: redisq.HandlerFunc(func(ctx context.Context, job *redisq.Job) (redisq.Result, error) {
			rdb.Set(ctx, "started::"+job.ID, os.Getpid(), 0)
			time.Sleep(time.Hour)
			return redisq.Text("never"), nil
		})})
	if err != nil {
		os.Exit(3)
	}
	w.Start()
	select {}
}
