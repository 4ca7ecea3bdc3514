package redisq

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Two lists per queue, and workers that serve both (see PROTOCOL.md, "Lists and modes").
//
// The pending list (Keys.Pending) holds job IDs only: the Perl protocol, written by recoverable and reliable
// clients and by Perl clients, read by Perl workers, which take every item for an ID. Simple-mode clients push
// their JSON jobs on a list of their own (Keys.Simple), which Perl workers never see.
//
// Every Go worker reads both lists, whatever its mode, and runs each item as what it is, answering the way its
// submitter expects, so that a client and a worker configured with different modes still serve each other:
//   - a JSON simple-mode job (first byte '{') runs the simple way: its result goes in the PUBLISH, at most once;
//   - anything else is a job ID and runs the hash way (result in the hash, PUBLISH of the ID). A reliable worker
//     took it with BLMOVE and keeps it in processing while it runs; the others took it with BRPOP, which gives
//     recoverable semantics.
//
// A simple or recoverable worker blocks on both lists with one BRPOP (its own mode's list first). A reliable
// worker blocks on the pending list with BLMOVE, which has one source, and polls the simple list without
// blocking about once per PollTimeout; so does any worker whose two lists are in different Redis Cluster slots.

// parseSimpleJob reports whether a list item is a simple-mode job, and decodes it. Anything else is a job ID.
func parseSimpleJob(item string) (simpleJob, bool) {
	var sj simpleJob
	if len(item) == 0 || item[0] != '{' {
		return sj, false
	}
	if err := json.Unmarshal([]byte(item), &sj); err != nil || sj.ID == "" {
		return sj, false
	}
	return sj, true
}

// lists returns the list a worker blocks on first (its own mode's) and the other one.
func (w *Worker) lists() (own, other string) {
	if w.cfg.Mode == ModeSimple {
		return w.cfg.Keys.Simple(), w.cfg.Keys.Pending()
	}
	return w.cfg.Keys.Pending(), w.cfg.Keys.Simple()
}

// waitsOnBoth reports whether one BRPOP waits on both lists: not in reliable mode, whose BLMOVE has one source,
// nor on a cluster where the lists are in different slots.
func (w *Worker) waitsOnBoth() bool {
	_, cluster := w.cfg.Redis.(*redis.ClusterClient)
	return w.cfg.Mode != ModeReliable && (!cluster || w.cfg.Keys.hashTagged())
}

// otherListPoll paces the non-blocking polls of the list a worker does not block on.
type otherListPoll struct{ last atomic.Int64 } // unix nanoseconds of the latest poll

// due reports whether a poll is due (one per interval across all fetchers) and claims it.
func (p *otherListPoll) due(interval time.Duration) bool {
	now := time.Now().UnixNano()
	last := p.last.Load()
	return now-last >= int64(interval) && p.last.CompareAndSwap(last, now)
}

// pollOther takes up to n items from the other list without blocking, when that list is not waited on and a
// poll is due. Items taken this way are never in processing.
func (w *Worker) pollOther(ctx context.Context, n int) []string {
	if w.waitsOnBoth() || !w.otherPoll.due(w.cfg.PollTimeout) {
		return nil
	}
	_, other := w.lists()
	items, err := w.cfg.Redis.RPopCount(ctx, other, n).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		w.log.Warn("poll of the other list failed", "list", other, "err", err)
	}
	return items
}

// dispatch runs fetched items, each as what it is. A JSON job that a reliable worker moved into processing
// (pushed on the pending list by an older simple-mode client) leaves it at once: simple jobs are at most once.
// moves (reliable mode) asks for that many more jobs by non-blocking LMOVEs in the pipeline that takes these
// (start); it returns how many it moved.
func (w *Worker) dispatch(ctx context.Context, items []string, moves int) int {
	ids := items[:0:0]
	var taken []string
	for _, it := range items {
		sj, ok := parseSimpleJob(it)
		if !ok {
			ids = append(ids, it)
			continue
		}
		if w.cfg.Mode == ModeReliable {
			taken = append(taken, it)
		}
		w.startSimple(ctx, sj)
	}
	if len(taken) > 0 {
		_, _ = w.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, it := range taken {
				p.LRem(ctx, w.cfg.Keys.Processing(), 1, it)
			}
			return nil
		})
	}
	if len(ids) > 0 || moves > 0 {
		return w.start(ctx, ids, moves)
	}
	return 0
}

// splitAnswers separates the answers of simple-mode jobs from those of hash jobs.
func splitAnswers(batch []answer) (simple, hashed []answer) {
	for _, a := range batch {
		if a.simple {
			simple = append(simple, a)
		} else {
			hashed = append(hashed, a)
		}
	}
	return simple, hashed
}

// extendTTLScript sets a key's TTL to ARGV[1] milliseconds unless it already lives at least that long: the
// simple list lives as long as the longest-lived job pushed on it, so it never outlives its jobs by more than
// a TTL, nor dies before them.
var extendTTLScript = redis.NewScript(`
local t = redis.call('PTTL', KEYS[1])
if t == -2 or t >= tonumber(ARGV[1]) then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[1])`)
