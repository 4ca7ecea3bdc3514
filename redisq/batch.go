package redisq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The worker's Redis traffic is batched across jobs: a fetcher takes up to FetchBatch jobs per round trip
// (one blocking fetch for the first, then non-blocking ones in the same pipeline), reads and marks them in one
// pipeline, hands each to a handler goroutine (at most Concurrency run at once), and one answerer writes the
// results of all finished jobs in pipelines. Per job, Redis sees the same commands as from the Perl worker;
// it just sees them in fewer, larger round trips, which is what its CPU is spent on.

// answer is a finished job on its way to the answerer.
type answer struct {
	job    *Job
	res    Result
	err    error
	simple bool // a simple-mode job: the result goes in the PUBLISH
}

// fetchLoop is one fetcher.
func (w *Worker) fetchLoop() {
	defer w.wg.Done()
	ctx := context.Background()
	bc := &blockingConn{w: w}
	defer bc.drop()
	backoff := 50 * time.Millisecond
	extra := 1 // reliable mode: how many non-blocking LMOVEs to try after the blocking one (adapts to the load)
	for !w.stopping() {
		// A slot for the first job, then as many more as are free (up to the batch size).
		select {
		case w.slots <- struct{}{}:
		case <-w.stop:
			return
		}
		n := 1
		for n < w.cfg.FetchBatch {
			select {
			case w.slots <- struct{}{}:
				n++
				continue
			default:
			}
			break
		}
		want := n
		if w.cfg.Mode == ModeReliable {
			want = min(n, 1+extra)
		}
		fetchStart := time.Now()
		items, err := w.fetch(ctx, bc.cmdable(ctx), want)
		w.count(func(s *WorkerStats) { s.FetchWait += time.Since(fetchStart) })
		if err != nil {
			for range n {
				<-w.slots // give back what was not used
			}
			bc.drop()
			w.log.Warn("fetch failed", "err", err)
			if !w.sleep(backoff) {
				return
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		for i := max(want, len(items)); i < n; i++ {
			<-w.slots // give back at once what cannot be used, so that other fetchers can take jobs
		}
		n = max(want, len(items))
		got := len(items)
		if got > 0 {
			// Reliable mode: the non-blocking LMOVEs for more jobs go in the pipeline that takes the first.
			moves := 0
			if w.cfg.Mode == ModeReliable {
				moves = want - got
			}
			moved := w.dispatch(ctx, items, moves)
			got += moved
			if moves > 0 {
				// Each LMOVE that finds the list empty is a wasted command: probe with one, double while they
				// all deliver.
				if moved == moves {
					extra = min(2*extra, w.cfg.FetchBatch-1)
				} else {
					extra = max(moved, 1)
				}
			}
		}
		for i := got; i < n; i++ {
			<-w.slots // give back what was not used
		}
	}
}

// fetch takes up to n items: BLMOVE (reliable; BRPOPLPUSH in Perl) or BRPOP (on both lists, see lists.go) for
// the first, then, except in reliable mode, RPOP-with-count for the rest without blocking (reliable mode's
// LMOVEs for the rest share the pipeline that takes the first: see start). When a poll of the list it does not
// block on is due, it takes what that list holds instead. The blocking command goes to blocking
// (unblock.go).
func (w *Worker) fetch(ctx context.Context, blocking redis.Cmdable, n int) ([]string, error) {
	rdb, keys := w.cfg.Redis, w.cfg.Keys
	if items := w.pollOther(ctx, n); len(items) > 0 {
		return items, nil
	}
	var first string
	var err error
	from := keys.Pending()
	if w.cfg.Mode == ModeReliable {
		first, err = blocking.BLMove(ctx, keys.Pending(), keys.Processing(), "RIGHT", "LEFT", w.cfg.PollTimeout).Result()
	} else {
		own, other := w.lists()
		lists := []string{own, other}
		if !w.waitsOnBoth() {
			lists = lists[:1]
		}
		var kv []string
		if kv, err = blocking.BRPop(ctx, w.cfg.PollTimeout, lists...).Result(); err == nil {
			from, first = kv[0], kv[1]
		}
	}
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	items := []string{first}
	if n == 1 || w.cfg.Mode == ModeReliable { // reliable: the LMOVEs for more go with the take (start)
		return items, nil
	}
	more, err := rdb.RPopCount(ctx, from, n-1).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		w.log.Warn("fetch more failed", "err", err) // the first one still runs
	}
	return append(items, more...), nil
}

// start reads and marks a batch of jobs (HGETALL + HSET _started, as one script each, in one pipeline) and
// runs each in a goroutine of its own. In reliable mode the same pipeline tries moves non-blocking LMOVEs for
// more jobs, which are then dispatched in turn; it returns how many it moved.
func (w *Worker) start(ctx context.Context, ids []string, moves int) int {
	rdb, keys := w.cfg.Redis, w.cfg.Keys
	_, cluster := rdb.(*redis.ClusterClient)
	takes := make([]*redis.Cmd, len(ids)) // per job on a cluster
	var batch *redis.Cmd                  // elsewhere one script for all
	lmoves := make([]*redis.StringCmd, moves)
	now := epoch(time.Now())
	_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if !cluster && len(ids) > 0 {
			batch = takeBatchScript.EvalSha(ctx, p, jobKeys(ids), now, w.cfg.WorkerID)
		} else {
			for i, id := range ids {
				takes[i] = takeScript.Eval(ctx, p, []string{JobKey(id)}, now, w.cfg.WorkerID)
			}
		}
		for i := range lmoves {
			lmoves[i] = p.LMove(ctx, keys.Pending(), keys.Processing(), "RIGHT", "LEFT")
		}
		return nil
	})
	var batchRes []any
	var batchErr error
	if batch != nil && redis.HasErrorPrefix(batch.Err(), "NOSCRIPT") { // Redis restarted or flushed its scripts
		batch = takeBatchScript.Eval(ctx, rdb, jobKeys(ids), now, w.cfg.WorkerID)
	}
	if batch != nil {
		batchRes, batchErr = batch.Slice()
		if batchErr == nil && len(batchRes) != len(ids) {
			batchErr = fmt.Errorf("redisq: take script returned %d replies for %d jobs", len(batchRes), len(ids))
		}
	}
	var gone []string
	for i, id := range ids {
		var res []string
		var err error
		if batch != nil {
			if err = batchErr; err == nil {
				res, err = stringSlice(batchRes[i])
			}
		} else {
			res, err = takes[i].StringSlice()
		}
		if err != nil {
			w.log.Warn("read job failed", "job_id", id, "err", err)
			<-w.slots // reliable: the ID stays in processing, and the reaper hands it out again if we die
			continue
		}
		if len(res) == 0 { // cancelled or expired: nobody waits for it
			w.count(func(s *WorkerStats) { s.Skipped++ })
			gone = append(gone, id)
			<-w.slots
			continue
		}
		h := make(map[string]string, len(res)/2)
		for k := 0; k+1 < len(res); k += 2 {
			h[res[k]] = res[k+1]
		}
		job, perr := parseJob(id, h)
		if job == nil {
			job = &Job{ID: id, ReplyTo: h[fieldReplyTo]}
		}
		job.replyWithResult = h[fieldReplyWithResult] != ""
		job.Deliveries = 1
		if d, err := strconv.Atoi(h[fieldDeliveries]); err == nil {
			job.Deliveries += d
		}
		w.jobs.Add(1)
		w.runners.Run(func() {
			defer w.jobs.Done()
			var a answer
			a.job = job
			if perr != nil {
				a.err = perr
			} else {
				a.res, a.err = w.serve(ctx, job)
			}
			w.answers <- a
			<-w.slots // after the hand-over: a stalled answerer stops the fetchers instead of piling up jobs
		})
	}
	if len(gone) > 0 && w.cfg.Mode == ModeReliable {
		_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, id := range gone {
				p.LRem(ctx, keys.Processing(), 1, id)
			}
			return nil
		})
	}
	var moved []string
	for _, m := range lmoves {
		if id, err := m.Result(); err == nil {
			moved = append(moved, id)
		}
	}
	if len(moved) > 0 {
		w.dispatch(ctx, moved, 0)
	}
	return len(moved)
}

