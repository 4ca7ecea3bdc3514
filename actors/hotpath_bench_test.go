package actors

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"strconv"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
)

// The request hot path, piece by piece (the frame parse is in transport, the sanity check in
// BenchmarkSanityCheck). Each reports allocs/op: the gateway's CPU per reply follows them closely.

var benchRequests = []struct{ name, req string }{
	{"ping", `{"ping":1,"req_id":1700000000123456}`},
	{"typical", `{"ticks_history":"R_50","count":10,"end":"latest","style":"candles","req_id":3,"passthrough":{"a":1,"b":"x"}}`},
	{"nested", `{"proposal":1,"amount":"10.5","basis":"stake","contract_type":"CALL","symbol":"R_50","duration":5,"duration_unit":"t","tags":["a","b","c"]}`},
}

func benchActions(b *testing.B) *Actions {
	b.Helper()
	acts, err := NewActions(Action{Name: "authorize"}, Action{Name: "ping"}, Action{Name: "ticks_history"},
		Action{Name: "proposal"}, Action{Name: "buy"}, Action{Name: "time"}, Action{Name: "website_status"})
	if err != nil {
		b.Fatal(err)
	}
	return acts
}

// BenchmarkRequestDecode measures the parse of a request into its top-level members and the choice of its
// action.
func BenchmarkRequestDecode(b *testing.B) {
	acts := benchActions(b)
	for _, tt := range benchRequests {
		data := []byte(tt.req)
		b.Run("req="+tt.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				fields, err := decodeRequest(data)
				if err != nil {
					b.Fatal(err)
				}
				if acts.pick(fields) == nil {
					b.Fatal("no action")
				}
			}
		})
	}
}

// discardConn is a connection that drops what it is sent (or hands it to a channel).
type discardConn struct{ sent chan []byte }

func (c discardConn) Send(msg []byte) error {
	if c.sent != nil {
		c.sent <- msg
	}
	return nil
}
func (c discardConn) SendBinary(msg []byte) error { return c.Send(msg) }
func (discardConn) Close(uint16, string) error    { return nil }
func (discardConn) ID() uint64                    { return 1 }
func (discardConn) RemoteAddr() netip.AddrPort    { return netip.AddrPort{} }

// BenchmarkReplyEncode measures the reply to a job's outcome: reading the worker's envelope and encoding the
// reply with echo_req and req_id, as the session does when a completion arrives.
func BenchmarkReplyEncode(b *testing.B) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	sessions, err := NewSessions(SessionConfig{Actions: benchActions(b), Registry: &Registry{},
		Submitter: discardSubmitter{}, NewJobID: func() string { return "" }, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	s := &session{owner: sessions, cfg: &sessions.cfg, conn: discardConn{}}
	results := []struct{ name, payload string }{
		{"string", `{"success":1,"result":"pong"}`},
		{"object", `{"success":1,"result":{"ticks":[1,2,3],"pip_size":2,"echo":{"a":"b"}}}`},
		{"rpc_error", `{"success":1,"result":{"error":{"code":"InvalidSymbol","message_to_client":"No such symbol."}}}`},
	}
	req := []byte(benchRequests[1].req)
	fields, _ := decodeRequest(req)
	r := &Request{Fields: fields, echo: req, reqID: fields["req_id"], passthrough: fields["passthrough"],
		Action: sessions.cfg.Actions.pick(fields)}
	for _, tt := range results {
		o := JobOutcome{Payload: []byte(tt.payload)}
		b.Run("result="+tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.handleOutcome(r, o)
			}
		})
	}
	b.Run("result=gateway_error", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.replyCode(r, r.Action.msgType(), UnrecognisedRequest, nil, OutcomeBadRequest)
		}
	})
}

type discardSubmitter struct{}

func (discardSubmitter) Submit(string, string, []byte) error { return nil }

// completeAtOnce is a queue whose worker answers every job at once, from the submitting goroutine.
type completeAtOnce struct{ reg *Registry }

func (q completeAtOnce) Submit(jobID, _ string, _ []byte) error {
	q.reg.Complete(jobID, JobOutcome{Payload: []byte(`{"success":1,"result":"pong"}`)})
	return nil
}

