package redisq

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// fieldCancelled marks a job that its client gave up on (a wsgate extension; Perl code passes `_` fields
// through). A Go worker skips a job that has it; a Perl worker does not know it, and runs the job into a hash
// that still expires.
const fieldCancelled = "_cancelled"

// cancelJob queues the writes that cancel a job nobody waits for any more (Forget with CancelForgotten):
//   - `LREM <pending> -1 <id>`, so that no worker, Go or Perl, takes it from now on. The count -1 scans from the
//     tail, where the oldest jobs are (LPUSH adds at the head), which are those that time out;
//   - `_cancelled` = the time, set only if the hash exists, for a worker that took the ID just before the LREM:
//     a Go worker skips the job. The hash is not deleted but left to its TTL (a key keeps its TTL across HSET),
//     so that a Perl worker that took the ID writes into a key that still expires instead of re-creating it
//     without one. Only a client that sets no TTL (JobTTL < 0, as the Perl code) deletes it.
func (c *Client) cancelJob(ctx context.Context, p redis.Pipeliner, id string, now time.Time) {
	if c.cfg.JobTTL > 0 {
		updateIfExists(ctx, p, id, fieldCancelled, epoch(now))
	} else {
		p.Del(ctx, JobKey(id))
	}
	p.LRem(ctx, c.cfg.Keys.Pending(), -1, id)
}
