package redisq_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/redisq"
)

// echoRPC answers {"args": ...} with the args; method "fail" fails.
var echoRPC = redisq.RPC(func(ctx context.Context, req *redisq.RPCRequest) (any, error) {
	if req.Method == "fail" {
		return nil, errors.New("asked to fail")
	}
	return req.Args, nil
})

func TestModesAndProtocols(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for _, mode := range []redisq.Mode{redisq.ModeSimple, redisq.ModeRecoverable, redisq.ModeReliable} {
		for _, proto := range []int{2, 3} {
			t.Run(fmt.Sprintf("mode=%s/resp=%d", mode, proto), func(t *testing.T) {
				keys := redisq.Keys{Prefix: fmt.Sprintf("t-%s-%d", mode, proto)}
				rdb := redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: proto})
				t.Cleanup(func() { rdb.Close() })
				wrdb := redis.NewClient(redisq.WorkerRedisOptions(&redis.Options{Addr: srv.Addr, Protocol: proto}, 4))
				t.Cleanup(func() { wrdb.Close() })
				c, col := startClient(t, srv, redisq.ClientConfig{Redis: rdb, Mode: mode, Keys: keys})
				startTestWorker(t, srv, redisq.WorkerConfig{Redis: wrdb, Mode: mode, Keys: keys, Handler: echoRPC})
				const n = 50
				for i := 0; i < n; i++ {
					method := "echo"
					if i%10 == 0 {
						method = "fail"
					}
					id := fmt.Sprintf("%s-%d-%03d", mode, proto, i)
					if err := c.Submit(redisq.RPCSubmission(id, method, []byte(fmt.Sprintf(`{"args":{"i":%d}}`, i)))); err != nil {
						t.Fatal(err)
					}
				}
				for _, got := range col.wait(t, n) {
					var i int
					fmt.Sscanf(got.JobID[len(got.JobID)-3:], "%d", &i)
					if i%10 == 0 {
						if !errors.Is(got.Err, redisq.ErrJobFailed) {
							t.Fatalf("job %s: %v, want ErrJobFailed", got.JobID, got.Err)
						}
						continue
					}
					res, err := redisq.RPCResult(got.Result)
					if err != nil || string(res) != fmt.Sprintf(`{"i":%d}`, i) {
						t.Fatalf("job %s: %s %v", got.JobID, res, err)
					}
				}
				ctx := context.Background()
				// The hash of a job answered in its notification is deleted in the client's next pipeline.
				var left []string
				waitForMsg(t, func() bool {
					left, _ = rdb.Keys(ctx, "job::"+string(mode)+"*").Result()
					return len(left) == 0
				}, func() string { return fmt.Sprintf("left behind: %v", left) })
			})
		}
	}
}

// killPubSub drops every pub/sub connection of the server, as a network fault would.
func killPubSub(t *testing.T, srv *redistest.Server) {
	t.Helper()
	if err := srv.Client().Do(context.Background(), "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
		t.Fatal(err)
	}
}

func TestRecoveryAfterPubSubDrop(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	for _, mode := range []redisq.Mode{redisq.ModeRecoverable, redisq.ModeReliable} {
		t.Run("mode="+string(mode), func(t *testing.T) {
			keys := redisq.Keys{Prefix: "rec-" + string(mode)}
			c, col := startClient(t, srv, redisq.ClientConfig{Mode: mode, Keys: keys})
			id := redisq.NewID()
			c.Submit(redisq.RPCSubmission(id, "echo", []byte(`{"args":1}`)))
			rdb := srv.Client()
			waitFor(t, func() bool { n, _ := rdb.Exists(context.Background(), redisq.JobKey(id)).Result(); return n == 1 })
			// A worker answered while the client's pub/sub connection was down: the notification is lost.
			rdb.HSet(context.Background(), redisq.JobKey(id), "result", `T{"success":1,"result":"stored"}`)
			killPubSub(t, srv)
			got := col.wait(t, 1)[0]
			res, err := redisq.RPCResult(got.Result)
			if got.JobID != id || err != nil || string(res) != `"stored"` {
				t.Fatalf("recovered %+v (%s, %v)", got, res, err)
			}
			if st := c.Stats(); st.Recovered != 1 || st.Resubscribed == 0 || st.Pending != 0 {
				t.Fatalf("stats %+v", st)
			}
			// Recovery deletes the hash, as a normal completion does.
			waitFor(t, func() bool { n, _ := rdb.Exists(context.Background(), redisq.JobKey(id)).Result(); return n == 0 })
		})
	}
}

