package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/internal/wstest"
	"github.com/wsgate/wsgate/redisq"
	"github.com/wsgate/wsgate/server"
	"github.com/wsgate/wsgate/server/demo"
)

// startRecordingWorker runs the demo worker and records the req_id of every request it is handed: a request
// the gateway did not answer must not be among them.
func startRecordingWorker(t *testing.T, srv *redistest.Server, seen *sync.Map) {
	t.Helper()
	const concurrency = 64
	rdb := workerRedis(srv, concurrency)
	h := demo.Handler()
	record := redisq.HandlerFunc(func(ctx context.Context, job *redisq.Job) (redisq.Result, error) {
		var p struct {
			Args struct {
				ReqID int `json:"req_id"`
			} `json:"args"`
		}
		if err := job.Decode("params", &p); err == nil {
			seen.Store(p.Args.ReqID, true)
		}
		return h.ServeJob(ctx, job)
	})
	runWorker(t, rdb, redisq.WorkerConfig{Handler: record, Concurrency: concurrency})
}

// drainClient keeps `window` requests in flight until the gateway answers one with ServiceUnavailable (as a
// well-behaved client, it then stops sending and waits for the close).
type drainClient struct {
	id                                int
	conn                              *wstest.Client
	sent                              map[int]bool
	answers                           map[int]int // req_id -> replies
	results, unavail, timeouts, other int
	closeCode                         ws.StatusCode
	err                               error
}

func (c *drainClient) run(window int, results *atomic.Int64) {
	next := 0
	send := func() error {
		id := c.id*1_000_000 + next
		next++
		c.sent[id] = true
		msg := fmt.Sprintf(`{"sleep":%d,"req_id":%d}`, rand.IntN(40), id)
		return wsutil.WriteClientText(c.conn.Conn, []byte(msg))
	}
	for i := 0; i < window; i++ {
		if err := send(); err != nil {
			c.err = err
			return
		}
	}
	stopped := false
	for {
		b, err := c.conn.Read(30 * time.Second)
		if err != nil {
			var closed wsutil.ClosedError
			if errors.As(err, &closed) {
				c.closeCode = closed.Code
			} else {
				c.err = fmt.Errorf("read: %w", err)
			}
			return
		}
		var r struct {
			MsgType string          `json:"msg_type"`
			ReqID   int             `json:"req_id"`
			EchoReq json.RawMessage `json:"echo_req"`
			Sleep   json.RawMessage `json:"sleep"`
			Error   *struct{ Code string }
		}
		if err := json.Unmarshal(b, &r); err != nil || r.MsgType != "sleep" || len(r.EchoReq) == 0 {
			c.err = fmt.Errorf("bad reply %s", b)
			return
		}
		c.answers[r.ReqID]++
		switch {
		case r.Error == nil && r.Sleep != nil:
			c.results++
			results.Add(1)
		case r.Error != nil && r.Error.Code == "ServiceUnavailable":
			c.unavail++
			stopped = true
		case r.Error != nil && r.Error.Code == "RequestTimeout":
			c.timeouts++
		default:
			c.other++
		}
		if !stopped {
			if err := send(); err != nil {
				stopped = true // the close is on its way; the read loop sees it
			}
		}
	}
}

