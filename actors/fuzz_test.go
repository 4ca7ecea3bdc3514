package actors

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/asynkron/protoactor-go/actor"
)

// requestSeeds are client requests as the WebSocket API spec and the session tests write them, plus the
// malformed shapes the session must answer.
var requestSeeds = []string{
	`{"ping":1,"req_id":1}`,
	`{"status":1}`,
	`{"auth":"tok","passthrough":[1]}`,
	`{"ticks_history": "R_50", "count": 10, "req_id": 3, "passthrough": {"a": 1}}`,
	`{"ping":1,"status":1,"auth":1}`,
	`{"ping":1,"password":"a b c !","nested":{"k":"v","deeper":{"x":"!"}},"list":["a",1,{"y":"z"}]}`,
	`{"a":"ü"}`,
	`{"bad key":1}`,
	`{"ping":"<script>"}`,
	`{"ping":1,"req_id":"\u0000\"\\"}`,
	`{"ping":1,"ping":2}`,
	`{}`, `null`, `[]`, `"ping"`, `1`, `{"ping":`, `{"ping":1}{"status":1}`, ``, "{\"ping\":\"\xff\"}",
}

// FuzzSessionRequest feeds one client message at a time to a live session actor, the way the transport does
// (a text frame, flagged if it is not UTF-8). The request parser, handleInbound, needs the actor (it
// submits jobs and replies through it), so the fuzz runs the whole path: JSON decoding, the sanity check,
// picking the action, the params of the job (the fake queue checks they are JSON) and the reply. Every
// message must get exactly one reply, a JSON object with a msg_type; a panic in the session stops it, and
// the next reply never comes.
func FuzzSessionRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	f.Cleanup(system.Shutdown)
	reg, err := NewRegistry(system.Root, RegistryConfig{Shards: 2, Tick: 10 * time.Millisecond})
	if err != nil {
		f.Fatal(err)
	}
	if err := reg.Start(context.Background()); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = reg.Shutdown(context.Background()) })
	badParams := make(chan []byte, 1)
	q := &fakeQueue{reg: reg, answer: func(method string, params []byte) (JobOutcome, bool) {
		if !json.Valid(params) {
			select {
			case badParams <- params:
			default:
			}
		}
		return envelope(`{"method":` + fmt.Sprintf("%q", method) + `}`)
	}}
	acts, err := NewActions(Action{Name: "ping"}, Action{Name: "status", MsgType: "st"},
		Action{Name: "auth", StashParams: []string{"token"}})
	if err != nil {
		f.Fatal(err)
	}
	n := 0
	sessions, err := NewSessions(SessionConfig{Actions: acts, Registry: reg, Submitter: q, Logger: quiet,
		NewJobID: func() string { n++; return fmt.Sprint("job-", n) }})
	if err != nil {
		f.Fatal(err)
	}
	conn := newFakeConn()
	pid := sessions.Spawn(system.Root, conn)
	f.Cleanup(func() {
		_ = system.Root.StopFuture(pid).Wait()
		_ = sessions.Shutdown(context.Background())
	})

	dead := false // after one message went unanswered, the others would wait in vain
	f.Fuzz(func(t *testing.T, msg []byte) {
		if dead {
			t.Fatal("the session stopped answering on an earlier message")
		}
		system.Root.Send(pid, &Inbound{Data: append([]byte(nil), msg...), InvalidUTF8: !utf8.Valid(msg)})
		var reply []byte
		select {
		case reply = <-conn.sent:
		case <-time.After(5 * time.Second):
			dead = true
			t.Fatalf("no reply to %q: the session died or dropped it", msg)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(reply, &obj); err != nil {
			t.Fatalf("reply to %q is not a JSON object: %s (%v)", msg, reply, err)
		}
		if _, ok := obj["msg_type"]; !ok {
			t.Fatalf("reply to %q has no msg_type: %s", msg, reply)
		}
		select {
		case p := <-badParams:
			t.Fatalf("the job's params for %q are not JSON: %s", msg, p)
		case extra := <-conn.sent:
			t.Fatalf("a second reply to %q: %s", msg, extra)
		default:
		}
	})
}

// FuzzPickAndSanity fuzzes the request-parsing pieces callable without an actor: decoding into the top-level
// map, SanityCheck.check and Actions.pick. The action picked must be the earliest-listed one whose name is a
// key; a failed check must name a key of the request (top level or one level down).
func FuzzPickAndSanity(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	acts, err := NewActions(Action{Name: "ping"}, Action{Name: "status"}, Action{Name: "auth"})
	if err != nil {
		f.Fatal(err)
	}
	sanity := DefaultSanityCheck()
	f.Fuzz(func(t *testing.T, msg []byte) {
		var fields map[string]json.RawMessage
		if json.Unmarshal(msg, &fields) != nil || fields == nil {
			return
		}
		a := acts.pick(fields)
		for _, want := range acts.List() {
			if _, ok := fields[want.Name]; ok {
				if a != want {
					t.Fatalf("%s: picked %v, want %s", msg, a, want.Name)
				}
				break
			}
		}
		if a != nil {
			if _, ok := fields[a.Name]; !ok {
				t.Fatalf("%s: picked %s, not a key", msg, a.Name)
			}
		} else if _, ok := fields["ping"]; ok {
			t.Fatalf("%s: picked nothing", msg)
		}
		if bad, ok := sanity.check(fields); !ok && !isKey(fields, bad) {
			t.Fatalf("%s: sanity check blames %q, which is no key of the request", msg, bad)
		}
	})
}

// isKey reports whether k is a key of fields or of an object one level down (directly or in an array).
func isKey(fields map[string]json.RawMessage, k string) bool {
	if _, ok := fields[k]; ok {
		return true
	}
	for _, v := range fields {
		var inner map[string]json.RawMessage
		if json.Unmarshal(v, &inner) == nil {
			if _, ok := inner[k]; ok {
				return true
			}
		}
		var items []json.RawMessage
		if json.Unmarshal(v, &items) == nil {
			for _, it := range items {
				if json.Unmarshal(it, &inner) == nil {
					if _, ok := inner[k]; ok {
						return true
					}
				}
			}
		}
	}
	return false
}
