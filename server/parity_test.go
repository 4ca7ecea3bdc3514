package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wsgate/wsgate/actors"
	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/wstest"
	"github.com/wsgate/wsgate/server"
)

func errCode(m map[string]any) string {
	e, _ := m["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func TestProtocolParity(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	startWorker(t, srv)
	actions := append(server.DemoActions(), server.Action{Name: "history", MsgType: "ticks_history"},
		server.Action{Name: "limited", RateLimit: &actors.Rate{PerSecond: 0.001, Burst: 2},
			InsteadOfForward: func(r *actors.Request) actors.Verdict { return actors.Answer(json.RawMessage(`1`)) }})
	gw := startGateway(t, srv, server.Config{Actions: actions, MaxResponseSize: 2000})
	c := wstest.Dial(t, gw.URL())

	tests := []struct {
		name, request string
		check         func(m map[string]any) bool
	}{
		{"msg_type differs from the action name", `{"history":1}`,
			func(m map[string]any) bool { return m["msg_type"] == "ticks_history" && errCode(m) == "WrongResponse" }},
		{"sanity: bad key", `{"ping":1,"bad key":1}`,
			func(m map[string]any) bool { return errCode(m) == "SanityCheckFailed" && m["msg_type"] == "error" }},
		{"sanity: bad value one level down", `{"echo":{"x":"a\u0007b"}}`,
			func(m map[string]any) bool { return errCode(m) == "SanityCheckFailed" }},
		{"sanity: value over 300 characters", `{"echo":"` + strings.Repeat("a", 301) + `"}`,
			func(m map[string]any) bool { return errCode(m) == "SanityCheckFailed" }},
		{"sanity: password values are not checked", `{"echo":1,"new_password":"p@ss\u0000word"}`,
			func(m map[string]any) bool { return errCode(m) == "" && m["msg_type"] == "echo" }},
		{"response too large", `{"echo":"` + strings.Repeat("b", 290) + `","a":"` + strings.Repeat("c", 290) + `","b":"` + strings.Repeat("d", 290) + `","d":"` + strings.Repeat("e", 290) + `"}`,
			func(m map[string]any) bool {
				return errCode(m) == "ResponseTooLarge" && m["msg_type"] == "error" && m["echo_req"] != nil
			}},
		{"per-action rate limit: 1", `{"limited":1}`, func(m map[string]any) bool { return m["limited"] == 1.0 }},
		{"per-action rate limit: 2", `{"limited":1}`, func(m map[string]any) bool { return m["limited"] == 1.0 }},
		{"per-action rate limit: 3", `{"limited":1,"req_id":3}`, func(m map[string]any) bool {
			e, _ := m["error"].(map[string]any)
			return errCode(m) == "RateLimit" && m["msg_type"] == "limited" && m["req_id"] == 3.0 &&
				e["message"] == "You have reached the rate limit for limited."
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.Call(tt.request); !tt.check(got) {
				t.Fatalf("request %.80s: got %v", tt.request, got)
			}
		})
	}

	t.Run("ordinary text is echoed", func(t *testing.T) { // issue 9: the Perl proxy lets all of these through
		for _, v := range []string{`"hello, world!"`, `"a(b)#c%d*e?[x]~;"`, `"日本語"`, `"price €5 😀"`, `{"a":"ü"}`,
			`"１−１−１"`, `"<script>"`, `["x\ty", "\u00e9", 0, ""]`, `"` + strings.Repeat("é", 300) + `"`} {
			req := `{"echo":` + v + `,"req_id":1}`
			got := c.Call(req)
			echoed, _ := got["echo"].(map[string]any)
			if errCode(got) != "" || !reflect.DeepEqual(echoed["echo"], decode(t, `{"v":`+v+`}`)["v"]) {
				t.Fatalf("request %s: got %v", req, got)
			}
		}
	})
	t.Run("invalid UTF-8 gets BadRequest and the connection stays", func(t *testing.T) {
		if err := wsutil.WriteClientText(c.Conn, []byte{'{', 0xff, '}'}); err != nil {
			t.Fatal(err)
		}
		if got := c.ReadJSON(5 * time.Second); errCode(got) != "BadRequest" {
			t.Fatalf("got %v", got)
		}
		if got := c.Call(`{"ping":1}`); got["ping"] != "pong" {
			t.Fatalf("after: %v", got)
		}
	})
	t.Run("binary frame without a handler", func(t *testing.T) {
		wsutil.WriteClientBinary(c.Conn, []byte{1, 2, 3})
		if got := c.ReadJSON(5 * time.Second); errCode(got) != "BadRequest" {
			t.Fatalf("got %v", got)
		}
	})
}

func TestConnectionRateLimitAndInFlightBound(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	startWorker(t, srv)
	gw := startGateway(t, srv, server.Config{RateLimit: &actors.Rate{PerSecond: 0.001, Burst: 3}, MaxInFlight: 2})
	c := wstest.Dial(t, gw.URL())
	// Two slow requests fill the in-flight bound; the third is refused at once; then the bucket is empty.
	c.Send(`{"sleep":300,"req_id":1}`)
	c.Send(`{"sleep":300,"req_id":2}`)
	if got := c.Call(`{"ping":1,"req_id":3}`); errCode(got) != "RateLimit" || got["req_id"] != 3.0 {
		t.Fatalf("over the in-flight bound: %v", got)
	}
	for i := 0; i < 2; i++ {
		if got := c.ReadJSON(5 * time.Second); got["msg_type"] != "sleep" || errCode(got) != "" {
			t.Fatalf("slow request: %v", got)
		}
	}
	if got := c.Call(`{"ping":1}`); errCode(got) != "RateLimit" {
		t.Fatalf("fourth request in the burst of 3: %v", got)
	}
}

func TestHooks(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	startWorker(t, srv)
	var opened, finished, sent, failures atomic.Int32
	hooks := actors.Hooks{
		OpenedConnection: []func(actors.ConnInfo, map[string]json.RawMessage){func(_ actors.ConnInfo, stash map[string]json.RawMessage) {
			opened.Add(1)
			stash["user"] = json.RawMessage(`"from-open-hook"`)
		}},
		FinishConnection: []func(actors.ConnInfo, map[string]json.RawMessage){func(actors.ConnInfo, map[string]json.RawMessage) { finished.Add(1) }},
		BeforeForward: []func(*actors.Request) actors.Verdict{
			func(r *actors.Request) actors.Verdict { // authorisation, decided off the actor
				if r.Action.Name != "fail" {
					return actors.Continue
				}
				return actors.Verdict{Later: func(ctx context.Context) actors.Verdict {
					time.Sleep(20 * time.Millisecond) // a slow lookup
					return actors.Refuse("AuthorizationRequired", "Please log in.", nil)
				}}
			},
		},
		BeforeCall: []func(*actors.Request){func(r *actors.Request) {
			if r.Params == nil {
				r.Params = map[string]json.RawMessage{}
			}
			r.Params["country"] = json.RawMessage(`"mt"`)
		}},
		RPCFailure: []func(*actors.Request, error){func(*actors.Request, error) { failures.Add(1) }},
		BeforeSendAPIResponse: []func(*actors.Request, map[string]json.RawMessage){
			func(r *actors.Request, reply map[string]json.RawMessage) {
				reply["server"] = json.RawMessage(`"wsgate"`)
			},
		},
		AfterSentAPIResponse: []func(*actors.Request, []byte){func(*actors.Request, []byte) { sent.Add(1) }},
		BinaryFrame: func(_ actors.ConnInfo, _ map[string]json.RawMessage, data []byte) []byte {
			return append([]byte("got:"), data...)
		},
	}
	gw := startGateway(t, srv, server.Config{Actions: append(server.DemoActions(), server.Action{Name: "time",
		InsteadOfForward: func(r *actors.Request) actors.Verdict { return actors.Answer(json.RawMessage(`12345`)) }})},
		server.WithHooks(hooks))
	c := wstest.Dial(t, gw.URL())

	if got := c.Call(`{"fail":1,"req_id":1}`); errCode(got) != "AuthorizationRequired" || got["req_id"] != 1.0 || got["server"] != "wsgate" {
		t.Fatalf("deferred BeforeForward refusal: %v", got)
	}
	got := c.Call(`{"whoami":1}`)
	who, _ := got["whoami"].(map[string]any)
	if who["user"] != "from-open-hook" || who["country"] != "mt" {
		t.Fatalf("stash from OpenedConnection and params from BeforeCall: %v", got)
	}
	if got := c.Call(`{"time":1}`); got["time"] != 12345.0 {
		t.Fatalf("InsteadOfForward: %v", got)
	}
	wsutil.WriteClientBinary(c.Conn, []byte("abc"))
	c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, op, err := wsutil.ReadServerData(c.Conn); err != nil || op != ws.OpBinary || string(b) != "got:abc" {
		t.Fatalf("binary hook: %q %v %v", b, op, err)
	}
	if sent.Load() != 3 || opened.Load() != 1 {
		t.Fatalf("hooks ran: sent %d, opened %d", sent.Load(), opened.Load())
	}
	c.Conn.Close()
	waitFor(t, func() bool { return finished.Load() == 1 })
}

func TestMetricsAndReadiness(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	startWorker(t, srv)
	gw := startGateway(t, srv, server.Config{Admin: "127.0.0.1:0"})
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + gw.AdminAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	c := wstest.Dial(t, gw.URL())
	c.Call(`{"ping":1}`)
	c.Call(`{"fail":1}`)
	code, body := get("/metrics")
	for _, want := range []string{
		`wsgate_requests_total{action="ping",outcome="ok"} 1`,
		`wsgate_requests_total{action="fail",outcome="wrong_response"} 1`,
		`wsgate_connections 1`,
		`wsgate_request_duration_seconds_count{action="ping"} 1`,
		`wsgate_pending_jobs 0`,
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Fatalf("/metrics lacks %q:\n%s", want, body)
		}
	}
	srv.Kill()
	waitFor(t, func() bool { code, _ := get("/readyz"); return code == 503 })
	srv.Restart()
	waitFor(t, func() bool { code, _ := get("/readyz"); return code == 200 })
	if code, _ := get("/healthz"); code != 200 {
		t.Fatal("healthz")
	}
}

