package actors

import (
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/wsgate/wsgate/internal/testutil"
)

// benchHost agrees to passivations when agree is set, and keeps what the session leaves.
type benchHost struct {
	agree bool
	mu    sync.Mutex
	st    *SessionState
}

func (h *benchHost) Passivate(st *SessionState) bool {
	if !h.agree {
		return false
	}
	h.mu.Lock()
	h.st = st
	h.mu.Unlock()
	return true
}

// BenchmarkSessionMessage is one request answered in the gateway (no queue), to a session that keeps its
// actor (respawn=false) or to a passivated one that is respawned for the message and passivates after it
// (respawn=true): the difference is what a respawn costs a message.
func BenchmarkSessionMessage(b *testing.B) {
	for _, respawn := range []bool{false, true} {
		b.Run("respawn="+map[bool]string{false: "false", true: "true"}[respawn], func(b *testing.B) {
			quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
			system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
			defer system.Shutdown()
			reg, err := NewRegistry(system.Root, RegistryConfig{Shards: 2})
			if err != nil {
				b.Fatal(err)
			}
			acts, err := NewActions(Action{Name: "local", InsteadOfForward: func(*Request) Verdict {
				return Answer(json.RawMessage(`1`))
			}})
			if err != nil {
				b.Fatal(err)
			}
			s, err := NewSessions(SessionConfig{Actions: acts, Registry: reg, Submitter: &fakeQueue{}, Logger: quiet,
				NewJobID: func() string { return "" }})
			if err != nil {
				b.Fatal(err)
			}
			f := struct{ root *actor.RootContext }{system.Root}
			conn := newFakeConn()
			host := &benchHost{agree: respawn}
			pid := s.SpawnHosted(f.root, conn, host)
			msg := []byte(`{"local":1}`)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if respawn {
					host.mu.Lock()
					st := host.st
					host.mu.Unlock()
					pid = s.Resume(f.root, conn, host, st)
				}
				f.root.Send(pid, &Inbound{Data: msg, Quiet: respawn})
				<-conn.sent
			}
		})
	}
}

// TestPassivatedSessionIDIsReused: a respawned session takes the ID its passivated predecessor let go, so the
// process registry's maps do not grow with respawns; and the predecessor's stash comes along.
func TestPassivatedSessionIDIsReused(t *testing.T) {
	var s *Sessions
	f := newFixture(t, &fakeQueue{}, func(c *SessionConfig) { s, _ = NewSessions(*c) })
	host := &benchHost{agree: true}
	conn := newFakeConn()
	pid := s.SpawnHosted(f.root, conn, host)
	id := pid.Id
	s.Passivate(f.root, pid)
	testutil.WaitFor(t, func() bool { s.ids.mu.Lock(); defer s.ids.mu.Unlock(); return len(s.ids.ids) == 1 })
	host.st = &SessionState{stash: map[string]json.RawMessage{"user": json.RawMessage(`"alice"`)}}
	again := s.Resume(f.root, conn, host, host.st)
	if again.Id != id {
		t.Fatalf("respawned as %s, want the passivated session's ID %s", again.Id, id)
	}
	host.agree = false
	f.root.Send(again, &Inbound{Data: []byte(`not json`)})
	select { // a reply (BadRequest): the actor runs
	case <-conn.sent:
	case <-time.After(10 * time.Second):
		t.Fatal("the respawned session does not answer")
	}
	if st := s.Stats(); st.Passivations != 1 || st.Resumes != 1 || st.Passivated != 0 {
		t.Fatalf("stats %+v", st)
	}
}
