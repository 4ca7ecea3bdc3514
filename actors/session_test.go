package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/wsgate/wsgate/internal/testutil"
)

// fakeConn records what a session sends.
type fakeConn struct {
	mu     sync.Mutex
	sent   chan []byte
	closed []uint16
}

func newFakeConn() *fakeConn { return &fakeConn{sent: make(chan []byte, 100)} }

func (c *fakeConn) Send(msg []byte) error { c.sent <- msg; return nil }

func (c *fakeConn) ID() uint64                 { return 7 }
func (c *fakeConn) RemoteAddr() netip.AddrPort { return netip.MustParseAddrPort("192.0.2.1:4242") }

func (c *fakeConn) SendBinary(msg []byte) error {
	c.sent <- append([]byte("binary:"), msg...)
	return nil
}

func (c *fakeConn) Close(code uint16, reason string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = append(c.closed, code)
	return nil
}

func (c *fakeConn) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case b := <-c.sent:
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("reply %s is not JSON: %v", b, err)
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no reply")
	}
	return nil
}

// fakeQueue answers each job by calling answer (if set) through the registry, like a worker would.
type fakeQueue struct {
	reg    *Registry
	answer func(method string, params []byte) (JobOutcome, bool)
	fail   error
	mu     sync.Mutex
	params [][]byte
}

func (q *fakeQueue) Submit(jobID, method string, params []byte) error {
	if q.fail != nil {
		return q.fail
	}
	q.mu.Lock()
	q.params = append(q.params, params)
	q.mu.Unlock()
	if q.answer != nil {
		if o, ok := q.answer(method, params); ok {
			go q.reg.Complete(jobID, o)
		}
	}
	return nil
}

type fixture struct {
	root  *actor.RootContext
	reg   *Registry
	queue *fakeQueue
	conn  *fakeConn
	pid   *actor.PID
}