// TestDrainUnderLoad: clients keep sending while the gateway shuts down. Every request the gateway took gets
// exactly one answer (a result, or ServiceUnavailable for those that came during the drain), nothing is
// left pending, and every connection is then closed with 1001. A request that crossed the close frame on the
// wire was never read, so never forwarded: the worker must not have seen it.
func TestDrainUnderLoad(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	var seen sync.Map
	startRecordingWorker(t, srv, &seen)
	var logs testutil.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	gw := startGateway(t, srv, server.Config{DrainTimeout: 20 * time.Second, Logger: log})

	const conns, window = 40, 4
	clients := make([]*drainClient, conns)
	var results atomic.Int64
	var wg sync.WaitGroup
	for i := range clients {
		clients[i] = &drainClient{id: i + 1, conn: wstest.Dial(t, gw.URL()), sent: map[int]bool{}, answers: map[int]int{}}
		wg.Add(1)
		go func(c *drainClient) {
			defer wg.Done()
			c.run(window, &results)
		}(clients[i])
	}
	waitFor(t, func() bool { return results.Load() >= 500 }) // in full flow
	inFlight := gw.Stats().Registry.Pending
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := gw.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	took := time.Since(start)
	wg.Wait()

	var sent, answered, res, unavail, timeouts, crossed int
	for _, c := range clients {
		if c.err != nil {
			t.Errorf("client %d: %v", c.id, c.err)
		}
		if c.closeCode != ws.StatusGoingAway {
			t.Errorf("client %d: closed with %d, want 1001", c.id, c.closeCode)
		}
		if c.other > 0 {
			t.Errorf("client %d: %d unexpected errors", c.id, c.other)
		}
		for id, n := range c.answers {
			if !c.sent[id] || n != 1 {
				t.Errorf("client %d: request %d answered %d times (sent: %v)", c.id, id, n, c.sent[id])
			}
		}
		for id := range c.sent {
			if c.answers[id] == 0 {
				crossed++
				if _, ok := seen.Load(id); ok {
					t.Errorf("client %d: request %d was forwarded to the worker and never answered", c.id, id)
				}
			}
		}
		sent += len(c.sent)
		answered += len(c.answers)
		res, unavail, timeouts = res+c.results, unavail+c.unavail, timeouts+c.timeouts
	}
	t.Logf("drain in %v: %d requests sent, %d answered (%d results, %d ServiceUnavailable, %d RequestTimeout), "+
		"%d pending at SIGTERM, %d crossed the close frame unread", took.Round(time.Millisecond), sent, answered,
		res, unavail, timeouts, inFlight, crossed)
	if unavail == 0 {
		t.Error("no request was refused: the drain did not happen under traffic")
	}
	if timeouts > 0 {
		t.Errorf("%d RequestTimeouts: the drain waited less than its timeout", timeouts)
	}
	if crossed > conns*window {
		t.Errorf("%d requests unanswered, more than could have been on the wire", crossed)
	}
	if st := gw.Stats().Registry; st.Pending != 0 {
		t.Errorf("registry: %+v, want nothing pending", st)
	}
	out := logs.String()
	for _, want := range []string{"msg=\"drain started\"", "msg=\"drain finished\"", "drain_ms=", "unanswered=0",
		"msg=\"wsgate stopped\"", "stop_ms=", "shutdown_ms="} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}

// TestDrainAnswersTakenRequests: a request taken before the drain gets its result (or RequestTimeout when the
// drain timeout is up first), a request during it gets ServiceUnavailable at once, readiness fails from the
// start, and the connection is closed with 1001 afterwards.
func TestDrainAnswersTakenRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		drainTimeout time.Duration
		sleep        int
		want         string
	}{
		{"finishes within the drain", 5 * time.Second, 400, `{"msg_type":"sleep","sleep":{"slept":400},"echo_req":{"sleep":400,"req_id":1},"req_id":1}`},
		{"drain timeout first", 300 * time.Millisecond, 1500, `{"msg_type":"sleep","error":{"code":"RequestTimeout","message":"Request is timed out."},"echo_req":{"sleep":1500,"req_id":1},"req_id":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t)
			startWorker(t, srv)
			gw := startGateway(t, srv, server.Config{DrainTimeout: tt.drainTimeout, Admin: "127.0.0.1:0"})
			c := wstest.Dial(t, gw.URL())
			c.Send(fmt.Sprintf(`{"sleep":%d,"req_id":1}`, tt.sleep))
			waitFor(t, func() bool { return gw.Stats().Registry.Pending == 1 })

			done := make(chan error, 1)
			go func() { done <- gw.Shutdown(context.Background()) }()
			waitFor(t, func() bool { return gw.Ready(context.Background()) != nil })
			resp, err := http.Get("http://" + gw.AdminAddr() + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Errorf("/readyz during the drain: %d, want 503", resp.StatusCode)
			}

			got := c.Call(`{"ping":1,"req_id":2,"passthrough":{"p":1}}`)
			want := decode(t, `{"msg_type":"ping","error":{"code":"ServiceUnavailable","message":"The server is shutting down, please reconnect."},"echo_req":{"ping":1,"req_id":2,"passthrough":{"p":1}},"req_id":2,"passthrough":{"p":1}}`)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("during the drain: got %v, want %v", got, want)
			}
			got = c.Call(`{"nope":1}`)
			if got["msg_type"] != "error" || got["error"].(map[string]any)["code"] != "ServiceUnavailable" {
				t.Errorf("unknown action during the drain: %v", got)
			}
			if got := c.ReadJSON(10 * time.Second); !reflect.DeepEqual(got, decode(t, tt.want)) {
				t.Errorf("the request taken before: got %v, want %s", got, tt.want)
			}
			_, err = c.Read(10 * time.Second)
			var closed wsutil.ClosedError
			if !errors.As(err, &closed) || closed.Code != ws.StatusGoingAway {
				t.Errorf("after the answers: %v, want a close with 1001", err)
			}
			if err := <-done; err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
	}
}