func TestJobsLostWithRedisFailAtOnce(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c, col := startClient(t, srv, redisq.ClientConfig{Mode: redisq.ModeReliable})
	ids := map[string]bool{}
	for i := 0; i < 3; i++ {
		id := redisq.NewID()
		ids[id] = true
		c.Submit(redisq.RPCSubmission(id, "echo", []byte(`{}`)))
	}
	rdb := srv.Client()
	waitFor(t, func() bool { n, _ := rdb.LLen(context.Background(), "jobs::pending").Result(); return n == 3 })
	srv.Restart() // no persistence: every job is gone
	for _, got := range col.wait(t, 3) {
		if !ids[got.JobID] || !errors.Is(got.Err, redisq.ErrJobLost) {
			t.Fatalf("completion %+v, want ErrJobLost for a submitted job", got)
		}
	}
	if st := c.Stats(); st.Lost != 3 || st.Pending != 0 {
		t.Fatalf("stats %+v", st)
	}
	// And the client works again.
	startTestWorker(t, srv, redisq.WorkerConfig{Handler: echoRPC})
	id := redisq.NewID()
	waitFor(t, func() bool { return c.Submit(redisq.RPCSubmission(id, "echo", []byte(`{"args":2}`))) == nil })
	for got := col.wait(t, 1)[0]; got.JobID != id || got.Err != nil; got = col.wait(t, 1)[0] {
		if got.JobID == id {
			t.Fatalf("after the restart: %+v", got)
		}
	}
}

func TestForgetCancelsTheQueuedJob(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c, col := startClient(t, srv, redisq.ClientConfig{CancelForgotten: true})
	id := redisq.NewID()
	c.Submit(redisq.RPCSubmission(id, "echo", []byte(`{}`)))
	rdb := srv.Client()
	ctx := context.Background()
	waitFor(t, func() bool { n, _ := rdb.LLen(ctx, "jobs::pending").Result(); return n == 1 })
	c.Forget(id)
	// The ID leaves the list; the hash is marked and left to expire.
	waitFor(t, func() bool { n, _ := rdb.LLen(ctx, "jobs::pending").Result(); return n == 0 })
	if h, _ := rdb.HGetAll(ctx, redisq.JobKey(id)).Result(); h["_cancelled"] == "" || h["_reply_to"] != c.ID() {
		t.Fatalf("job hash after Forget: %v", h)
	}
	if ttl, _ := rdb.TTL(ctx, redisq.JobKey(id)).Result(); ttl <= 0 {
		t.Fatalf("job hash TTL %v after Forget", ttl)
	}
	if st := c.Stats(); st.CancelledJobs != 1 || st.Pending != 0 {
		t.Fatalf("client stats %+v", st)
	}
	select {
	case got := <-col.ch:
		t.Fatalf("completion for a forgotten job: %+v", got)
	default:
	}
}

// takeAsDeadWorker moves a queued job into processing as a worker would, leaving a lease of a worker whose
// heartbeat does not exist: a worker that died mid-job.
func takeAsDeadWorker(t *testing.T, rdb *redis.Client, id string, deliveries int) {
	t.Helper()
	ctx := context.Background()
	waitFor(t, func() bool { n, _ := rdb.LLen(ctx, "jobs::pending").Result(); return n == 1 })
	if got, err := rdb.LMove(ctx, "jobs::pending", "jobs::processing", "RIGHT", "LEFT").Result(); err != nil || got != id {
		t.Fatalf("take: %q %v", got, err)
	}
	fields := []any{"_started", "1", "_worker", "dead-worker"}
	if deliveries > 0 {
		fields = append(fields, "_deliveries", deliveries)
	}
	rdb.HSet(ctx, redisq.JobKey(id), fields...)
}