func TestGracefulShutdownAnswersInFlightRequests(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	startWorker(t, srv)
	gw := startGateway(t, srv, server.Config{}) // the test shuts it down; the cleanup's second Shutdown is a no-op
	c := wstest.Dial(t, gw.URL())
	c.Send(`{"sleep":400,"req_id":1}`)
	waitFor(t, func() bool { return gw.Stats().Registry.Pending == 1 }) // in flight when the shutdown begins
	done := make(chan error)
	go func() { done <- gw.Shutdown(context.Background()) }()
	if got := c.ReadJSON(5 * time.Second); got["msg_type"] != "sleep" || errCode(got) != "" {
		t.Fatalf("in-flight request during shutdown: %v", got)
	}
	c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := wsutil.ReadServerText(c.Conn)
	var closed wsutil.ClosedError
	if !asClosed(err, &closed) || closed.Code != ws.StatusGoingAway {
		t.Fatalf("after the drain: %v, want close 1001", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func asClosed(err error, target *wsutil.ClosedError) bool {
	ce, ok := err.(wsutil.ClosedError)
	if ok {
		*target = ce
	}
	return ok
}

func TestActionsRoutedToTheirQueues(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	startWorker(t, srv) // serves jobs::pending only
	gw := startGateway(t, srv, server.Config{
		Queues:  map[string]server.Queue{"priority": {Name: "priority"}},
		Actions: []server.Action{{Name: "ping", Queue: "priority"}, {Name: "echo"}},
	})
	c := wstest.Dial(t, gw.URL())
	if got := c.Call(`{"echo":1}`); got["msg_type"] != "echo" || errCode(got) != "" {
		t.Fatalf("default queue: %v", got)
	}
	c.Send(`{"ping":1}`)
	rdb := srv.Client()
	waitFor(t, func() bool { n, _ := rdb.LLen(context.Background(), "jobs::priority").Result(); return n == 1 })
}

func TestSlowSessionPausesReading(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	slow := actors.Hooks{BeforeForward: []func(*actors.Request) actors.Verdict{func(r *actors.Request) actors.Verdict {
		time.Sleep(time.Millisecond) // a session that cannot keep up (hooks must not block: this one does, on purpose)
		return actors.Answer(r.ReqID())
	}}}
	gw := startGateway(t, srv, server.Config{}, server.WithHooks(slow))
	c := wstest.Dial(t, gw.URL())
	const n = 500
	wrote := make(chan error, 1)
	go func() {
		for i := 0; i < n; i++ {
			if err := c.Write(fmt.Sprintf(`{"ping":1,"req_id":%d}`, i)); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	for i := 0; i < n; i++ {
		got := c.ReadJSON(20 * time.Second)
		if got["ping"] != float64(i) {
			t.Fatalf("reply %d: %v", i, got)
		}
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if st := gw.Stats().Transport; st.ReadPauses == 0 {
		t.Fatalf("the connection was never paused: %+v", st)
	}
}