// benchRegistry starts an actor system and a registry in it for a benchmark, both stopped when it ends.
func benchRegistry(b *testing.B) (*actor.ActorSystem, *Registry, *slog.Logger) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	b.Cleanup(system.Shutdown)
	reg, err := NewRegistry(system.Root, RegistryConfig{Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	if err := reg.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { reg.Shutdown(context.Background()) })
	return system, reg, quiet
}

// BenchmarkSessionRoundTrip measures one request through a real actor system: the message into the session,
// decode, sanity check, job, registry, completion, reply. The queue completes each job at once, so this is
// the gateway's own share of a request, hand-offs between goroutines included.
func BenchmarkSessionRoundTrip(b *testing.B) {
	system, reg, quiet := benchRegistry(b)
	ctx := context.Background()
	n := 0
	sessions, err := NewSessions(SessionConfig{Actions: benchActions(b), Registry: reg, Logger: quiet,
		Submitter: completeAtOnce{reg}, NewJobID: func() string { n++; return "job-" + strconv.Itoa(n) }})
	if err != nil {
		b.Fatal(err)
	}
	defer sessions.Shutdown(ctx)
	conn := discardConn{sent: make(chan []byte, 1)}
	pid := sessions.Spawn(system.Root, conn)
	defer func() { _ = system.Root.StopFuture(pid).Wait() }()
	for _, tt := range benchRequests[:2] {
		req := []byte(tt.req)
		b.Run("req="+tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				data := make([]byte, len(req)) // as the gateway does: the session owns its copy
				copy(data, req)
				system.Root.Send(pid, &Inbound{Data: data})
				reply := <-conn.sent
				if !json.Valid(reply) {
					b.Fatalf("reply %s", reply)
				}
			}
		})
	}
}

// TestDecodeRequestMatchesEncodingJSON: the one-pass decode gives what encoding/json's map decode gives, on
// the fuzz seeds and the benchmark requests.
func TestDecodeRequestMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	inputs := append([]string{`{"k\u00e9y":1,"\"":2, "a" : [1, {"b":"}"}] }`, "{\"\xff\":1}"}, requestSeeds...)
	for _, tt := range benchRequests {
		inputs = append(inputs, tt.req)
	}
	for _, in := range inputs {
		var want map[string]json.RawMessage
		wantErr := json.Unmarshal([]byte(in), &want)
		got, err := decodeRequest([]byte(in))
		if wantErr != nil || want == nil {
			if err == nil {
				t.Errorf("%q: decoded %v, encoding/json fails (%v)", in, got, wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %q, %v; want %q", in, got, err, want)
		}
	}
}

// heldQueue hands each job's ID to the benchmark, which completes it.
type heldQueue struct{ ids chan string }

func (q heldQueue) Submit(jobID, _ string, _ []byte) error { q.ids <- jobID; return nil }

// BenchmarkCompletionTrip measures the way back alone: from Registry.Complete (where the queue client delivers
// a completion) through the registry shard to the session and its reply. The request's way in is outside the
// timer.
func BenchmarkCompletionTrip(b *testing.B) {
	system, reg, quiet := benchRegistry(b)
	ctx := context.Background()
	n := 0
	q := heldQueue{ids: make(chan string, 1)}
	sessions, err := NewSessions(SessionConfig{Actions: benchActions(b), Registry: reg, Logger: quiet,
		Submitter: q, NewJobID: func() string { n++; return "job-" + strconv.Itoa(n) }})
	if err != nil {
		b.Fatal(err)
	}
	defer sessions.Shutdown(ctx)
	conn := discardConn{sent: make(chan []byte, 1)}
	pid := sessions.Spawn(system.Root, conn)
	defer func() { _ = system.Root.StopFuture(pid).Wait() }()
	req := []byte(benchRequests[0].req)
	outcome := JobOutcome{Payload: []byte(`{"success":1,"result":"pong"}`)}
	b.Run("req=ping", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			data := make([]byte, len(req))
			copy(data, req)
			system.Root.Send(pid, &Inbound{Data: data})
			id := <-q.ids
			b.StartTimer()
			reg.Complete(id, outcome)
			<-conn.sent
		}
	})
}
