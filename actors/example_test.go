package actors_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/wsgate/wsgate/actors"
)

// Hooks compose: an authorisation check and an action served by the gateway itself, run by a real session
// (with a queue that answers every job at once, and a connection that prints what it is sent).
func ExampleHooks() {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	defer system.Shutdown()
	ctx := context.Background()
	reg, _ := actors.NewRegistry(system.Root, actors.RegistryConfig{Logger: quiet})
	_ = reg.Start(ctx)
	defer reg.Shutdown(ctx)

	var h actors.Hooks
	h.Merge(actors.Hooks{BeforeForward: []func(*actors.Request) actors.Verdict{
		func(r *actors.Request) actors.Verdict {
			if _, ok := r.Stash["token"]; !ok && r.Action.Name != "ping" {
				return actors.Refuse("AuthorizationRequired", "Please log in.", nil)
			}
			return actors.Continue
		},
	}})
	h.Merge(actors.Hooks{BeforeSendAPIResponse: []func(*actors.Request, map[string]json.RawMessage){
		func(_ *actors.Request, reply map[string]json.RawMessage) {
			reply["served_by"] = json.RawMessage(`"example"`)
		},
	}})
	acts, _ := actors.NewActions(actors.Action{Name: "ping"},
		actors.Action{Name: "time", InsteadOfForward: func(*actors.Request) actors.Verdict {
			return actors.Answer(json.RawMessage(`1700000000`))
		}})
	conn := replies(make(chan []byte, 1))
	n := 0
	sessions, _ := actors.NewSessions(actors.SessionConfig{Actions: acts, Registry: reg, Hooks: h, Logger: quiet,
		Submitter: answerAtOnce{reg}, NewJobID: func() string { n++; return fmt.Sprint("job-", n) }})
	pid := sessions.Spawn(system.Root, conn)
	for _, req := range []string{`{"ping":1}`, `{"time":1}`} {
		system.Root.Send(pid, &actors.Inbound{Data: []byte(req)})
		fmt.Println(string(<-conn))
	}
	_ = system.Root.StopFuture(pid).Wait()
	_ = sessions.Shutdown(ctx)
	// Output:
	// {"echo_req":{"ping":1},"msg_type":"ping","ping":"pong","served_by":"example"}
	// {"echo_req":{"time":1},"error":{"code":"AuthorizationRequired","message":"Please log in."},"msg_type":"time","served_by":"example"}
}

// answerAtOnce is a queue whose worker answers every job with the RPC result "pong".
type answerAtOnce struct{ reg *actors.Registry }

func (q answerAtOnce) Submit(jobID, method string, params []byte) error {
	q.reg.Complete(jobID, actors.JobOutcome{Payload: []byte(`{"success":1,"result":"pong"}`)})
	return nil
}

// replies is a connection that hands what the session sends to the example.
type replies chan []byte

func (c replies) Send(msg []byte) error       { c <- msg; return nil }
func (c replies) SendBinary(msg []byte) error { c <- msg; return nil }
func (c replies) Close(uint16, string) error  { return nil }
func (c replies) ID() uint64                  { return 1 }
func (c replies) RemoteAddr() netip.AddrPort  { return netip.AddrPort{} }
