package redisq_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/redisq"
)

// The tests here pair clients and workers whose modes differ, and Perl peers (scripted Redis commands that
// follow the Job::Async::Redis protocol, PROTOCOL.md), as a mixed fleet or a wrong --mode would: no job may be lost
// silently, and no key may be left without a TTL.

// perlFetch is the Perl worker's fetch: BRPOPLPUSH pending processing, every item taken for a job ID.
func perlFetch(ctx context.Context, rdb *redis.Client, keys redisq.Keys, wait time.Duration) (string, bool) {
	id, err := rdb.BRPopLPush(ctx, keys.Pending(), keys.Processing(), wait).Result()
	return id, err == nil
}

// perlServe is the rest of the Perl worker's sequence for one ID: HGETALL, HMSET _started (even if the hash is
// empty: Perl does not check), run (echo the params' args), HMSET _processed + T result, PUBLISH, LREM.
func perlServe(ctx context.Context, rdb *redis.Client, keys redisq.Keys, id string) {
	h, _ := rdb.HGetAll(ctx, redisq.JobKey(id)).Result()
	rdb.HMSet(ctx, redisq.JobKey(id), "_started", fmt.Sprint(time.Now().Unix()))
	var params struct{ Args json.RawMessage }
	_ = json.Unmarshal([]byte(h["text_params"]), &params)
	if params.Args == nil {
		params.Args = json.RawMessage("null")
	}
	rdb.HMSet(ctx, redisq.JobKey(id), "_processed", fmt.Sprint(time.Now().Unix()),
		"result", `T{"success":1,"result":`+string(params.Args)+`}`)
	rdb.Publish(ctx, redisq.ClientChannel(h["_reply_to"]), id)
	rdb.LRem(ctx, keys.Processing(), 1, id)
}

