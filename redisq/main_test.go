package redisq_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/wsgate/wsgate/redisq"
)

// helperWorkerEnv makes the test binary run as a worker process (for tests that kill a worker).
const helperWorkerEnv = "REDISQ_TEST_HELPER_WORKER"

// helperHangAtTakeEnv makes the helper worker's fetchers hang in their take step (after the fetch moved jobs to
// processing, before they are marked), each announcing it with INCR fetched::<pid>.
const helperHangAtTakeEnv = "REDISQ_TEST_HELPER_HANG_AT_TAKE"

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
	concurrency := 1
	rdb := redis.NewClient(redisq.WorkerRedisOptions(&redis.Options{Addr: addr}, 8))
	if os.Getenv(helperHangAtTakeEnv) != "" {
		rdb.AddHook(hangAtTake{signal: redis.NewClient(&redis.Options{Addr: addr})})
		concurrency = 8 // several fetchers, each holding a batch
	}
	w, err := redisq.NewWorker(redisq.WorkerConfig{Redis: rdb, Concurrency: concurrency, Heartbeat: 100 * time.Millisecond,
		Logger: quiet, Handler: redisq.HandlerFunc(func(ctx context.Context, job *redisq.Job) (redisq.Result, error) {
			rdb.Set(ctx, "started::"+job.ID, os.Getpid(), 0)
			time.Sleep(time.Hour)
			return redisq.Text("never"), nil
		})})
	if err != nil {
		os.Exit(3)
	}
	if err := w.Start(context.Background()); err != nil {
		os.Exit(3)
	}
	select {}
}

// hangAtTake blocks every pipeline that holds a take script (an EVAL that reads the job with HGETALL), after
// counting it.
type hangAtTake struct{ signal *redis.Client }

func (h hangAtTake) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h hangAtTake) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h hangAtTake) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		// The take step is the only pipeline of the worker that starts with a script call (EVALSHA, or EVAL
		// the first time).
		if name := cmds[0].Name(); name == "evalsha" || (name == "eval" && strings.Contains(fmt.Sprint(cmds[0].Args()[1]), "HGETALL")) {
			h.signal.Incr(ctx, "fetched::"+strconv.Itoa(os.Getpid()))
			select {} // until SIGKILL
		}
		return next(ctx, cmds)
	}
}
