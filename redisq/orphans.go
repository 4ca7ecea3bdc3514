package redisq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Orphans are IDs in `processing` that no live worker holds a lease on (no `_worker` field):
//   - not marked at all (no `_started`): a worker moved the ID (BLMOVE/LMOVE, or the Perl BRPOPLPUSH) and has
//     not run its take step yet, or died before it. The take follows the move within milliseconds, so an ID
//     that stays unmarked for takeGrace (three heartbeats, the time after which a silent worker counts as dead)
//     was fetched by a worker that died, and is requeued. This is what makes the move and the lease safe
//     without one atomic step: a blocking move cannot run inside a Lua script, and on Redis Cluster the job
//     hash is in another slot than the lists anyway.
//   - marked `_started` but without `_worker`: taken by a worker that sends no heartbeats (a Perl worker).
//     Requeued only with WorkerConfig.OrphanTimeout, once `_started` is older than it.
//
// Ages count from `_started`, or, for an unmarked ID, from `_orphan_seen`: the Redis time at which a reaper
// first saw it, kept in the hash so that every reaper agrees. Times are compared with Redis's clock (TIME).

// fieldOrphanSeen is the Redis time at which a reaper first saw the job's ID in `processing` unmarked.
const fieldOrphanSeen = "_orphan_seen"

// seenScript stamps `_orphan_seen` on an existing job hash unless it is there already, and returns the field.
var seenScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSETNX', KEYS[1], '_orphan_seen', ARGV[1])
return redis.call('HGET', KEYS[1], '_orphan_seen')`)

// takeGrace is how long an ID may sit in `processing` unmarked before it counts as fetched by a dead worker.
func (w *Worker) takeGrace() time.Duration { return 3 * w.cfg.Heartbeat }

// redisClock reads Redis's clock once per reap pass, when the first orphan candidate needs it.
type redisClock struct {
	rdb redis.UniversalClient
	now time.Time
}

func (c *redisClock) Now(ctx context.Context) (time.Time, error) {
	if c.now.IsZero() {
		t, err := c.rdb.Time(ctx).Result()
		if err != nil {
			return time.Time{}, fmt.Errorf("redisq: redis TIME: %w", err)
		}
		c.now = t
	}
	return c.now, nil
}

// orphaned reports whether the ID of a job without a `_worker` lease is to be requeued: started and seen are
// the hash's `_started` and `_orphan_seen` values (nil when absent). It stamps `_orphan_seen` on an unmarked
// job that no reaper has seen yet.
func (w *Worker) orphaned(ctx context.Context, id string, started, seen any, clock *redisClock) (bool, error) {
	var ref time.Time
	limit := w.takeGrace()
	if s, ok := started.(string); ok {
		if w.cfg.OrphanTimeout == 0 {
			return false, nil // a Perl worker's job: at most once, as the Perl code
		}
		ref, limit = parseEpoch(s), w.cfg.OrphanTimeout
	} else {
		if w.cfg.OrphanTimeout > 0 {
			limit = min(limit, w.cfg.OrphanTimeout)
		}
		now, err := clock.Now(ctx)
		if err != nil {
			return false, err
		}
		s, ok := seen.(string)
		if !ok {
			s, err = seenScript.Run(ctx, w.cfg.Redis, []string{JobKey(id)}, epoch(now)).Text()
			if err != nil && !errors.Is(err, redis.Nil) {
				return false, err
			}
		}
		ref = parseEpoch(s)
	}
	if ref.IsZero() {
		return false, nil
	}
	now, err := clock.Now(ctx)
	if err != nil {
		return false, err
	}
	return now.Sub(ref) > limit, nil
}
