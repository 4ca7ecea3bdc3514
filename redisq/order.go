package redisq

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// pipelineInOrder runs first and then second. On a single node (or Sentinel) both go in one pipeline, which
// Redis runs in order. On Redis Cluster go-redis sends a pipeline's per-node parts concurrently, so a command
// for one node can overtake an earlier one for another; where the order matters (a job's hash before its ID
// on the list, a result before its notification) second waits for first. With multi, each phase is wrapped in
// MULTI/EXEC (single node only).
func pipelineInOrder(ctx context.Context, rdb redis.UniversalClient, multi bool, first, second func(redis.Pipeliner)) error {
	run := func(fns ...func(redis.Pipeliner)) error {
		body := func(p redis.Pipeliner) error {
			for _, f := range fns {
				f(p)
			}
			return nil
		}
		var err error
		if multi {
			_, err = rdb.TxPipelined(ctx, body)
		} else {
			_, err = rdb.Pipelined(ctx, body)
		}
		return err
	}
	if _, cluster := rdb.(*redis.ClusterClient); !cluster {
		return run(first, second)
	}
	if err := run(first); err != nil {
		return err
	}
	return run(second)
}