// startSimple runs a simple-mode job (the job itself came off the list).
func (w *Worker) startSimple(ctx context.Context, sj simpleJob) {
	if sj.Expires > 0 && float64(time.Now().UnixMicro())/1e6 > sj.Expires {
		w.count(func(s *WorkerStats) { s.Skipped++ })
		<-w.slots
		return
	}
	job := &Job{ID: sj.ID, ReplyTo: sj.ReplyTo, Deliveries: 1, Queued: time.UnixMicro(int64(sj.Queued * 1e6)),
		Data: make(map[string]any, len(sj.Text)+len(sj.JSON))}
	for k, v := range sj.Text {
		job.Data[k] = v
	}
	for k, v := range sj.JSON {
		b, _ := json.Marshal(v)
		job.Data[k] = json.RawMessage(b)
	}
	w.jobs.Add(1)
	w.runners.Run(func() {
		defer w.jobs.Done()
		res, err := w.serve(ctx, job)
		w.answers <- answer{job: job, res: res, err: err, simple: true}
		<-w.slots
	})
}

// answerLoop writes finished jobs back in batches: per job HSET _processed+result (only into a hash that still
// exists), PUBLISH client::<reply_to> <id>, LREM processing; a simple-mode job's PUBLISH carries the result.
func (w *Worker) answerLoop() {
	defer w.bg.Done()
	batch := make([]answer, 0, 256)
	for a := range w.answers {
		batch = append(batch[:0], a)
	fill:
		for len(batch) < cap(batch) {
			select {
			case a, ok := <-w.answers:
				if !ok {
					break fill
				}
				batch = append(batch, a)
			default:
				break fill
			}
		}
		w.writeAnswers(batch)
	}
}

