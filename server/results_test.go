package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/internal/wstest"
	"github.com/wsgate/wsgate/redisq"
	"github.com/wsgate/wsgate/server"
	"github.com/wsgate/wsgate/server/demo"
)

// startTestWorker runs a worker with the demo methods plus the test's own until the test ends.
func startTestWorker(t *testing.T, srv *redistest.Server, extra map[string]redisq.Handler) {
	t.Helper()
	r := redisq.NewRouter()
	r.NotFound = demo.Handler()
	for name, h := range extra {
		r.Handle(name, h)
	}
	runWorker(t, workerRedis(srv, 4), redisq.WorkerConfig{Handler: r, Concurrency: 4})
}

// payload is a worker that answers every job with the same raw payload.
func payload(p string) redisq.Handler {
	return redisq.HandlerFunc(func(context.Context, *redisq.Job) (redisq.Result, error) { return redisq.Text(p), nil })
}

var (
	yes = func() *bool { b := true; return &b }()
	no  = func() *bool { b := false; return &b }()
)

func TestEnvelopeWithoutResult(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	noResult := payload(`{"success":0,"error":"the worker died"}`)
	startTestWorker(t, srv, map[string]redisq.Handler{
		"noresult": noResult, "strict": noResult, "lenient": noResult, "notjson": payload(`Internal Server Error`),
	})
	const wrong = `{"code":"WrongResponse","message":"Sorry, an error occurred while processing your request."}`
	tests := []struct {
		name    string
		cfg     server.Config
		request string
		want    string
	}{
		{"default: a null success, as in Perl", server.Config{Actions: []server.Action{{Name: "noresult"}}},
			`{"noresult":1,"req_id":1}`, `{"msg_type":"noresult","noresult":null,"echo_req":{"noresult":1,"req_id":1},"req_id":1}`},
		{"the action asks for WrongResponse", server.Config{Actions: []server.Action{{Name: "strict", RequireResult: yes}}},
			`{"strict":1}`, `{"msg_type":"strict","error":` + wrong + `,"echo_req":{"strict":1}}`},
		{"the global option asks for WrongResponse", server.Config{RequireResult: true, Actions: []server.Action{{Name: "noresult"}}},
			`{"noresult":1}`, `{"msg_type":"noresult","error":` + wrong + `,"echo_req":{"noresult":1}}`},
		{"the action overrides the global option", server.Config{RequireResult: true, Actions: []server.Action{{Name: "lenient", RequireResult: no}}},
			`{"lenient":1}`, `{"msg_type":"lenient","lenient":null,"echo_req":{"lenient":1}}`},
		{"a payload that is not JSON stays WrongResponse", server.Config{Actions: []server.Action{{Name: "notjson"}}},
			`{"notjson":1}`, `{"msg_type":"notjson","error":` + wrong + `,"echo_req":{"notjson":1}}`},
		{"a failed job stays WrongResponse", server.Config{Actions: []server.Action{{Name: "fail"}}},
			`{"fail":1}`, `{"msg_type":"fail","error":` + wrong + `,"echo_req":{"fail":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gw := startGateway(t, srv, tt.cfg)
			got := wstest.Dial(t, gw.URL()).Call(tt.request)
			if want := decode(t, tt.want); !reflect.DeepEqual(got, want) {
				gotJSON, _ := json.Marshal(got)
				t.Fatalf("got  %s\nwant %s", gotJSON, tt.want)
			}
		})
	}
}

func TestOnlyWorkersSetTheStash(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	// login is a worker that sets the stash (a real one would check a password); reflect returns the request
	// as the demo echo used to, stash included.
	login := redisq.RPC(func(_ context.Context, req *redisq.RPCRequest) (any, error) {
		var args struct{ User string }
		json.Unmarshal(req.Args, &args)
		return map[string]any{"ok": 1, "stash": map[string]string{"user": args.User}}, nil
	})
	reflectArgs := redisq.RPC(func(_ context.Context, req *redisq.RPCRequest) (any, error) { return req.Args, nil })
	startTestWorker(t, srv, map[string]redisq.Handler{"login": login, "login_denied": login, "reflect": reflectArgs})
	logs := &testutil.Buffer{}
	gw := startGateway(t, srv, server.Config{
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Actions: append(server.DemoActions(), server.Action{Name: "login"},
			server.Action{Name: "login_denied", ResultStash: no}, server.Action{Name: "reflect"}),
	})
	c := wstest.Dial(t, gw.URL())
	whoami := func() any {
		t.Helper()
		got := c.Call(`{"whoami":1}`)
		who, ok := got["whoami"].(map[string]any)
		if !ok {
			t.Fatalf("whoami: %v", got)
		}
		return who["user"]
	}

	if got := c.Call(`{"echo":1,"stash":{"user":"admin"}}`); errCode(got) != "" || !reflect.DeepEqual(got["echo"], map[string]any{"echo": 1.0}) {
		t.Fatalf("echo of a request with a stash: %v", got)
	}
	if u := whoami(); u != nil {
		t.Fatalf("after the echo attack whoami = %v, want no user", u)
	}
	// The stash member is taken out of the reply whether or not it is merged.
	if got := c.Call(`{"reflect":1,"stash":{"user":"admin"}}`); !reflect.DeepEqual(got["reflect"], map[string]any{"reflect": 1.0}) {
		t.Fatalf("reflect: %v", got)
	}
	if u := whoami(); u != nil {
		t.Fatalf("a worker reflecting the request's own stash set whoami = %v", u)
	}
	if !strings.Contains(logs.String(), "result stash ignored: the request carried a stash of its own") {
		t.Fatalf("no debug log for the reflected stash:\n%s", logs)
	}

	if got := c.Call(`{"login_denied":1,"user":"mallory"}`); !reflect.DeepEqual(got["login_denied"], map[string]any{"ok": 1.0}) {
		t.Fatalf("login_denied: %v", got)
	}
	if u := whoami(); u != nil {
		t.Fatalf("an action with result_stash false set whoami = %v", u)
	}
	if !strings.Contains(logs.String(), "result stash ignored: the action may not set the stash") {
		t.Fatalf("no debug log for the ignored stash:\n%s", logs)
	}

	if got := c.Call(`{"login":1,"user":"alice"}`); !reflect.DeepEqual(got["login"], map[string]any{"ok": 1.0}) {
		t.Fatalf("login: %v", got)
	}
	if u := whoami(); u != "alice" {
		t.Fatalf("after a worker set the stash whoami = %v, want alice", u)
	}
}

func TestResultOptionsInConfigFile(t *testing.T) {
	t.Parallel()
	cfg, _, err := server.ParseFile("cfg.yaml", []byte(`
require_result: true
result_stash: false
actions:
  - ping
  - {name: login, result_stash: true, require_result: false}
`))
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Actions
	if !cfg.RequireResult || cfg.ResultStash == nil || *cfg.ResultStash || a[0].RequireResult != nil || a[0].ResultStash != nil ||
		a[1].RequireResult == nil || *a[1].RequireResult || a[1].ResultStash == nil || !*a[1].ResultStash {
		t.Fatalf("config %+v, actions %+v", cfg, a)
	}
	example, _, err := server.LoadFile("../wsgate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range example.Actions {
		if a.Name == "echo" && (a.ResultStash == nil || *a.ResultStash) {
			t.Fatal("the example configuration lets echo set the stash")
		}
	}
	for _, a := range server.DemoActions() {
		if a.Name == "echo" && (a.ResultStash == nil || *a.ResultStash) {
			t.Fatal("the demo actions let echo set the stash")
		}
	}
}

func TestErrorRepliesFitMaxResponseSize(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	startWorker(t, srv)
	// Requests of 1 MiB (the default max_message_size): one the demo echo returns whole, one that fails the
	// sanity check.
	pad := func(prefix, suffix string) string {
		return prefix + strings.Repeat("x", 1<<20-len(prefix)-len(suffix)) + suffix
	}
	echoReq := pad(`{"echo":{"data":{"blob":"`, `"}},"req_id":7,"passthrough":{"p":1}}`)
	insaneReq := pad(`{"echo":"`, `","req_id":8}`)
	for _, limit := range []int{0, 1024} {
		max := limit
		if max == 0 {
			max = 328000 // the default
		}
		t.Run(fmt.Sprintf("max_response_size=%d", max), func(t *testing.T) {
			cfg := server.Config{MaxResponseSize: limit}
			cfg.Transport.MaxFrameSize, cfg.Transport.MaxMessageSize = 2<<20, 2<<20 // room for the 1 MiB requests
			gw := startGateway(t, srv, cfg)
			c := wstest.Dial(t, gw.URL())
			tests := []struct {
				request, code string
				reqID         float64
			}{
				{echoReq, "ResponseTooLarge", 7},
				{insaneReq, "SanityCheckFailed", 8},
			}
			for _, tt := range tests {
				c.Send(tt.request)
				raw, err := c.Read(10 * time.Second)
				if err != nil {
					t.Fatal(err)
				}
				var got map[string]any
				if err := json.Unmarshal(raw, &got); err != nil {
					t.Fatalf("reply %.200s: %v", raw, err)
				}
				if len(raw) > max || errCode(got) != tt.code || got["req_id"] != tt.reqID || got["echo_req"] != nil {
					t.Fatalf("reply of %d bytes to a request of %d: %.300s", len(raw), len(tt.request), raw)
				}
				if tt.code == "ResponseTooLarge" && !reflect.DeepEqual(got["passthrough"], map[string]any{"p": 1.0}) {
					t.Fatalf("passthrough lost: %s", raw)
				}
			}
		})
	}
}