func TestReaperRequeuesJobsOfDeadWorkers(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c, col := startClient(t, srv, redisq.ClientConfig{})
	id := redisq.NewID()
	c.Submit(redisq.RPCSubmission(id, "echo", []byte(`{"args":"again"}`)))
	takeAsDeadWorker(t, srv.Client(), id, 0)
	deliveries := make(chan int, 1)
	h := redisq.HandlerFunc(func(ctx context.Context, job *redisq.Job) (redisq.Result, error) {
		deliveries <- job.Deliveries
		return echoRPC.ServeJob(ctx, job)
	})
	w := startTestWorker(t, srv, redisq.WorkerConfig{Handler: h, Heartbeat: 100 * time.Millisecond})
	got := col.wait(t, 1)[0]
	if res, _ := redisq.RPCResult(got.Result); got.JobID != id || string(res) != `"again"` {
		t.Fatalf("completion %+v", got)
	}
	if d := <-deliveries; d != 2 {
		t.Fatalf("handler saw delivery %d, want 2", d)
	}
	if st := w.Stats(); st.Requeued != 1 {
		t.Fatalf("worker stats %+v", st)
	}
}

func TestJobDeadLetteredAfterMaxDeliveries(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c, col := startClient(t, srv, redisq.ClientConfig{})
	id := redisq.NewID()
	c.Submit(redisq.RPCSubmission(id, "echo", []byte(`{}`)))
	takeAsDeadWorker(t, srv.Client(), id, 2) // this was its third delivery
	w := startTestWorker(t, srv, redisq.WorkerConfig{Handler: echoRPC, Heartbeat: 100 * time.Millisecond,
		MaxDeliveries: 3})
	got := col.wait(t, 1)[0]
	if got.JobID != id || !errors.Is(got.Err, redisq.ErrJobFailed) {
		t.Fatalf("completion %+v, want a failure", got)
	}
	if dead, _ := srv.Client().LRange(context.Background(), "jobs::dead", 0, -1).Result(); len(dead) != 1 || dead[0] != id {
		t.Fatalf("dead-letter list %v", dead)
	}
	if st := w.Stats(); st.DeadLettered != 1 || st.Processed != 0 {
		t.Fatalf("worker stats %+v", st)
	}
}

func TestLiveWorkersJobsAreNotReaped(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c, col := startClient(t, srv, redisq.ClientConfig{})
	release := make(chan struct{})
	slow := redisq.HandlerFunc(func(ctx context.Context, job *redisq.Job) (redisq.Result, error) {
		<-release
		return redisq.Text(fmt.Sprint(job.Deliveries)), nil
	})
	// The busy worker must take the job: Redis hands a pushed job to the client blocked longest, so its fetch
	// blocks before the reaper's does.
	rdb := srv.Client()
	busy := startTestWorker(t, srv, redisq.WorkerConfig{Handler: slow, Concurrency: 1, Heartbeat: 50 * time.Millisecond})
	waitFor(t, func() bool { return blockedClients(rdb) == 1 })
	reaper := startTestWorker(t, srv, redisq.WorkerConfig{Handler: echoRPC, Concurrency: 1, Heartbeat: 50 * time.Millisecond})
	waitFor(t, func() bool { return blockedClients(rdb) == 2 })
	id := redisq.NewID()
	c.Submit(redisq.RPCSubmission(id, "echo", []byte(`{}`)))
	time.Sleep(500 * time.Millisecond) // ten reap rounds while the job runs
	close(release)
	got := col.wait(t, 1)[0]
	if string(got.Result.Payload) != "1" {
		t.Fatalf("job ran %s times", got.Result.Payload)
	}
	if busy.Stats().Requeued+reaper.Stats().Requeued != 0 {
		t.Fatal("a live worker's job was requeued")
	}
}

func TestPerlFieldFormats(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t) // no client reads the result: it stays in the hash for the check below
	type seen struct {
		data map[string]any
		err  error
	}
	got := make(chan seen, 1)
	h := redisq.HandlerFunc(func(ctx context.Context, job *redisq.Job) (redisq.Result, error) {
		var nested struct {
			List []int
			Flag string
		}
		err := job.Decode("nested", &nested)
		got <- seen{map[string]any{"a": job.Text("a"), "j": job.Data["j"], "list": nested.List, "flag": nested.Flag}, err}
		return redisq.Text("sum=11"), nil
	})
	startTestWorker(t, srv, redisq.WorkerConfig{Handler: h})
	// A job exactly as the Perl client wrote it in perl-structured-text.txt (Sereal protocol 5).
	rdb := srv.Client()
	ctx := context.Background()
	rdb.HSet(ctx, "job::perl-1", "_reply_to", "perl-client", "_queued", "1795879873.61014", "text_a", "1",
		"text_name", "job-1", "sereal_nested", "=\xf3rl\x05\x00(*\x02dlistC\x01\x02\x01dflagcyes", "json_j", `{"k":[1]}`)
	rdb.LPush(ctx, "jobs::pending", "perl-1")
	s := <-got
	if s.err != nil {
		t.Fatal(s.err)
	}
	want := `{"a":"1","flag":"yes","j":{"k":[1]},"list":[1,2,1]}`
	if b, _ := json.Marshal(s.data); string(b) != want {
		t.Fatalf("handler saw %s, want %s", b, want)
	}
	waitFor(t, func() bool { v, _ := rdb.HGet(ctx, "job::perl-1", "result").Result(); return v == "Tsum=11" })
}

