package redisq_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/redisq"
)

func TestRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster")
	}
	t.Parallel()
	cluster := redistest.StartCluster(t)
	for _, mode := range []redisq.Mode{redisq.ModeSimple, redisq.ModeRecoverable, redisq.ModeReliable} {
		t.Run("mode="+string(mode), func(t *testing.T) {
			// The {tag} keeps a queue's lists (and reliable mode's heartbeats) in one slot; job hashes spread
			// over all three masters.
			keys := redisq.Keys{Prefix: "{q-" + string(mode) + "}"}
			newClient := func(pool int) *redis.ClusterClient {
				c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cluster.Addrs(), PoolSize: pool})
				t.Cleanup(func() { c.Close() })
				return c
			}
			c, col := startClient(t, nil, redisq.ClientConfig{Redis: newClient(10), Mode: mode, Keys: keys})
			startTestWorker(t, nil, redisq.WorkerConfig{Redis: newClient(16), Mode: mode, Keys: keys, Handler: echoRPC})
			const n = 200
			for i := 0; i < n; i++ {
				c.Submit(redisq.RPCSubmission(fmt.Sprintf("%s-%d", mode, i), "echo", []byte(fmt.Sprintf(`{"args":%d}`, i))))
			}
			for _, got := range col.wait(t, n) {
				var i int
				fmt.Sscanf(got.JobID, string(mode)+"-%d", &i)
				if res, err := redisq.RPCResult(got.Result); err != nil || string(res) != fmt.Sprint(i) {
					t.Fatalf("job %s: %s %v %v", got.JobID, res, err, got.Err)
				}
			}
			// Nothing is left behind on any master (a hash whose result came in its notification is deleted
			// in the client's next pipeline).
			for _, node := range cluster.Nodes {
				var left []string
				waitForMsg(t, func() bool {
					left, _ = node.Client().Keys(context.Background(), "job::*").Result()
					return len(left) == 0
				}, func() string { return fmt.Sprintf("node %s kept %v", node.Addr, left) })
			}
		})
	}
}

func TestReliableModeOnClusterNeedsAHashTag(t *testing.T) {
	t.Parallel()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: []string{"127.0.0.1:1"}})
	defer rdb.Close()
	_, err := redisq.NewWorker(redisq.WorkerConfig{Redis: rdb, Handler: echoRPC, Keys: redisq.Keys{Prefix: "jobs"}})
	if err == nil {
		t.Fatal("reliable mode on a cluster without a {tag} prefix was accepted: BLMOVE would fail cross-slot")
	}
	if _, err := redisq.NewWorker(redisq.WorkerConfig{Redis: rdb, Handler: echoRPC, Keys: redisq.Keys{Prefix: "{jobs}"}}); err != nil {
		t.Fatal(err)
	}
}
