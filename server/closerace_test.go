package server_test

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/wsgate/wsgate/actors"
	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/internal/wstest"
	"github.com/wsgate/wsgate/server"
)

// A client that leaves right after connecting (or right after a message) still gets its session's
// OpenedConnection and FinishConnection hooks once each, with the connection. (The race this guards against —
// a stop overtaking the message that hands a session its connection — is rare: this test did not catch it
// before the fix, it checks the pairing of the hooks around fast closes.)
func TestClientsThatLeaveAtOnceGetBothHooks(t *testing.T) {
	srv := redistest.Start(t)
	var opened, finished, nilConn atomic.Int64
	var mu sync.Mutex
	seen := map[uint64]int{}
	hooks := actors.Hooks{
		OpenedConnection: []func(actors.ConnInfo, map[string]json.RawMessage){func(c actors.ConnInfo, _ map[string]json.RawMessage) {
			opened.Add(1)
			mu.Lock()
			seen[c.ID()]++
			mu.Unlock()
		}},
		FinishConnection: []func(actors.ConnInfo, map[string]json.RawMessage){func(c actors.ConnInfo, _ map[string]json.RawMessage) {
			if c == nil {
				nilConn.Add(1)
				return
			}
			finished.Add(1)
			mu.Lock()
			seen[c.ID()]--
			mu.Unlock()
		}},
	}
	gw := startGateway(t, srv, server.Config{}, server.WithHooks(hooks))
	const n = 300
	for i := 0; i < n; i++ {
		c := wstest.Dial(t, gw.URL())
		if i%2 == 1 {
			_ = c.Write(`{"ping":1}`)
		}
		c.Conn.Close()
	}
	testutil.WaitFor(t, func() bool { return finished.Load()+nilConn.Load() == n })
	if nilConn.Load() != 0 || opened.Load() != n {
		t.Fatalf("%d of %d FinishConnection hooks ran without the connection; %d OpenedConnection", nilConn.Load(), n, opened.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	for id, d := range seen {
		if d != 0 {
			t.Fatalf("connection %d: opened and finished hooks do not pair (%d)", id, d)
		}
	}
}