func TestInvalidFieldFailsTheJob(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c, col := startClient(t, srv, redisq.ClientConfig{})
	startTestWorker(t, srv, redisq.WorkerConfig{Handler: echoRPC})
	rdb := srv.Client()
	ctx := context.Background()
	rdb.HSet(ctx, "job::bad-1", "_reply_to", c.ID(), "frozen_x", "?")
	c.Submit(redisq.Submission{ID: "bad-1"}) // registers the ID as pending and pushes it
	for {
		got := col.wait(t, 1)[0]
		if got.JobID == "bad-1" {
			if !errors.Is(got.Err, redisq.ErrJobFailed) {
				t.Fatalf("%+v, want a failure for an invalid field", got)
			}
			return
		}
	}
}

func TestSerealWriting(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c, col := startClient(t, srv, redisq.ClientConfig{Sereal: true})
	id := redisq.NewID()
	c.Submit(redisq.Submission{ID: id, Fields: []redisq.Field{{Key: "doc", Value: `{"n":3,"s":["x","y"]}`, JSON: true}}})
	rdb := srv.Client()
	var h map[string]string
	waitFor(t, func() bool { h, _ = rdb.HGetAll(context.Background(), redisq.JobKey(id)).Result(); return len(h) > 0 })
	if _, ok := h["sereal_doc"]; !ok {
		t.Fatalf("hash fields %v, want sereal_doc", h)
	}
	startTestWorker(t, srv, redisq.WorkerConfig{Handler: redisq.HandlerFunc(
		func(ctx context.Context, job *redisq.Job) (redisq.Result, error) {
			var v struct {
				N int
				S []string
			}
			if err := job.Decode("doc", &v); err != nil {
				return redisq.Result{}, err
			}
			return redisq.Text(fmt.Sprintf("%d %v", v.N, v.S)), nil
		})})
	got := col.wait(t, 1)[0]
	if got.Err != nil || string(got.Result.Payload) != "3 [x y]" {
		t.Fatalf("%+v", got)
	}
}

func TestLateResultDoesNotRecreateAnExpiredHash(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c, _ := startClient(t, srv, redisq.ClientConfig{JobTTL: time.Second})
	w := startTestWorker(t, srv, redisq.WorkerConfig{Handler: redisq.HandlerFunc(
		func(ctx context.Context, job *redisq.Job) (redisq.Result, error) {
			time.Sleep(1500 * time.Millisecond) // outlives the hash
			return redisq.Text("late"), nil
		})})
	id := redisq.NewID()
	c.Submit(redisq.RPCSubmission(id, "slow", []byte(`{}`)))
	waitFor(t, func() bool { return w.Stats().Processed == 1 })
	if n, _ := srv.Client().Exists(context.Background(), redisq.JobKey(id)).Result(); n != 0 {
		ttl, _ := srv.Client().TTL(context.Background(), redisq.JobKey(id)).Result()
		t.Fatalf("the late result re-created the job hash (TTL %v)", ttl)
	}
}

func TestSweepReportsJobsWhoseHashExpired(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c, col := startClient(t, srv, redisq.ClientConfig{JobTTL: time.Second}) // no worker, nobody calls Forget
	id := redisq.NewID()
	c.Submit(redisq.RPCSubmission(id, "x", []byte(`{}`)))
	got := col.wait(t, 1)[0]
	if got.JobID != id || !errors.Is(got.Err, redisq.ErrJobLost) {
		t.Fatalf("%+v, want ErrJobLost", got)
	}
	if st := c.Stats(); st.Pending != 0 {
		t.Fatalf("pending entry left: %+v", st)
	}
}
