package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/redisq"
)

// queueCLI runs `wsgate queue args...` against srv and returns its standard output.
func queueCLI(t *testing.T, srv *redistest.Server, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := runQueue(context.Background(), append(args, "--redis", srv.URL()), &out, &errOut)
	return out.String(), err
}

func mustQueueCLI(t *testing.T, srv *redistest.Server, args ...string) string {
	t.Helper()
	out, err := queueCLI(t, srv, args...)
	if err != nil {
		t.Fatalf("wsgate queue %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// completions collects what a redisq client is answered.
type completions struct {
	mu  sync.Mutex
	got map[string]redisq.Completion
}

func (c *completions) add(x redisq.Completion) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got[x.JobID] = x
}

func (c *completions) get(id string) (redisq.Completion, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	x, ok := c.got[id]
	return x, ok
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func startQueueClient(t *testing.T, srv *redistest.Server) (*redisq.Client, *completions) {
	t.Helper()
	col := &completions{got: map[string]redisq.Completion{}}
	c, err := redisq.NewClient(redisq.ClientConfig{Redis: srv.Client(), OnComplete: col.add, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Shutdown(context.Background()) })
	return c, col
}

func submit(t *testing.T, c *redisq.Client, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = redisq.NewID()
		if err := c.Submit(redisq.RPCSubmission(ids[i], "echo", []byte(`{"args":{"echo":"hello, world"}}`))); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func queueStats(t *testing.T, srv *redistest.Server) redisq.QueueStats {
	t.Helper()
	var rows []struct {
		Name string `json:"name"`
		redisq.QueueStats
	}
	if err := json.Unmarshal([]byte(mustQueueCLI(t, srv, "stats", "--json")), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Name != "default" {
		t.Fatalf("stats rows: %+v", rows)
	}
	return rows[0].QueueStats
}

func TestQueueStatsJobsAndShow(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	c, _ := startQueueClient(t, srv)

	ids := submit(t, c, 5)
	testutil.WaitFor(t, func() bool { return rdb.LLen(context.Background(), "jobs::pending").Val() == 5 })
	time.Sleep(20 * time.Millisecond) // let the oldest job age measurably

	st := queueStats(t, srv)
	if st.Pending != 5 || st.Processing != 0 || st.Dead != 0 || st.LiveWorkers != 0 {
		t.Errorf("stats with 5 waiting and no worker: %+v", st)
	}
	if st.OldestPendingAge < 20*time.Millisecond || st.OldestPendingAge > time.Minute {
		t.Errorf("oldest pending age %v", st.OldestPendingAge)
	}
	human := mustQueueCLI(t, srv, "stats")
	if !strings.Contains(human, "jobs::pending") || !strings.Contains(human, "PENDING") {
		t.Errorf("human stats:\n%s", human)
	}

	// jobs lists the next job first (workers take from the right: the first submitted).
	var jobs []redisq.JobInfo
	if err := json.Unmarshal([]byte(mustQueueCLI(t, srv, "jobs", "--json", "--limit", "2")), &jobs); err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 2 || jobs[0].ID != ids[0] || jobs[1].ID != ids[1] {
		t.Fatalf("jobs: %+v, want %s then %s", jobs, ids[0], ids[1])
	}
	if jobs[0].ReplyTo != c.ID() || jobs[0].TTL <= 0 || jobs[0].Data["name"] != "echo" {
		t.Errorf("job decoded as %+v", jobs[0])
	}

	show := mustQueueCLI(t, srv, "show", ids[3])
	for _, want := range []string{"job " + ids[3], "reply to:", "queued:", `params:     {"args":{"echo":"hello, world"}}`, "name:       echo"} {
		if !strings.Contains(show, want) {
			t.Errorf("show lacks %q:\n%s", want, show)
		}
	}
	if out := mustQueueCLI(t, srv, "show", "no-such-job"); !strings.Contains(out, "no hash") {
		t.Errorf("show of a missing job: %s", out)
	}

	// A worker drains the queue: it is seen alive and its jobs are counted.
	wrdb := redis.NewClient(redisq.WorkerRedisOptions(&redis.Options{Addr: srv.Addr}, 4))
	t.Cleanup(func() { wrdb.Close() })
	w, err := redisq.NewWorker(redisq.WorkerConfig{Redis: wrdb, Logger: quietLog, PollTimeout: time.Second,
		Handler: redisq.RPC(func(ctx context.Context, req *redisq.RPCRequest) (any, error) { return "ok", nil })})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Shutdown(context.Background()) })
	testutil.WaitFor(t, func() bool {
		st := queueStats(t, srv)
		return st.Pending == 0 && st.Processing == 0 && st.LiveWorkers == 1 && st.JobsPerSecond > 0
	})
	if out := mustQueueCLI(t, srv, "workers"); !strings.Contains(out, w.ID()) {
		t.Errorf("workers does not list %s:\n%s", w.ID(), out)
	}
}

// deadJob writes a job as the reaper leaves one after its last delivery: the hash (with a TTL) and its ID on
// the dead-letter list.
func deadJob(t *testing.T, rdb *redis.Client, replyTo string) string {
	t.Helper()
	ctx := context.Background()
	id := redisq.NewID()
	rdb.HSet(ctx, redisq.JobKey(id), "_reply_to", replyTo, "_queued", "1568884749.12345", "text_name", "echo",
		"text_params", `{"args":{"echo":1}}`, "_deliveries", "5", "_worker", "gone")
	rdb.Expire(ctx, redisq.JobKey(id), time.Minute)
	rdb.LPush(ctx, "jobs::dead", id)
	return id
}

func TestQueueDeadLetters(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client()
	ctx := context.Background()
	a, b := deadJob(t, rdb, "someone"), deadJob(t, rdb, "someone")
	expired := deadJob(t, rdb, "someone")
	rdb.Del(ctx, redisq.JobKey(expired))

	list := mustQueueCLI(t, srv, "dead", "list")
	for _, id := range []string{a, b, expired} {
		if !strings.Contains(list, "job "+id) {
			t.Errorf("dead list lacks %s:\n%s", id, list)
		}
	}
	if !strings.Contains(list, "deliveries: 5") {
		t.Errorf("dead list does not show deliveries:\n%s", list)
	}

	for _, cmd := range [][]string{{"dead", "requeue"}, {"dead", "purge"}, {"pending", "purge"}} {
		if _, err := queueCLI(t, srv, cmd...); err == nil || !strings.Contains(err.Error(), "--yes") {
			t.Errorf("%v without --yes: %v", cmd, err)
		}
	}
	if n := rdb.LLen(ctx, "jobs::dead").Val(); n != 3 {
		t.Fatalf("a refused command changed the dead list: %d left", n)
	}

	out := mustQueueCLI(t, srv, "dead", "requeue", "--yes", a)
	if !strings.Contains(out, "requeued 1") {
		t.Errorf("requeue one: %s", out)
	}
	if got := rdb.LRange(ctx, "jobs::pending", 0, -1).Val(); len(got) != 1 || got[0] != a {
		t.Errorf("pending after requeue: %v", got)
	}
	if h := rdb.HGetAll(ctx, redisq.JobKey(a)).Val(); h["_deliveries"] != "" || h["_worker"] != "" || h["text_name"] != "echo" {
		t.Errorf("requeued hash: %v", h)
	}
	if ttl := rdb.TTL(ctx, redisq.JobKey(a)).Val(); ttl <= 0 {
		t.Errorf("requeued hash lost its TTL: %v", ttl)
	}

	out = mustQueueCLI(t, srv, "dead", "requeue", "--yes", "--json")
	var counts map[string]int
	if err := json.Unmarshal([]byte(out), &counts); err != nil || counts["requeued"] != 1 || counts["dropped"] != 1 {
		t.Errorf("requeue all: %s (%v)", out, err)
	}

	deadJob(t, rdb, "someone")
	if out := mustQueueCLI(t, srv, "dead", "purge", "--yes"); !strings.Contains(out, "purged 1") {
		t.Errorf("purge: %s", out)
	}
	if n := rdb.LLen(ctx, "jobs::dead").Val(); n != 0 {
		t.Errorf("dead list after purge: %d", n)
	}
}

func TestQueuePendingPurgeAnswersCallers(t *testing.T) {
	srv := redistest.Start(t)
	c, col := startQueueClient(t, srv)
	ids := submit(t, c, 3)
	rdb := srv.Client()
	testutil.WaitFor(t, func() bool { return rdb.LLen(context.Background(), "jobs::pending").Val() == 3 })

	if out := mustQueueCLI(t, srv, "pending", "purge", "--yes"); !strings.Contains(out, "purged 3") {
		t.Errorf("purge: %s", out)
	}
	// Every caller learns at once that its job will not run.
	for _, id := range ids {
		testutil.WaitFor(t, func() bool { _, ok := col.get(id); return ok })
		x, _ := col.get(id)
		if !errors.Is(x.Err, redisq.ErrJobFailed) || !strings.Contains(x.Err.Error(), redisq.PurgedError) {
			t.Errorf("job %s: %v", id, x.Err)
		}
	}
	if st := queueStats(t, srv); st.Pending != 0 {
		t.Errorf("pending after purge: %d", st.Pending)
	}
}

func TestQueueFailsFastWithoutRedis(t *testing.T) {
	var out bytes.Buffer
	err := runQueue(context.Background(), []string{"stats", "--redis", fmt.Sprintf("redis://127.0.0.1:%d", redistest.FreePort(t))}, &out, &out)
	if err == nil || !strings.Contains(err.Error(), "cannot reach Redis") {
		t.Fatalf("stats without Redis: %v", err)
	}
}

func TestQueueCommandLineErrors(t *testing.T) {
	srv := redistest.Start(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no command"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"show"}, "needs one or more job IDs"},
		{[]string{"jobs", "--list", "nope"}, `no list "nope"`},
		{[]string{"stats", "--queue", "nope"}, `no queue named "nope"`},
	} {
		_, err := queueCLI(t, srv, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("queue %v: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