// startPerlWorker runs a Perl-style worker until the test ends.
func startPerlWorker(t *testing.T, srv *redistest.Server, keys redisq.Keys) {
	rdb := srv.Client()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if id, ok := perlFetch(ctx, rdb, keys, time.Second); ok {
				perlServe(ctx, rdb, keys, id)
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
}

// perlCall is the Perl client's sequence for one job: SUBSCRIBE, HMSET (no TTL), LPUSH the ID, wait for the
// notification, HMGET result, DEL. It returns the result.
func perlCall(t *testing.T, rdb *redis.Client, keys redisq.Keys, args string) string {
	t.Helper()
	ctx := context.Background()
	id, cid := redisq.NewID(), redisq.NewID()
	sub := rdb.Subscribe(ctx, redisq.ClientChannel(cid))
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	rdb.HMSet(ctx, redisq.JobKey(id), "_reply_to", cid, "_queued", fmt.Sprint(time.Now().Unix()),
		"text_name", "echo", "text_params", `{"args":`+args+`}`)
	rdb.LPush(ctx, keys.Pending(), id)
	msg, err := sub.ReceiveTimeout(ctx, 10*time.Second)
	if err != nil {
		t.Fatalf("perl client: no notification: %v", err)
	}
	if m, ok := msg.(*redis.Message); !ok || m.Payload != id {
		t.Fatalf("perl client: notification %v, want %s", msg, id)
	}
	res, _ := rdb.HMGet(ctx, redisq.JobKey(id), "result").Result()
	rdb.Del(ctx, redisq.JobKey(id))
	s, _ := res[0].(string)
	return s
}

// keysWithoutTTL lists the keys of the server that never expire (TTL -1), with their types.
func keysWithoutTTL(t *testing.T, rdb *redis.Client) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	iter := rdb.Scan(ctx, 0, "*", 100).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		if ttl, err := rdb.Do(ctx, "TTL", key).Int(); err == nil && ttl == -1 {
			typ, _ := rdb.Type(ctx, key).Result()
			out = append(out, key+" ("+typ+")")
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEveryModePairing pairs every client mode with every worker mode, and each with a Perl-style worker or
// client: every request is answered (a failure is an answer), and no key is left without a TTL. The one pair
// that cannot work, a Perl worker and a simple-mode client (Perl never reads the simple list), ends with the
// caller's timeout and a simple list that expires.
func TestEveryModePairing(t *testing.T) {
	const perl = redisq.Mode("perl")
	modes := []redisq.Mode{redisq.ModeSimple, redisq.ModeRecoverable, redisq.ModeReliable}
	for _, client := range append(modes, perl) {
		for _, worker := range append(modes, perl) {
			if client == perl && worker == perl {
				continue
			}
			t.Run(fmt.Sprintf("client=%s/worker=%s", client, worker), func(t *testing.T) {
				t.Parallel()
				srv := redistest.Start(t)
				rdb := srv.Client()
				keys := redisq.Keys{}
				if worker == perl {
					startPerlWorker(t, srv, keys)
				} else {
					startTestWorker(t, srv, redisq.WorkerConfig{Mode: worker, Handler: echoRPC,
						Heartbeat: 200 * time.Millisecond})
				}
				if client == perl {
					for i := 0; i < 3; i++ {
						want := fmt.Sprintf(`T{"success":1,"result":{"i":%d}}`, i)
						if got := perlCall(t, rdb, keys, fmt.Sprintf(`{"i":%d}`, i)); got != want {
							t.Fatalf("perl client got %q, want %q", got, want)
						}
					}
				} else {
					pairGoClient(t, srv, client, worker == perl)
				}
				if leaked := keysWithoutTTL(t, rdb); len(leaked) > 0 {
					t.Fatalf("keys without a TTL: %v", leaked)
				}
			})
		}
	}
}

// pairGoClient submits echo and failing jobs from a client in the given mode and checks that each is
// answered once; with a Perl worker, which echoes every job, a simple-mode client's jobs are not seen at all.
func pairGoClient(t *testing.T, srv *redistest.Server, mode redisq.Mode, perlWorker bool) {
	t.Helper()
	c, col := startClient(t, srv, redisq.ClientConfig{Mode: mode, CancelForgotten: true})
	const n = 4
	for i := 0; i < n; i++ {
		method := "echo"
		if i == 0 {
			method = "fail"
		}
		id := fmt.Sprintf("%s-%d", method, i)
		if err := c.Submit(redisq.RPCSubmission(id, method, []byte(fmt.Sprintf(`{"args":{"i":%d}}`, i)))); err != nil {
			t.Fatal(err)
		}
	}
	if perlWorker && mode == redisq.ModeSimple {
		// The caller's timeout answers: nothing else may, and what is left behind expires.
		select {
		case got := <-col.ch:
			t.Fatalf("a Perl worker answered a simple-mode job: %+v", got)
		case <-time.After(time.Second):
		}
		for i := 0; i < n; i++ {
			c.Forget(fmt.Sprintf("echo-%d", i))
		}
		ctx := context.Background()
		rdb := srv.Client()
		if l, _ := rdb.LLen(ctx, redisq.Keys{}.Simple()).Result(); l != n {
			t.Fatalf("simple list holds %d jobs, want %d", l, n)
		}
		if ttl, _ := rdb.TTL(ctx, redisq.Keys{}.Simple()).Result(); ttl <= 0 {
			t.Fatalf("simple list TTL %v", ttl)
		}
		return
	}
	for _, got := range col.wait(t, n) {
		if strings.HasPrefix(got.JobID, "fail") && !perlWorker {
			if !errors.Is(got.Err, redisq.ErrJobFailed) {
				t.Fatalf("job %s: %v, want ErrJobFailed", got.JobID, got.Err)
			}
			continue
		}
		if got.Err != nil {
			t.Fatalf("job %s: %v", got.JobID, got.Err)
		}
		args, err := redisq.RPCResult(got.Result)
		if want := fmt.Sprintf(`{"i":%s}`, got.JobID[len(got.JobID)-1:]); err != nil || string(args) != want {
			t.Fatalf("job %s: %s (%v), want %s", got.JobID, args, err, want)
		}
	}
	if st := c.Stats(); st.Completed != n || st.Pending != 0 {
		t.Fatalf("client stats %+v", st)
	}
}

// TestWorkersServeSimpleJobsOnThePendingList: a simple-mode job on the pending list (pushed by a client from
// before the simple list) is served by a worker of every mode, the simple way, and leaves nothing in processing.
func TestWorkersServeSimpleJobsOnThePendingList(t *testing.T) {
	for _, mode := range []redisq.Mode{redisq.ModeSimple, redisq.ModeRecoverable, redisq.ModeReliable} {
		t.Run("worker="+string(mode), func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t)
			ctx := context.Background()
			rdb := srv.Client()
			// The old client is gone from this process: listen on its channel as it would.
			sub := rdb.Subscribe(ctx, redisq.ClientChannel("old-client"))
			defer sub.Close()
			if _, err := sub.Receive(ctx); err != nil {
				t.Fatal(err)
			}
			startTestWorker(t, srv, redisq.WorkerConfig{Mode: mode, Handler: echoRPC})
			job := `{"id":"old-1","reply_to":"old-client","queued":1,"text":{"name":"echo","params":"{\"args\":7}"}}`
			rdb.LPush(ctx, "jobs::pending", job)
			var msg *redis.Message
			select {
			case msg = <-sub.Channel():
			case <-time.After(10 * time.Second):
				t.Fatal("no result published")
			}
			var got struct{ ID, Result, Error string }
			if err := json.Unmarshal([]byte(msg.Payload), &got); err != nil || got.ID != "old-1" || got.Result != `T{"success":1,"result":7}` {
				t.Fatalf("published %s (%v)", msg.Payload, err)
			}
			waitFor(t, func() bool { n, _ := rdb.LLen(ctx, "jobs::processing").Result(); return n == 0 })
			if leaked := keysWithoutTTL(t, rdb); len(leaked) > 0 {
				t.Fatalf("keys without a TTL: %v", leaked)
			}
		})
	}
}