func (w *Worker) writeAnswers(batch []answer) {
	ctx := context.Background()
	rdb, keys := w.cfg.Redis, w.cfg.Keys
	for _, a := range batch {
		if a.err != nil {
			w.log.Debug("job failed", "job_id", a.job.ID, "err", a.err)
			w.count(func(s *WorkerStats) { s.Failed++ })
		} else {
			w.count(func(s *WorkerStats) { s.Processed++ })
		}
	}
	simple, batch := splitAnswers(batch)
	if len(simple) > 0 {
		w.publishSimple(ctx, simple) // simple.go
	}
	if len(batch) == 0 {
		return
	}
	now := time.Now()
	msgs := make([]string, len(batch))
	for i, a := range batch {
		msgs[i] = notification(a)
	}
	if _, cluster := rdb.(*redis.ClusterClient); !cluster && !w.cfg.Multi {
		w.answerScripted(ctx, batch, msgs, now)
		return
	}
	// Results are stored before their notifications go out, and the IDs leave `processing` last.
	err := pipelineInOrder(ctx, rdb, w.cfg.Multi, func(p redis.Pipeliner) {
		for _, a := range batch {
			updateIfExists(ctx, p, a.job.ID, resultFields(a, epoch(now))...)
		}
	}, func(p redis.Pipeliner) {
		for i, a := range batch {
			if a.job.ReplyTo != "" {
				p.Publish(ctx, ClientChannel(a.job.ReplyTo), msgs[i])
			}
			if w.cfg.Mode == ModeReliable {
				p.LRem(ctx, keys.Processing(), 1, a.job.ID)
			}
		}
		keys.countDone(ctx, p, len(batch), now)
	})
	if err != nil {
		w.log.Warn("write results failed", "jobs", len(batch), "err", err)
	}
}

// resultFields are the hash fields that answer a job: `_processed` and `result`, and `_error` for a failure.
func resultFields(a answer, now string) []any {
	if a.err != nil {
		return []any{fieldProcessed, now, fieldResult, string(TagText) + failedResultPrefix + a.err.Error(),
			fieldError, a.err.Error()}
	}
	return []any{fieldProcessed, now, fieldResult, a.res.encode()}
}

// notification is what the worker publishes for a finished job: its ID (the Perl protocol), or, when the
// client asked for it (fieldReplyWithResult), the result itself in simple mode's message form, a JSON object
// `{"id","result"}` or `{"id","error"}`. The result is written into the hash either way, so a client that
// misses the message recovers it from there (PROTOCOL.md, "Results in the notification").
func notification(a answer) string {
	if !a.job.replyWithResult {
		return a.job.ID
	}
	out := simpleResult{ID: a.job.ID}
	if a.err != nil {
		out.Error = a.err.Error()
	} else {
		out.Result = string(a.res.encode())
	}
	b, _ := json.Marshal(out) // strings only
	return string(b)
}

