package redisq

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// Simple mode's results travel in the pub/sub message alone, so one published while its client's pub/sub
// connection is down (a reconnect, a Redis restart) would be lost. PUBLISH tells how many subscribers got the
// message: the worker publishes each result with a script that keeps it in the client's missed-results list
// `client::<id>::missed` (a TTL'd list) when nobody received it. The check and the store are one atomic step, so
// a client that re-subscribes either receives the message or finds it in the list, which it reads after every
// re-subscription. On the happy path this costs one EVAL per client per answer batch instead of one PUBLISH
// per job, and no key is written.
//
// A Redis restart without persistence also wipes the queued jobs. The client keeps a marker key
// `client::<id>::alive` (refreshed by its sweep): after a re-subscription a missing marker means Redis lost its
// data, and the client fails its pending jobs with ErrJobLost at once, except those whose result it finds.

// missedTTL bounds how long a result waits in a client's missed-results list.
const missedTTL = DefaultJobTTL

func clientMissed(clientID string) string { return "client::" + clientID + "::missed" }
func clientAlive(clientID string) string  { return "client::" + clientID + "::alive" }

// publishScript publishes each message (ARGV[3..]) on channel ARGV[1]; one that no subscriber received is
// appended to KEYS[1], whose TTL becomes ARGV[2] ms. It returns how many were kept.
var publishScript = redis.NewScript(`
local kept = 0
for i = 3, #ARGV do
  if redis.call('PUBLISH', ARGV[1], ARGV[i]) == 0 then
    redis.call('RPUSH', KEYS[1], ARGV[i])
    kept = kept + 1
  end
end
if kept > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return kept`)

// publishSimple answers a batch of simple-mode jobs: one publishScript per client. On Redis Cluster PUBLISH
// counts only the subscribers on the node that runs the script, so there the results are published plainly
// (and one published during a reconnect is lost, see PROTOCOL.md).
func (w *Worker) publishSimple(ctx context.Context, batch []answer) {
	_, cluster := w.cfg.Redis.(*redis.ClusterClient)
	byClient := make(map[string][]any)
	var order []string
	for _, a := range batch {
		out := simpleResult{ID: a.job.ID}
		if a.err != nil {
			out.Error = a.err.Error()
		} else {
			out.Result = string(a.res.encode())
		}
		msg, _ := json.Marshal(out)
		rt := a.job.ReplyTo
		if _, ok := byClient[rt]; !ok {
			order = append(order, rt)
		}
		byClient[rt] = append(byClient[rt], msg)
	}
	_, err := w.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, rt := range order {
			msgs := byClient[rt]
			if cluster {
				for _, m := range msgs {
					p.Publish(ctx, ClientChannel(rt), m)
				}
				continue
			}
			args := append([]any{ClientChannel(rt), missedTTL.Milliseconds()}, msgs...)
			publishScript.Eval(ctx, p, []string{clientMissed(rt)}, args...)
		}
		w.cfg.Keys.countDone(ctx, p, len(batch), time.Now())
		return nil
	})
	if err != nil {
		w.log.Warn("publish results failed", "jobs", len(batch), "err", err)
	}
}

// markAlive (re)sets the client's marker key, which lives as long as Redis keeps its data and the client its
// sweeps. It reports whether the marker was there.
func (c *Client) markAlive(ctx context.Context) (bool, error) {
	ttl := c.cfg.JobTTL
	if ttl <= 0 {
		ttl = DefaultJobTTL
	}
	old, err := c.cfg.Redis.SetArgs(ctx, clientAlive(c.id), "1", redis.SetArgs{TTL: 2 * ttl, Get: true}).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	return old != "", err
}

// recoverSimple runs after a re-subscription at time at (simple mode): it delivers the results kept for the
// client while it was not listening, and, when Redis lost its data (the marker is gone), fails at once the
// pending jobs written before at.
func (c *Client) recoverSimple(at int64) {
	ctx := context.Background()
	var missed *redis.StringSliceCmd
	_, err := c.cfg.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
		missed = p.LRange(ctx, clientMissed(c.id), 0, -1)
		p.Del(ctx, clientMissed(c.id))
		return nil
	})
	if err != nil {
		c.log.Warn("reading missed results failed", "err", err)
		return
	}
	for _, m := range missed.Val() {
		c.deliver(simpleCompletion(m), true)
	}
	survived, err := c.markAlive(ctx)
	if err != nil || survived {
		return
	}
	lost := c.pending.written(at)
	if len(lost) > 0 {
		c.log.Warn("Redis lost its data: failing the pending simple-mode jobs", "jobs", len(lost))
	}
	for _, id := range lost {
		c.deliver(Completion{JobID: id, Err: ErrJobLost}, true)
	}
}

// sweepSimple refreshes the marker and reports pending jobs written before the cutoff as lost: simple jobs
// expire with their JobTTL (the worker drops them), so no answer can come any more.
func (c *Client) sweepSimple(cutoff int64) {
	if _, err := c.markAlive(context.Background()); err != nil {
		c.log.Warn("refreshing the alive marker failed", "err", err)
	}
	for _, id := range c.pending.written(cutoff) {
		c.deliver(Completion{JobID: id, Err: ErrJobLost}, false)
	}
}