// TestModeMismatchOnClusterWithoutHashTag: without a {tag}, the pending and simple lists are in different slots,
// so a worker cannot BRPOP both; it blocks on its own and polls the other. Jobs of the other mode still run.
func TestModeMismatchOnClusterWithoutHashTag(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster")
	}
	t.Parallel()
	cluster := redistest.StartCluster(t)
	newClient := func(pool int) *redis.ClusterClient {
		c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs(), PoolSize: pool})
		t.Cleanup(func() { c.Close() })
		return c
	}
	for _, tc := range []struct{ client, worker redisq.Mode }{
		{redisq.ModeSimple, redisq.ModeRecoverable},
		{redisq.ModeRecoverable, redisq.ModeSimple},
	} {
		t.Run(fmt.Sprintf("client=%s/worker=%s", tc.client, tc.worker), func(t *testing.T) {
			t.Parallel() // each pairing has its own prefix
			keys := redisq.Keys{Prefix: "untagged-" + string(tc.client)}
			c, col := startClient(t, nil, redisq.ClientConfig{Redis: newClient(10), Mode: tc.client, Keys: keys})
			startTestWorker(t, nil, redisq.WorkerConfig{Redis: newClient(16), Mode: tc.worker, Keys: keys,
				Handler: echoRPC, PollTimeout: 500 * time.Millisecond}) // on a cluster, Shutdown waits for the poll
			for i := 0; i < 3; i++ {
				c.Submit(redisq.RPCSubmission(fmt.Sprintf("%s-%d", tc.client, i), "echo", []byte(`{"args":1}`)))
			}
			for _, got := range col.wait(t, 3) {
				if args, err := redisq.RPCResult(got.Result); got.Err != nil || err != nil || string(args) != "1" {
					t.Fatalf("%+v (%s, %v)", got, args, err)
				}
			}
		})
	}
}
