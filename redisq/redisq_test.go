package redisq_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/redisq"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// collector gathers completions delivered by a Client.
type collector struct {
	mu  sync.Mutex
	got map[string]redisq.Completion
	ch  chan redisq.Completion
}

func newCollector() *collector {
	return &collector{got: map[string]redisq.Completion{}, ch: make(chan redisq.Completion, 1<<16)}
}

func (c *collector) add(x redisq.Completion) {
	c.mu.Lock()
	c.got[x.JobID] = x
	c.mu.Unlock()
	c.ch <- x
}

func (c *collector) wait(t *testing.T, n int) []redisq.Completion {
	t.Helper()
	var out []redisq.Completion
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case x := <-c.ch:
			out = append(out, x)
		case <-timeout:
			t.Fatalf("got %d of %d completions", len(out), n)
		}
	}
	return out
}

func startPair(t *testing.T, srv *redistest.Server, h redisq.Handler) (*redisq.Client, *collector) {
	t.Helper()
	c, col := startClient(t, srv, redisq.ClientConfig{})
	if h != nil {
		startTestWorker(t, srv, redisq.WorkerConfig{Handler: h})
	}
	return c, col
}

// startClient starts a client on srv (cfg's Redis and OnComplete are filled in) until the test ends.
func startClient(t *testing.T, srv *redistest.Server, cfg redisq.ClientConfig) (*redisq.Client, *collector) {
	t.Helper()
	col := newCollector()
	if cfg.Redis == nil {
		cfg.Redis = srv.Client()
	}
	cfg.OnComplete = col.add
	cfg.Logger = quiet
	c, err := redisq.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown(context.Background()) })
	return c, col
}

// startTestWorker starts a worker on srv (cfg's Redis is filled in if nil) until the test ends.
func startTestWorker(t *testing.T, srv *redistest.Server, cfg redisq.WorkerConfig) *redisq.Worker {
	t.Helper()
	if cfg.Redis == nil {
		rdb := redis.NewClient(redisq.WorkerRedisOptions(&redis.Options{Addr: srv.Addr}, 4))
		t.Cleanup(func() { rdb.Close() })
		cfg.Redis = rdb
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 4
	}
	if cfg.PollTimeout == 0 {
		cfg.PollTimeout = time.Second
	}
	cfg.Logger = quiet
	w, err := redisq.NewWorker(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Shutdown(context.Background()) })
	return w
}

func TestClientWorkerRoundTrip(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	router := redisq.NewRouter()
	router.Handle("add", redisq.RPC(func(ctx context.Context, req *redisq.RPCRequest) (any, error) {
		var args struct{ A, B int }
		if err := json.Unmarshal(req.Args, &args); err != nil {
			return nil, err
		}
		return args.A + args.B, nil
	}))
	router.Handle("fail", redisq.RPC(func(ctx context.Context, req *redisq.RPCRequest) (any, error) {
		return nil, errors.New("boom")
	}))
	c, col := startPair(t, srv, router)

	tests := []struct {
		name, method, params string
		want                 string
		wantErr              error
	}{
		{"success", "add", `{"args":{"a":2,"b":3}}`, "5", nil},
		{"worker failure", "fail", `{"args":{}}`, "", redisq.ErrJobFailed},
		{"unknown method", "nope", `{"args":{}}`, "", redisq.ErrJobFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := redisq.NewID()
			if err := c.Submit(redisq.RPCSubmission(id, tt.method, []byte(tt.params))); err != nil {
				t.Fatal(err)
			}
			got := col.wait(t, 1)[0]
			if got.JobID != id {
				t.Fatalf("completion for %s, want %s", got.JobID, id)
			}
			if tt.wantErr != nil {
				if !errors.Is(got.Err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", got.Err, tt.wantErr)
				}
				return
			}
			if got.Err != nil {
				t.Fatal(got.Err)
			}
			res, err := redisq.RPCResult(got.Result)
			if err != nil || string(res) != tt.want {
				t.Fatalf("result = %s (%v), want %s", res, err, tt.want)
			}
		})
	}
	// The client deletes each job hash after reading it; nothing is left in processing.
	rdb := srv.Client()
	var keys []string
	waitForMsg(t, func() bool {
		keys, _ = rdb.Keys(context.Background(), "job::*").Result()
		return len(keys) == 0
	}, func() string { return fmt.Sprintf("job hashes left behind: %v", keys) })
	if n, _ := rdb.LLen(context.Background(), "jobs::processing").Result(); n != 0 {
		t.Fatalf("%d IDs left in jobs::processing", n)
	}
}

func TestManyConcurrentJobs(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	h := redisq.RPC(func(ctx context.Context, req *redisq.RPCRequest) (any, error) { return req.Args, nil })
	c, col := startPair(t, srv, h)
	const n = 2000
	want := map[string]string{}
	for i := 0; i < n; i++ {
		id := redisq.NewID()
		want[id] = fmt.Sprintf(`{"i":%d}`, i)
		if err := c.Submit(redisq.RPCSubmission(id, "echo", []byte(`{"args":`+want[id]+`}`))); err != nil {
			t.Fatal(err)
		}
	}
	for _, got := range col.wait(t, n) {
		res, err := redisq.RPCResult(got.Result)
		if err != nil || string(res) != want[got.JobID] {
			t.Fatalf("job %s: %s (%v), want %s", got.JobID, res, err, want[got.JobID])
		}
		delete(want, got.JobID)
	}
	if len(want) != 0 {
		t.Fatalf("%d jobs without a completion", len(want))
	}
}

func TestJobHashHasTTL(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c, _ := startPair(t, srv, nil) // no worker: the job stays queued
	id := redisq.NewID()
	if err := c.Submit(redisq.RPCSubmission(id, "x", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}
	rdb := srv.Client()
	var ttl time.Duration
	waitFor(t, func() bool { // the submit reaches Redis with the next pipeline
		ttl, _ = rdb.TTL(context.Background(), redisq.JobKey(id)).Result()
		return ttl > 0
	})
	if ttl <= 0 || ttl > redisq.DefaultJobTTL {
		t.Fatalf("TTL of job hash = %v, want (0, %v]", ttl, redisq.DefaultJobTTL)
	}
}

func TestSubmitAfterShutdown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c, _ := startPair(t, srv, nil)
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatal("second Shutdown:", err)
	}
	if err := c.Submit(redisq.RPCSubmission(redisq.NewID(), "x", nil)); !errors.Is(err, redisq.ErrClosed) {
		t.Fatalf("Submit after Shutdown = %v, want ErrClosed", err)
	}
}

func TestNewIDShape(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := redisq.NewID()
		if len(id) != 36 || id[8] != '-' || id[13] != '-' || id[14] != '4' || id[18] != '-' || id[23] != '-' {
			t.Fatalf("bad ID shape %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate ID %q", id)
		}
		seen[id] = true
	}
}

func waitFor(t *testing.T, cond func() bool) { t.Helper(); testutil.WaitFor(t, cond) }

// waitForMsg polls cond like waitFor and, if it never holds, fails with msg() (the state it last saw).
func waitForMsg(t *testing.T, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
