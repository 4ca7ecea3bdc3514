package redisq_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/redisq"
)

// TestSimpleResultsKeptWhilePubSubIsDown: in simple mode, results published while the client's pub/sub
// connection is down are kept for it and delivered after it re-subscribes. The client logs in as an ACL user
// whose channel permission the test takes away (and drops its subscription), so that it cannot re-subscribe
// until every result has been published.
func TestSimpleResultsKeptWhilePubSubIsDown(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	admin, ctx := srv.Client(), context.Background()
	if err := admin.Do(ctx, "ACL", "SETUSER", "gw", "on", ">pw", "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	gw := redis.NewClient(&redis.Options{Addr: srv.Addr, Username: "gw", Password: "pw"})
	t.Cleanup(func() { gw.Close() })
	keys := redisq.Keys{Prefix: "missed"}
	c, col := startClient(t, srv, redisq.ClientConfig{Redis: gw, Mode: redisq.ModeSimple, Keys: keys})
	startTestWorker(t, srv, redisq.WorkerConfig{Mode: redisq.ModeSimple, Keys: keys, Handler: echoRPC})

	if err := admin.Do(ctx, "ACL", "SETUSER", "gw", "resetchannels").Err(); err != nil {
		t.Fatal(err)
	}
	killPubSub(t, srv)
	waitFor(t, func() bool { return !c.Subscribed() })
	const n = 20
	for i := 0; i < n; i++ {
		method := "echo"
		if i == 0 {
			method = "fail"
		}
		if err := c.Submit(redisq.RPCSubmission(fmt.Sprintf("job-%02d", i), method, []byte(`{"args":1}`))); err != nil {
			t.Fatal(err)
		}
	}
	missed := "client::" + c.ID() + "::missed"
	waitFor(t, func() bool { m, _ := admin.LLen(ctx, missed).Result(); return m == n })
	if ttl, _ := admin.TTL(ctx, missed).Result(); ttl <= 0 {
		t.Fatalf("missed-results list without a TTL (%v)", ttl)
	}
	if err := admin.Do(ctx, "ACL", "SETUSER", "gw", "allchannels").Err(); err != nil {
		t.Fatal(err)
	}
	// go-redis keeps a connection whose SUBSCRIBE failed with NOPERM (a reply error, not a broken connection),
	// unsubscribed and no longer in pub/sub mode: drop the user's connections so that it reconnects.
	if err := admin.Do(ctx, "CLIENT", "KILL", "USER", "gw").Err(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, got := range col.wait(t, n) {
		if seen[got.JobID] {
			t.Fatalf("second completion for %s", got.JobID)
		}
		seen[got.JobID] = true
		if (got.JobID == "job-00") != errors.Is(got.Err, redisq.ErrJobFailed) || (got.JobID != "job-00" && got.Err != nil) {
			t.Fatalf("completion %+v", got)
		}
	}
	if st := c.Stats(); st.Recovered != n || st.Pending != 0 {
		t.Fatalf("client stats %+v", st)
	}
	if m, _ := admin.Exists(ctx, missed).Result(); m != 0 {
		t.Fatal("the missed-results list was not deleted")
	}
}

// TestSimpleJobsLostWithRedisFailAtOnce: queued simple-mode jobs wiped by a Redis restart fail with ErrJobLost
// as soon as the client re-subscribes.
func TestSimpleJobsLostWithRedisFailAtOnce(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c, col := startClient(t, srv, redisq.ClientConfig{Mode: redisq.ModeSimple})
	for i := 0; i < 3; i++ {
		c.Submit(redisq.RPCSubmission(redisq.NewID(), "echo", []byte(`{}`)))
	}
	rdb := srv.Client()
	waitFor(t, func() bool { n, _ := rdb.LLen(context.Background(), "jobs::pending::simple").Result(); return n == 3 })
	srv.Restart() // no persistence: every job is gone
	for _, got := range col.wait(t, 3) {
		if !errors.Is(got.Err, redisq.ErrJobLost) {
			t.Fatalf("completion %+v, want ErrJobLost", got)
		}
	}
	if st := c.Stats(); st.Lost != 3 || st.Pending != 0 {
		t.Fatalf("stats %+v", st)
	}
	// A reconnect that lost nothing fails nothing: a job queued across a pub/sub drop is run afterwards.
	queued := redisq.NewID()
	waitFor(t, func() bool { return c.Submit(redisq.RPCSubmission(queued, "echo", []byte(`{"args":2}`))) == nil })
	waitFor(t, func() bool { n, _ := rdb.LLen(context.Background(), "jobs::pending::simple").Result(); return n == 1 })
	killPubSub(t, srv)
	waitFor(t, func() bool { return c.Stats().Resubscribed >= 2 })
	startTestWorker(t, srv, redisq.WorkerConfig{Mode: redisq.ModeSimple, Handler: echoRPC})
	if got := col.wait(t, 1)[0]; got.JobID != queued || got.Err != nil {
		t.Fatalf("completion %+v, want the queued job's result", got)
	}
}
