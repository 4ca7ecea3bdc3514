package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/wsgate/wsgate/actors"
	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/internal/wstest"
	"github.com/wsgate/wsgate/redisq"
	"github.com/wsgate/wsgate/server"
)

// processes counts the processes (actors) of system.
func processes(system *actor.ActorSystem) int {
	n := 0
	for _, m := range system.ProcessRegistry.LocalPIDs.LocalPIDs {
		n += m.Count()
	}
	return n
}

// settledProcesses is the fewest processes seen over ~100 ms: the count without short-lived ones (a future's
// process, an actor still stopping) that may exist at any single reading.
func settledProcesses(system *actor.ActorSystem) int {
	least := processes(system)
	for range 10 {
		time.Sleep(10 * time.Millisecond)
		least = min(least, processes(system))
	}
	return least
}

func newTestSystem(t *testing.T) *actor.ActorSystem {
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return quiet }))
	t.Cleanup(system.Shutdown)
	return system
}

// TestPassivationKeepsOrderAndOneAnswer alternates busy and idle periods on many connections, with sessions
// passivating after 2-3 ms of quiet: messages keep racing with passivations and respawns. The sessions must
// see every connection's requests in the order sent (a BeforeForward hook records it), and every request must
// get exactly one answer, whether served by a worker, at once by the gateway, or by a deferred hook.
func TestPassivationKeepsOrderAndOneAnswer(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	startWorker(t, srv)
	var (
		mu     sync.Mutex
		seen   = map[uint64][]int{} // connection ID -> sequence numbers, in the order its session saw them
		opened atomic.Int64
		ended  atomic.Int64
	)
	hooks := actors.Hooks{
		OpenedConnection: []func(actors.ConnInfo, map[string]json.RawMessage){
			func(actors.ConnInfo, map[string]json.RawMessage) { opened.Add(1) }},
		FinishConnection: []func(actors.ConnInfo, map[string]json.RawMessage){
			func(actors.ConnInfo, map[string]json.RawMessage) { ended.Add(1) }},
		BeforeForward: []func(r *actors.Request) actors.Verdict{func(r *actors.Request) actors.Verdict {
			var seq int
			json.Unmarshal(r.ReqID(), &seq)
			mu.Lock()
			seen[r.Conn.ID()] = append(seen[r.Conn.ID()], seq)
			mu.Unlock()
			return actors.Continue
		}},
	}
	local := func(r *actors.Request) actors.Verdict { return actors.Answer(json.RawMessage(`"here"`)) }
	later := func(r *actors.Request) actors.Verdict {
		return actors.Verdict{Later: func(context.Context) actors.Verdict {
			time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
			return actors.Answer(json.RawMessage(`"later"`))
		}}
	}
	gw := startGateway(t, srv, server.Config{PassivateAfter: 2 * time.Millisecond,
		Actions: append(server.DemoActions(), server.Action{Name: "local", InsteadOfForward: local},
			server.Action{Name: "later", InsteadOfForward: later})}, server.WithHooks(hooks))

	const conns, rounds, perRound = 16, 6, 25
	kinds := []string{"echo", "local", "later"}
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := 0; i < conns; i++ {
		c := wstest.Dial(t, gw.URL())
		wg.Add(1)
		go func() {
			defer wg.Done()
			seq := 0
			for round := 0; round < rounds; round++ {
				// Busy: requests with gaps of 0-4 ms (around the passivation delay), read back as they come.
				want := map[int]string{}
				for j := 0; j < perRound; j++ {
					kind := kinds[rand.IntN(len(kinds))]
					if err := c.Write(fmt.Sprintf(`{%q:1,"req_id":%d}`, kind, seq)); err != nil {
						errs <- err
						return
					}
					want[seq] = kind
					seq++
					time.Sleep(time.Duration(rand.IntN(5)) * time.Millisecond)
				}
				for len(want) > 0 {
					b, err := c.Read(10 * time.Second)
					if err != nil {
						errs <- fmt.Errorf("%d replies missing: %w", len(want), err)
						return
					}
					var r struct {
						MsgType string `json:"msg_type"`
						ReqID   int    `json:"req_id"`
					}
					if err := json.Unmarshal(b, &r); err != nil || want[r.ReqID] != r.MsgType {
						errs <- fmt.Errorf("unexpected or repeated reply %s", b)
						return
					}
					delete(want, r.ReqID)
				}
				// Idle: long enough for the session to passivate.
				time.Sleep(10 * time.Millisecond)
			}
			if b, err := c.Read(50 * time.Millisecond); err == nil {
				errs <- fmt.Errorf("extra message %s", b)
			}
			c.Conn.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	mu.Lock()
	for id, seqs := range seen {
		for k, s := range seqs {
			if s != k {
				t.Fatalf("connection %d: the session saw requests in the order %v", id, seqs)
			}
		}
		if len(seqs) != rounds*perRound {
			t.Fatalf("connection %d: the session saw %d requests, want %d", id, len(seqs), rounds*perRound)
		}
	}
	if len(seen) != conns {
		t.Fatalf("requests seen on %d connections, want %d", len(seen), conns)
	}
	mu.Unlock()
	waitFor(t, func() bool { return ended.Load() == conns })
	st := gw.Stats().Sessions
	t.Logf("passivations %d, resumes %d", st.Passivations, st.Resumes)
	if st.Passivations < conns*rounds/2 || st.Resumes == 0 {
		t.Fatalf("sessions passivated %d times and resumed %d times: the test raced nothing", st.Passivations, st.Resumes)
	}
	if opened.Load() != conns || ended.Load() != conns || st.Passivated != 0 {
		t.Fatalf("OpenedConnection ran %d times, FinishConnection %d times for %d connections; %d still passivated",
			opened.Load(), ended.Load(), conns, st.Passivated)
	}
}

// TestPassivatedSessionKeepsStashAndLimits: what a worker put in the stash and what the rate limit has counted
// survive a passivation, and an idle connection holds no actor.
func TestPassivatedSessionKeepsStashAndLimits(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	login := redisq.RPC(func(_ context.Context, req *redisq.RPCRequest) (any, error) {
		return map[string]any{"ok": 1, "stash": map[string]string{"user": "alice"}}, nil
	})
	startTestWorker(t, srv, map[string]redisq.Handler{"login": login})
	system := newTestSystem(t)
	finished := make(chan map[string]json.RawMessage, 1)
	hooks := actors.Hooks{FinishConnection: []func(actors.ConnInfo, map[string]json.RawMessage){
		func(_ actors.ConnInfo, stash map[string]json.RawMessage) { finished <- stash }}}
	gw := startGateway(t, srv, server.Config{PassivateAfter: 200 * time.Millisecond,
		RateLimit: &actors.Rate{PerSecond: 0.001, Burst: 4}, // four requests, then none for the test's life
		Actions:   append(server.DemoActions(), server.Action{Name: "login"})},
		server.WithActorSystem(system), server.WithHooks(hooks))
	base := settledProcesses(system)
	passivated := func(n int64) func() bool {
		return func() bool { return gw.Stats().Sessions.Passivated == n }
	}

	c := wstest.Dial(t, gw.URL())
	// The new connection's session: an actor, or none once a sweep (every 100 ms) has found it quiet.
	testutil.WaitWithin(t, 10*time.Second, func() bool {
		return processes(system) == base+1 || passivated(1)() && processes(system) == base
	}, func() string {
		return fmt.Sprintf("%d processes and %d passivated with one new connection, want %d and 0, or %d and 1",
			processes(system), gw.Stats().Sessions.Passivated, base+1, base)
	})
	if got := c.Call(`{"login":1}`); !reflect.DeepEqual(got["login"], map[string]any{"ok": 1.0}) {
		t.Fatalf("login: %v", got)
	}
	waitFor(t, passivated(1))
	testutil.WaitWithin(t, 10*time.Second, func() bool { return processes(system) == base }, func() string {
		return fmt.Sprintf("%d processes with one passivated connection, want %d (none for the connection)", processes(system), base)
	})
	if got := c.Call(`{"whoami":1}`); !reflect.DeepEqual(got["whoami"], map[string]any{"user": "alice"}) {
		t.Fatalf("whoami after a passivation: %v, want alice from the stash", got)
	}
	waitFor(t, passivated(1))
	for i := 0; i < 2; i++ { // the third and fourth requests of the burst
		if got := c.Call(`{"ping":1}`); errCode(got) != "" {
			t.Fatalf("ping %d: %v", i, got)
		}
		waitFor(t, passivated(1))
	}
	if got := c.Call(`{"ping":1}`); errCode(got) != "RateLimit" {
		t.Fatalf("fifth request after passivations: %v, want RateLimit (the bucket was kept)", got)
	}
	if st := gw.Stats().Sessions; st.Resumes < 4 {
		t.Fatalf("resumed %d times, want at least 4: the test did not passivate between requests", st.Resumes)
	}
	waitFor(t, passivated(1))
	c.Conn.Close()
	select {
	case stash := <-finished:
		if string(stash["user"]) != `"alice"` {
			t.Fatalf("FinishConnection of a passivated session saw the stash %v", stash)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("FinishConnection did not run for a passivated session")
	}
	waitFor(t, passivated(0))
	testutil.WaitWithin(t, 10*time.Second, func() bool { return processes(system) == base }, func() string {
		return fmt.Sprintf("%d processes after the connection closed, want %d", processes(system), base)
	})
}
