package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/actors"
	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/internal/wstest"
	"github.com/wsgate/wsgate/redisq"
	"github.com/wsgate/wsgate/server"
	"github.com/wsgate/wsgate/server/demo"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// startGateway runs a gateway against srv until the test ends: WebSocket on a free port, no admin listener
// unless cfg.Admin asks for one.
func startGateway(t *testing.T, srv *redistest.Server, cfg server.Config, opts ...server.Option) *server.Gateway {
	t.Helper()
	cfg.RedisURL = srv.URL()
	return startGatewayOn(t, cfg, opts...)
}

// startWorker runs the demo worker against srv until the test ends (or until the returned stop is called).
func startWorker(t *testing.T, srv *redistest.Server) (stop func()) {
	t.Helper()
	_, stop = runWorker(t, workerRedis(srv, 16), redisq.WorkerConfig{Handler: demo.Handler(), Concurrency: 16})
	return stop
}

// workerRedis is a connection pool to srv sized for a worker of that concurrency.
func workerRedis(srv *redistest.Server, concurrency int) *redis.Client {
	return redis.NewClient(redisq.WorkerRedisOptions(&redis.Options{Addr: srv.Addr}, concurrency))
}

// runWorker starts a worker of cfg on rdb until the test ends (or stop is called), then closes rdb. Unset
// PollTimeout and Logger mean 1 s and quiet.
func runWorker(t *testing.T, rdb redis.UniversalClient, cfg redisq.WorkerConfig) (w *redisq.Worker, stop func()) {
	t.Helper()
	cfg.Redis = rdb
	if cfg.PollTimeout == 0 {
		cfg.PollTimeout = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	w, err := redisq.NewWorker(cfg)
	if err != nil {
		rdb.Close()
		t.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			w.Shutdown(context.Background())
			rdb.Close()
		})
	}
	t.Cleanup(stop)
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return w, stop
}

func decode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return m
}

