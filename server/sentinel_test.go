package server_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/internal/wstest"
	"github.com/wsgate/wsgate/server"
)

// The gateway and the worker find the master through Sentinel; the master fails over while clients keep
// calling: every request gets exactly one answer, and requests after the failover succeed (on the new master:
// the old one is now a read-only replica).
func TestRedisSentinelFailoverUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a master, a replica and a Sentinel, and fails over")
	}
	t.Parallel()
	set := redistest.StartSentinel(t, 1)
	oldMaster := set.MasterAddr()
	const queueTimeout = 4 * time.Second
	cfg := server.Config{Mode: "recoverable", QueueTimeout: queueTimeout,
		RedisConfig: server.RedisConfig{Sentinel: server.RedisSentinel{Master: set.MasterName, Addrs: set.Addrs}}}
	startWorkerOn(t, cfg)
	gw := startGatewayOn(t, cfg)

	const conns, okAfterWanted = 8, 25
	var (
		sent, results, failures atomic.Int64
		failedOver              atomic.Bool
		okAfter                 [conns]atomic.Int64
		codes                   sync.Map // error code -> *atomic.Int64
		stop                    = make(chan struct{})
		wg                      sync.WaitGroup
		problems                = make(chan error, conns)
	)
	for i := 0; i < conns; i++ {
		c := wstest.Dial(t, gw.URL())
		wg.Add(1)
		go func(i int, c *wstest.Client) {
			defer wg.Done()
			for n := 1; ; n++ {
				select {
				case <-stop:
					// Exactly one answer each: nothing more arrives.
					if b, err := c.Read(200 * time.Millisecond); err == nil {
						problems <- fmt.Errorf("conn %d: extra message %s", i, b)
					}
					return
				default:
				}
				if err := wsutil.WriteClientText(c.Conn, []byte(fmt.Sprintf(`{"echo":%d,"req_id":%d}`, n, n))); err != nil {
					problems <- fmt.Errorf("conn %d: send: %w", i, err)
					return
				}
				sent.Add(1)
				b, err := c.Read(queueTimeout + 5*time.Second)
				if err != nil {
					problems <- fmt.Errorf("conn %d: request %d got no answer: %w", i, n, err)
					return
				}
				var r struct {
					ReqID int            `json:"req_id"`
					Echo  map[string]any `json:"echo"`
					Error *struct{ Code string }
				}
				if err := json.Unmarshal(b, &r); err != nil || r.ReqID != n {
					problems <- fmt.Errorf("conn %d: request %d: reply %s", i, n, b)
					return
				}
				switch {
				case r.Error != nil:
					failures.Add(1)
					v, _ := codes.LoadOrStore(r.Error.Code, new(atomic.Int64))
					v.(*atomic.Int64).Add(1)
				case r.Echo["echo"] == float64(n):
					results.Add(1)
					if failedOver.Load() {
						okAfter[i].Add(1)
					}
				default:
					problems <- fmt.Errorf("conn %d: request %d: wrong reply %s", i, n, b)
					return
				}
			}
		}(i, c)
	}
	waitFor(t, func() bool { return results.Load() >= 200 })
	start := time.Now()
	newMaster := set.Failover()
	failedOver.Store(true)
	took := time.Since(start)
	// Every connection gets answers again (waiting past a queue timeout if a job was lost on the way).
	// (Eventually, not WaitFor: on failure the load goroutines must still be stopped below, and the problems
	// they found reported.)
	answeredAll := func() bool {
		for i := range okAfter {
			if okAfter[i].Load() < okAfterWanted {
				return false
			}
		}
		return true
	}
	if !testutil.Eventually(3*queueTimeout+10*time.Second, func() bool { return answeredAll() || len(problems) > 0 }) {
		for i := range okAfter {
			if n := okAfter[i].Load(); n < okAfterWanted {
				t.Errorf("conn %d: only %d requests answered after the failover", i, n)
			}
		}
	}
	close(stop)
	wg.Wait()
	close(problems)
	for err := range problems {
		t.Error(err)
	}
	byCode := map[string]int64{}
	codes.Range(func(k, v any) bool { byCode[k.(string)] = v.(*atomic.Int64).Load(); return true })
	q := gw.Stats().Queue
	t.Logf("failover %s -> %s in %v: sent %d, answered %d (%d results, %d errors %v); queue: %d submit errors, "+
		"%d recovered, %d resubscribed, %d late", oldMaster, newMaster, took.Round(time.Millisecond), sent.Load(),
		results.Load()+failures.Load(), results.Load(), failures.Load(), byCode, q.SubmitErrors, q.Recovered,
		q.Resubscribed, q.Late)
	if oldMaster == newMaster {
		t.Fatal("no failover happened")
	}
	if answered := results.Load() + failures.Load(); answered != sent.Load() {
		t.Fatalf("sent %d, answered %d", sent.Load(), answered)
	}
	if st := gw.Stats().Registry; st.Pending != 0 {
		t.Fatalf("registry still holds %d requests", st.Pending)
	}
}