func newFixture(t *testing.T, q *fakeQueue, mut func(*SessionConfig)) *fixture {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	t.Cleanup(system.Shutdown)
	reg, err := NewRegistry(system.Root, RegistryConfig{Shards: 2, Tick: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Shutdown(context.Background()) })
	q.reg = reg
	acts, err := NewActions(Action{Name: "ping"}, Action{Name: "status", MsgType: "st"},
		Action{Name: "auth", StashParams: []string{"token"}}, Action{Name: "strict", RequireResult: true},
		Action{Name: "nostash", IgnoreResultStash: true})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	cfg := SessionConfig{Actions: acts, Registry: reg, Submitter: q, Logger: quiet,
		NewJobID: func() string { n++; return fmt.Sprint("job-", n) }}
	if mut != nil {
		mut(&cfg)
	}
	sessions, err := NewSessions(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{root: system.Root, reg: reg, queue: q, conn: newFakeConn()}
	f.pid = sessions.Spawn(system.Root, f.conn)
	t.Cleanup(func() { _ = sessions.Shutdown(context.Background()) })
	return f
}

func (f *fixture) call(t *testing.T, req string) map[string]any {
	t.Helper()
	f.root.Send(f.pid, &Inbound{Data: []byte(req)})
	return f.conn.next(t)
}

func envelope(result string) (JobOutcome, bool) {
	return JobOutcome{Payload: []byte(`{"success":1,"result":` + result + `}`)}, true
}

func TestSessionShapesReplies(t *testing.T) {
	t.Parallel()
	// result is the envelope's result; one starting with "payload:" is the whole payload instead.
	tests := []struct {
		name, result, request, want string
	}{
		{"plain result", `"pong"`, `{"ping":1,"req_id":1}`,
			`{"msg_type":"ping","ping":"pong","echo_req":{"ping":1,"req_id":1},"req_id":1}`},
		{"status collapses", `{"status":1}`, `{"status":1}`,
			`{"msg_type":"st","st":1,"echo_req":{"status":1}}`},
		{"status with other members does not collapse", `{"status":1,"x":[2]}`, `{"status":1}`,
			`{"msg_type":"st","st":{"status":1,"x":[2]},"echo_req":{"status":1}}`},
		{"status left alone after the stash is taken out collapses", `{"stash":{"a":1},"status":"ok"}`, `{"status":1}`,
			`{"msg_type":"st","st":"ok","echo_req":{"status":1}}`},
		{"RPC error with details", `{"error":{"code":"AuthFailed","message_to_client":"No.","details":{"f":1}}}`,
			`{"ping":1,"passthrough":[1]}`,
			`{"msg_type":"ping","error":{"code":"AuthFailed","message":"No.","details":{"f":1}},"echo_req":{"ping":1,"passthrough":[1]},"passthrough":[1]}`},
		{"RPC error without a code is a WrongResponse", `{"error":"x"}`, `{"ping":1}`,
			`{"msg_type":"ping","error":{"code":"WrongResponse","message":"Sorry, an error occurred while processing your request."},"echo_req":{"ping":1}}`},
		{"result that is not an envelope", `payload:not json`, `{"ping":1}`,
			`{"msg_type":"ping","error":{"code":"WrongResponse","message":"Sorry, an error occurred while processing your request."},"echo_req":{"ping":1}}`},
		{"envelope without a result is a null success, as in Perl", `payload:{"success":0,"error":"died"}`, `{"ping":1}`,
			`{"msg_type":"ping","ping":null,"echo_req":{"ping":1}}`},
		{"envelope without a result for an action that requires one", `payload:{"success":0,"error":"died"}`, `{"strict":1}`,
			`{"msg_type":"strict","error":{"code":"WrongResponse","message":"Sorry, an error occurred while processing your request."},"echo_req":{"strict":1}}`},
		{"null result of an action that requires one is a result", `null`, `{"strict":1}`,
			`{"msg_type":"strict","strict":null,"echo_req":{"strict":1}}`},
		{"payload that is JSON but not an object", `payload:[1]`, `{"ping":1}`,
			`{"msg_type":"ping","error":{"code":"WrongResponse","message":"Sorry, an error occurred while processing your request."},"echo_req":{"ping":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &fakeQueue{answer: func(string, []byte) (JobOutcome, bool) {
				if p, ok := strings.CutPrefix(tt.result, "payload:"); ok {
					return JobOutcome{Payload: []byte(p)}, true
				}
				return envelope(tt.result)
			}}
			f := newFixture(t, q, nil)
			var want map[string]any
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatal(err)
			}
			if got := f.call(t, tt.request); !reflect.DeepEqual(got, want) {
				t.Fatalf("got %v\nwant %v", got, want)
			}
		})
	}
}

func TestSessionStashFlowsIntoLaterJobs(t *testing.T) {
	t.Parallel()
	q := &fakeQueue{answer: func(method string, params []byte) (JobOutcome, bool) {
		if method == "ping" {
			return envelope(`{"ok":1,"stash":{"token":"t1","other":2}}`)
		}
		return envelope(`1`)
	}}
	f := newFixture(t, q, nil)
	if got := f.call(t, `{"ping":1}`); !reflect.DeepEqual(got["ping"], map[string]any{"ok": 1.0}) {
		t.Fatalf("stash not removed from the reply: %v", got)
	}
	f.call(t, `{"auth":1}`)
	q.mu.Lock()
	defer q.mu.Unlock()
	if got, want := string(q.params[1]), `{"args":{"auth":1},"token":"t1"}`; got != want {
		t.Fatalf("params = %s, want %s", got, want)
	}
}

func TestSessionResultStashIsTrustedOnlyWhereAllowed(t *testing.T) {
	t.Parallel()
	q := &fakeQueue{answer: func(method string, params []byte) (JobOutcome, bool) {
		if method == "auth" {
			return envelope(`1`)
		}
		return envelope(`{"ok":1,"stash":{"token":"from-` + method + `"}}`)
	}}
	f := newFixture(t, q, nil)
	tokenSeen := func() string {
		t.Helper()
		f.call(t, `{"auth":1}`)
		q.mu.Lock()
		defer q.mu.Unlock()
		var p struct{ Token string }
		if err := json.Unmarshal(q.params[len(q.params)-1], &p); err != nil {
			t.Fatal(err)
		}
		return p.Token
	}
	steps := []struct {
		request, token string
	}{
		{`{"nostash":1}`, ""},                       // the action may not set the stash
		{`{"ping":1,"stash":{"token":"mine"}}`, ""}, // the request carried a stash of its own
		{`{"ping":1}`, "from-ping"},                 // a worker sets it
		{`{"nostash":1}`, "from-ping"},              // and it stays
	}
	for _, st := range steps {
		got := f.call(t, st.request)
		if mt, _ := got["msg_type"].(string); !reflect.DeepEqual(got[mt], map[string]any{"ok": 1.0}) {
			t.Fatalf("%s: %v (the stash must leave the reply either way)", st.request, got)
		}
		if tok := tokenSeen(); tok != st.token {
			t.Fatalf("after %s the stash token is %q, want %q", st.request, tok, st.token)
		}
	}
}

func TestSessionSubmitFailureAnswersAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &fakeQueue{fail: errors.New("queue full")}, nil)
	got := f.call(t, `{"ping":1,"req_id":3}`)
	if e, _ := got["error"].(map[string]any); e["code"] != "WrongResponse" || got["req_id"] != 3.0 {
		t.Fatalf("got %v", got)
	}
	if st := f.reg.Stats(); st.Pending != 0 {
		waitFor(t, func() bool { return f.reg.Stats().Pending == 0 })
	}
}

func TestSessionBoundsInFlight(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &fakeQueue{}, func(c *SessionConfig) { c.MaxInFlight = 2 })
	f.root.Send(f.pid, &Inbound{Data: []byte(`{"ping":1}`)})
	f.root.Send(f.pid, &Inbound{Data: []byte(`{"ping":1}`)})
	got := f.call(t, `{"ping":1,"req_id":3}`)
	if e, _ := got["error"].(map[string]any); e["code"] != "RateLimit" || got["req_id"] != 3.0 {
		t.Fatalf("third request: %v", got)
	}
}

func TestSessionTimeoutAndStopForgetsPending(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &fakeQueue{}, func(c *SessionConfig) { c.Timeout = 50 * time.Millisecond })
	got := f.call(t, `{"ping":1}`)
	if e, _ := got["error"].(map[string]any); e["code"] != "RequestTimeout" {
		t.Fatalf("got %v", got)
	}
	f.root.Send(f.pid, &Inbound{Data: []byte(`{"status":1}`)})
	waitFor(t, func() bool { return f.reg.Stats().Pending == 1 })
	if err := f.root.StopFuture(f.pid).Wait(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return f.reg.Stats().Pending == 0 })
	// The job's completion now finds nobody: it is counted as late.
	f.reg.Complete("job-2", JobOutcome{})
	waitFor(t, func() bool { return f.reg.Stats().Late == 1 })
	if st := f.reg.Stats(); st.TimedOut != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestActionsValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		actions []Action
	}{
		{"none", nil},
		{"bad name", []Action{{Name: "a b"}}},
		{"duplicate", []Action{{Name: "a"}, {Name: "a"}}},
		{"negative timeout", []Action{{Name: "a", Timeout: -1}}},
	}
	for _, tt := range tests {
		if _, err := NewActions(tt.actions...); err == nil {
			t.Errorf("%s: NewActions accepted %v", tt.name, tt.actions)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) { t.Helper(); testutil.WaitFor(t, cond) }

func TestSessionRepliesFitMaxResponseSize(t *testing.T) {
	t.Parallel()
	const max = 400
	big := strings.Repeat("x", 1<<20)
	bigRequest := `{"ping":{"d":{"blob":"` + big + `"}}` // deeper than the sanity check looks
	tests := []struct {
		name, result, request string
		code                  string   // "" for a success
		keep, drop            []string // members of the reply
	}{
		{"success too large: ResponseTooLarge with all of a small request", `"` + strings.Repeat("r", max) + `"`,
			`{"ping":1,"req_id":1,"passthrough":{"p":1}}`, "ResponseTooLarge", []string{"echo_req", "req_id", "passthrough"}, nil},
		{"big request: echo_req goes", `"pong"`, bigRequest + `,"req_id":2,"passthrough":{"p":1}}`,
			"ResponseTooLarge", []string{"req_id", "passthrough"}, []string{"echo_req"}},
		{"big request and passthrough: passthrough goes too", `"pong"`,
			bigRequest + `,"req_id":3,"passthrough":{"p":"` + strings.Repeat("p", 300) + `"}}`,
			"ResponseTooLarge", []string{"req_id"}, []string{"echo_req", "passthrough"}},
		{"big req_id: nothing of the request is left", `"pong"`, bigRequest + `,"req_id":{"a":{"b":"` + big + `"}}}`,
			"ResponseTooLarge", nil, []string{"echo_req", "req_id"}},
		{"a gateway error keeps its code", `"pong"`, `{"ping":"` + big + `","req_id":5}`,
			"SanityCheckFailed", []string{"req_id"}, []string{"echo_req"}},
		{"an RPC error keeps its code", `{"error":{"code":"Nope","message_to_client":"No."}}`, bigRequest + `,"req_id":6}`,
			"Nope", []string{"req_id"}, []string{"echo_req"}},
		{"an RPC error too large by itself", `{"error":{"code":"Nope","message_to_client":"` + strings.Repeat("n", max) + `"}}`,
			`{"ping":1,"req_id":7}`, "ResponseTooLarge", []string{"req_id", "echo_req"}, nil},
		{"a success that fits is untouched", `"pong"`, `{"ping":1,"req_id":8}`, "", []string{"echo_req", "req_id"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := &fakeQueue{answer: func(string, []byte) (JobOutcome, bool) { return envelope(tt.result) }}
			f := newFixture(t, q, func(c *SessionConfig) { c.MaxResponseSize = max })
			f.root.Send(f.pid, &Inbound{Data: []byte(tt.request)})
			var raw []byte
			select {
			case raw = <-f.conn.sent:
			case <-time.After(5 * time.Second):
				t.Fatal("no reply")
			}
			if len(raw) > max {
				t.Fatalf("reply of %d bytes, over the limit of %d: %.200s", len(raw), max, raw)
			}
			var got map[string]any
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("reply %s: %v", raw, err)
			}
			e, _ := got["error"].(map[string]any)
			if code, _ := e["code"].(string); code != tt.code {
				t.Fatalf("code %q, want %q: %s", code, tt.code, raw)
			}
			for _, k := range tt.keep {
				if _, ok := got[k]; !ok {
					t.Errorf("%s missing: %s", k, raw)
				}
			}
			for _, k := range tt.drop {
				if _, ok := got[k]; ok {
					t.Errorf("%s kept: %.200s", k, raw)
				}
			}
		})
	}
}

func TestSessionConfigRefusesATinyResponseLimit(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, MinMaxResponseSize - 1} {
		cfg := SessionConfig{Actions: &Actions{}, Registry: &Registry{}, Submitter: &fakeQueue{}, NewJobID: func() string { return "" },
			MaxResponseSize: n}
		if err := cfg.Validate(); err == nil {
			t.Errorf("MaxResponseSize %d accepted", n)
		}
	}
}

// TestSessionAnswersOutOfOrderAndForgetsTheRest: the registry brings each request back with its outcome, in
// whatever order the jobs finish; the requests still pending when the session stops are forgotten.
func TestSessionAnswersOutOfOrderAndForgetsTheRest(t *testing.T) {
	t.Parallel()
	f := newFixture(t, &fakeQueue{}, nil)
	for i := 1; i <= 4; i++ {
		f.root.Send(f.pid, &Inbound{Data: []byte(fmt.Sprintf(`{"ping":1,"req_id":%d}`, i))})
	}
	waitFor(t, func() bool { return f.reg.Stats().Pending == 4 })
	for _, n := range []int{3, 1, 4} { // the middle, the oldest, the newest
		f.reg.Complete(fmt.Sprint("job-", n), JobOutcome{Payload: []byte(`{"result":` + fmt.Sprint(n) + `}`)})
		if got := f.conn.next(t); got["req_id"] != float64(n) || got["ping"] != float64(n) {
			t.Fatalf("completion of job-%d answered %v", n, got)
		}
	}
	f.reg.Complete("job-3", JobOutcome{Payload: []byte(`{"result":0}`)}) // a second completion is late
	waitFor(t, func() bool { return f.reg.Stats().Late == 1 })
	if err := f.root.StopFuture(f.pid).Wait(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return f.reg.Stats().Pending == 0 }) // job-2 forgotten
	f.reg.Complete("job-2", JobOutcome{Payload: []byte(`{"result":2}`)})
	waitFor(t, func() bool { return f.reg.Stats().Late == 2 })
	select {
	case b := <-f.conn.sent:
		t.Fatalf("a stopped session replied %s", b)
	default:
	}
}