func TestRequestsGetDocumentedReplies(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	startWorker(t, srv)
	gw := startGateway(t, srv, server.Config{})
	c := wstest.Dial(t, gw.URL())

	wrong := `{"code":"WrongResponse","message":"Sorry, an error occurred while processing your request."}`
	tests := []struct {
		name, request, want string
	}{
		{"ping", `{"ping":1,"req_id":1}`,
			`{"msg_type":"ping","ping":"pong","echo_req":{"ping":1,"req_id":1},"req_id":1}`},
		{"ping with passthrough", `{"ping":1,"req_id":"a","passthrough":{"x":[1,2]}}`,
			`{"msg_type":"ping","ping":"pong","echo_req":{"ping":1,"req_id":"a","passthrough":{"x":[1,2]}},"req_id":"a","passthrough":{"x":[1,2]}}`},
		{"echo", `{"echo":{"a":"b"},"req_id":2}`,
			`{"msg_type":"echo","echo":{"echo":{"a":"b"},"req_id":2},"echo_req":{"echo":{"a":"b"},"req_id":2},"req_id":2}`},
		{"sleep", `{"sleep":20}`,
			`{"msg_type":"sleep","sleep":{"slept":20},"echo_req":{"sleep":20}}`},
		{"worker failure", `{"fail":1,"req_id":3,"passthrough":"p"}`,
			`{"msg_type":"fail","error":` + wrong + `,"echo_req":{"fail":1,"req_id":3,"passthrough":"p"},"req_id":3,"passthrough":"p"}`},
		{"RPC error from the worker", `{"sleep":-1,"req_id":4}`,
			`{"msg_type":"sleep","error":{"code":"InputValidationFailed","message":"sleep must be between 0 and 60000 milliseconds"},"echo_req":{"sleep":-1,"req_id":4},"req_id":4}`},
		{"unknown method", `{"nope":1,"req_id":5}`,
			`{"msg_type":"error","error":{"code":"UnrecognisedRequest","message":"Unrecognised request"},"echo_req":{"nope":1,"req_id":5},"req_id":5}`},
		{"invalid JSON", `{"ping":`,
			`{"msg_type":"error","error":{"code":"BadRequest","message":"The application sent an invalid request.","details":{"error":"invalid JSON: unexpected end of JSON input"}}}`},
		{"not an object", `[1,2]`,
			`{"msg_type":"error","error":{"code":"BadRequest","message":"The application sent an invalid request.","details":{"error":"the request is not a JSON object"}},"echo_req":[1,2]}`},
		{"earliest configured action wins", `{"echo":1,"ping":1}`,
			`{"msg_type":"ping","ping":"pong","echo_req":{"echo":1,"ping":1}}`},
		{"a client cannot write its stash through echo", `{"echo":1,"stash":{"user":"alice"}}`,
			`{"msg_type":"echo","echo":{"echo":1},"echo_req":{"echo":1,"stash":{"user":"alice"}}}`},
		{"so whoami sees no user", `{"whoami":1}`,
			`{"msg_type":"whoami","whoami":{},"echo_req":{"whoami":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := c.Call(tt.request)
			if want := decode(t, tt.want); !reflect.DeepEqual(got, want) {
				gotJSON, _ := json.Marshal(got)
				t.Fatalf("request %s\n got %s\nwant %s", tt.request, gotJSON, tt.want)
			}
		})
	}
}

func TestThousandConcurrentRequestsEachGetOneReply(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	startWorker(t, srv)
	gw := startGateway(t, srv, server.Config{})
	const conns, perConn = 100, 10
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := 0; i < conns; i++ {
		c := wstest.Dial(t, gw.URL())
		wg.Add(1)
		go func(i int, c *wstest.Client) {
			defer wg.Done()
			// All ten requests go out before any reply is read: they are in flight together.
			for j := 0; j < perConn; j++ {
				if err := c.Write(fmt.Sprintf(`{"echo":{"conn":%d,"n":%d},"req_id":%d}`, i, j, j)); err != nil {
					errs <- fmt.Errorf("conn %d: %w", i, err)
					return
				}
			}
			seen := map[int]bool{}
			for j := 0; j < perConn; j++ {
				b, err := c.Read(20 * time.Second)
				if err != nil {
					errs <- fmt.Errorf("conn %d: reply %d: %w", i, j, err)
					return
				}
				var r struct {
					MsgType string `json:"msg_type"`
					ReqID   int    `json:"req_id"`
					Echo    struct {
						Echo struct{ Conn, N int } `json:"echo"`
					} `json:"echo"`
				}
				if err := json.Unmarshal(b, &r); err != nil || r.MsgType != "echo" {
					errs <- fmt.Errorf("conn %d: bad reply %s", i, b)
					return
				}
				if r.Echo.Echo.Conn != i || r.Echo.Echo.N != r.ReqID || seen[r.ReqID] {
					errs <- fmt.Errorf("conn %d: wrong or repeated reply %s", i, b)
					return
				}
				seen[r.ReqID] = true
			}
			// Exactly one reply each: nothing more arrives.
			if b, err := c.Read(100 * time.Millisecond); err == nil {
				errs <- fmt.Errorf("conn %d: extra message %s", i, b)
			}
		}(i, c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	reg := gw.Stats().Registry
	if reg.Completed != conns*perConn || reg.Pending != 0 {
		t.Fatalf("registry: %+v, want %d completed and none pending", reg, conns*perConn)
	}
}

func TestTimeoutThenLateResultIsDropped(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	startWorker(t, srv)
	gw := startGateway(t, srv, server.Config{QueueTimeout: 300 * time.Millisecond})
	c := wstest.Dial(t, gw.URL())

	// The worker takes the job at once but needs 800 ms: the gateway answers RequestTimeout at 300 ms.
	start := time.Now()
	got := c.Call(`{"sleep":800,"req_id":9}`)
	want := decode(t, `{"msg_type":"sleep","error":{"code":"RequestTimeout","message":"Request is timed out."},"echo_req":{"sleep":800,"req_id":9},"req_id":9}`)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Fatalf("RequestTimeout after %v, before QueueTimeout (300 ms)", waited)
	}
	// The result arrives late: it is counted and dropped, and the client gets nothing more.
	waitFor(t, func() bool { return gw.Stats().Queue.Late == 1 })
	if b, err := c.Read(200 * time.Millisecond); err == nil {
		t.Fatalf("the client got a second answer: %s", b)
	}
	if got := c.Call(`{"ping":1}`); got["ping"] != "pong" {
		t.Fatalf("after the timeout: %v", got)
	}
	if st := gw.Stats().Registry; st.TimedOut != 1 || st.Pending != 0 {
		t.Fatalf("registry: %+v", st)
	}
}

func TestTimedOutQueuedJobIsCancelled(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	gw := startGateway(t, srv, server.Config{QueueTimeout: 200 * time.Millisecond}) // no worker: the job stays queued
	c := wstest.Dial(t, gw.URL())
	if e, _ := c.Call(`{"echo":1}`)["error"].(map[string]any); e["code"] != "RequestTimeout" {
		t.Fatalf("want RequestTimeout, got %v", e)
	}
	// Nobody waits for the job any more: its ID leaves the list, and its hash is marked cancelled (a worker that
	// took the ID already skips it) and left to expire.
	rdb := srv.Client()
	waitFor(t, func() bool {
		n, _ := rdb.LLen(context.Background(), "jobs::pending").Result()
		return n == 0
	})
	keys, _ := rdb.Keys(context.Background(), "job::*").Result()
	for _, k := range keys {
		if ttl, _ := rdb.Do(context.Background(), "TTL", k).Int(); ttl < 0 {
			t.Fatalf("%s has TTL %d", k, ttl)
		}
		if c, _ := rdb.HExists(context.Background(), k, "_cancelled").Result(); !c {
			t.Fatalf("%s is not marked cancelled", k)
		}
	}
	if st := gw.Stats().Queue; st.CancelledJobs != 1 || st.Late != 0 {
		t.Fatalf("queue stats %+v, want one cancelled job and no late result", st)
	}
}

func waitFor(t *testing.T, cond func() bool) { t.Helper(); testutil.WaitFor(t, cond) }

// One lifecycle shape: Start and Shutdown are safe to call twice, Shutdown works without Start, and the parts
// refuse to start again once shut down.
func TestLifecycleCallsAreIdempotent(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	ctx := context.Background()
	startWorker(t, srv)
	gw := startGateway(t, srv, server.Config{SessionWorkers: 2}) // with every part, the dispatcher too
	if err := gw.Start(ctx); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if got := wstest.Dial(t, gw.URL()).Call(`{"ping":1}`); got["ping"] != "pong" {
		t.Fatalf("after a second Start: %v", got)
	}
	for i := range 2 {
		if err := gw.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown %d: %v", i+1, err)
		}
	}

	never, err := server.New(server.Config{Listen: "127.0.0.1:0", Admin: "off", RedisURL: srv.URL(),
		Actions: server.DemoActions(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := never.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown without Start: %v", err)
	}

	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer rdb.Close()
	w, err := redisq.NewWorker(redisq.WorkerConfig{Redis: rdb, Handler: demo.Handler(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	c, err := redisq.NewClient(redisq.ClientConfig{Redis: rdb, Logger: quiet, OnComplete: func(redisq.Completion) {}})
	if err != nil {
		t.Fatal(err)
	}
	system := actor.NewActorSystem()
	defer system.Shutdown()
	reg, err := actors.NewRegistry(system.Root, actors.RegistryConfig{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	for name, part := range map[string]interface {
		Start(context.Context) error
		Shutdown(context.Context) error
	}{"worker": w, "client": c, "registry": reg, "dispatcher": actors.NewPoolDispatcher(2, 10)} {
		for i := range 2 {
			if err := part.Start(ctx); err != nil {
				t.Fatalf("%s: Start %d: %v", name, i+1, err)
			}
		}
		for i := range 2 {
			if err := part.Shutdown(ctx); err != nil {
				t.Fatalf("%s: Shutdown %d: %v", name, i+1, err)
			}
		}
		if err := part.Start(ctx); err == nil {
			t.Fatalf("%s: Start after Shutdown succeeded", name)
		}
	}
}

// An operator follows one request through the debug log: every line about it carries the connection's ID,
// the client's req_id and the job's ID, and durations are in milliseconds.
func TestRequestLogLinesCarryConnReqAndJobIDs(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	startWorker(t, srv)
	var logs testutil.Buffer
	gw := startGateway(t, srv, server.Config{
		Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	c := wstest.Dial(t, gw.URL())
	if got := c.Call(`{"ping":1,"req_id":"r-42"}`); got["ping"] != "pong" {
		t.Fatalf("ping: %v", got)
	}
	byMsg := map[string]map[string]any{}
	waitFor(t, func() bool { // the answer's log line is written just after the reply is queued
		for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(line), &rec); err == nil && rec["req_id"] == "r-42" {
				byMsg[rec["msg"].(string)] = rec
			}
		}
		return byMsg["request answered"] != nil
	})
	submitted, answered := byMsg["job submitted"], byMsg["request answered"]
	if submitted == nil {
		t.Fatalf("no \"job submitted\" line for req_id r-42 in:\n%s", logs.String())
	}
	for _, rec := range []map[string]any{submitted, answered} {
		id, _ := rec["conn_id"].(float64)
		job, _ := rec["job_id"].(string)
		if id < 1 || job == "" || rec["action"] != "ping" {
			t.Fatalf("%q: conn_id %v, job_id %q, action %v; want all three: %v", rec["msg"], rec["conn_id"], job,
				rec["action"], rec)
		}
	}
	if submitted["job_id"] != answered["job_id"] || submitted["conn_id"] != answered["conn_id"] {
		t.Fatalf("one request, two identities: %v / %v", submitted, answered)
	}
	if _, ok := answered["duration_ms"].(float64); !ok || answered["outcome"] != "ok" {
		t.Fatalf("request answered: %v, want duration_ms and outcome ok", answered)
	}
}