// answerScript answers a batch of jobs in one script: per job, the result into its hash if the hash still
// exists (as updateScript), the notification, and in reliable mode the LREM from `processing`, in the Perl
// worker's order; then the finished-jobs counter (rate.go), whose EXPIRE is needed only when the INCRBY
// created the bucket. One round trip and one script call per batch instead of three commands per job and two
// per batch. KEYS: processing, the rate bucket, then the job hashes. ARGV: the time, "1" in reliable mode, the
// bucket's TTL in seconds, then per job: ID, channel ("" for none), notification, result, error ("" for none).
// It declares every key it touches, but they are in different slots, so it runs on a single node only.
var answerScript = redis.NewScript(`
local n = #KEYS - 2
for i = 1, n do
  local key, a = KEYS[2 + i], 3 + (i - 1) * 5
  if redis.call('EXISTS', key) == 1 then
    if ARGV[a + 5] == '' then
      redis.call('HSET', key, '_processed', ARGV[1], 'result', ARGV[a + 4])
    else
      redis.call('HSET', key, '_processed', ARGV[1], 'result', ARGV[a + 4], '_error', ARGV[a + 5])
    end
  end
  if ARGV[a + 2] ~= '' then redis.call('PUBLISH', ARGV[a + 2], ARGV[a + 3]) end
  if ARGV[2] == '1' then redis.call('LREM', KEYS[1], 1, ARGV[a + 1]) end
end
if redis.call('INCRBY', KEYS[2], n) == n then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
return n`)

// answerChunkBytes bounds the bytes of results (and notifications) that one answer script carries: Redis holds
// a whole command in memory before it runs it, so a batch of large results goes as several script calls in one
// pipeline rather than as one command of hundreds of megabytes.
const answerChunkBytes = 4 << 20

// answerScripted writes a batch's answers with answerScript (single node, no MULTI): one EVALSHA when the batch
// fits in one call, else one EVAL per chunk in a pipeline.
func (w *Worker) answerScripted(ctx context.Context, batch []answer, msgs []string, now time.Time) {
	reliable := "0"
	if w.cfg.Mode == ModeReliable {
		reliable = "1"
	}
	type call struct {
		keys []string
		args []any
	}
	var calls []call
	size := 0
	for i, a := range batch {
		if len(calls) == 0 || size >= answerChunkBytes {
			calls = append(calls, call{
				keys: []string{w.cfg.Keys.Processing(), w.cfg.Keys.rateKey(now.Unix() / int64(rateBucket/time.Second))},
				args: []any{epoch(now), reliable, int64(rateTTL / time.Second)},
			})
			size = 0
		}
		c := &calls[len(calls)-1]
		c.keys = append(c.keys, JobKey(a.job.ID))
		channel, errText := "", ""
		if a.job.ReplyTo != "" {
			channel = ClientChannel(a.job.ReplyTo)
		}
		result := a.res.encode()
		if a.err != nil {
			errText = a.err.Error()
			result = []byte(string(TagText) + failedResultPrefix + errText)
		}
		c.args = append(c.args, a.job.ID, channel, msgs[i], result, errText)
		size += len(result) + len(msgs[i])
	}
	var err error
	if len(calls) == 1 {
		err = answerScript.Run(ctx, w.cfg.Redis, calls[0].keys, calls[0].args...).Err()
	} else {
		_, err = w.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, c := range calls {
				answerScript.Eval(ctx, p, c.keys, c.args...)
			}
			return nil
		})
	}
	if err != nil {
		w.log.Warn("write results failed", "jobs", len(batch), "err", err)
	}
}

// stringSlice converts one job's reply inside takeBatchScript's reply.
func stringSlice(v any) ([]string, error) {
	xs, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("redisq: take script reply %T, want an array", v)
	}
	out := make([]string, len(xs))
	for i, x := range xs {
		if out[i], ok = x.(string); !ok {
			return nil, fmt.Errorf("redisq: take script reply holds %T, want strings", x)
		}
	}
	return out, nil
}
