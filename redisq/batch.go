package redisq

import (
	"context"
	"encoding/json"
	"errors"
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
		if w.cfg.Mode == ModeReliable && err == nil && len(items) > 0 {
			// Each LMOVE that finds the list empty is a wasted command: probe with one, double while they all
			// deliver.
			if got := len(items) - 1; got == want-1 {
				extra = min(2*extra, w.cfg.FetchBatch-1)
			} else {
				extra = max(got, 1)
			}
		}
		for i := len(items); i < n; i++ {
			<-w.slots // give back what was not used
		}
		if err != nil {
			bc.drop()
			w.log.Warn("fetch failed", "err", err)
			if !w.sleep(backoff) {
				return
			}
			backoff = min(backoff*2, 2*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		if len(items) == 0 {
			continue
		}
		w.dispatch(ctx, items)
	}
}

// fetch takes up to n items: BLMOVE (reliable; BRPOPLPUSH in Perl) or BRPOP (on both lists, see lists.go) for
// the first, then LMOVE or RPOP-with-count for the rest without blocking. When a poll of the list it does not
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
	if n == 1 {
		return items, nil
	}
	if w.cfg.Mode != ModeReliable {
		more, err := rdb.RPopCount(ctx, from, n-1).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			w.log.Warn("fetch more failed", "err", err) // the first one still runs
		}
		return append(items, more...), nil
	}
	moves := make([]*redis.StringCmd, n-1)
	_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range moves {
			moves[i] = p.LMove(ctx, keys.Pending(), keys.Processing(), "RIGHT", "LEFT")
		}
		return nil
	})
	for _, m := range moves {
		if id, err := m.Result(); err == nil {
			items = append(items, id)
		}
	}
	return items, nil
}

// start reads and marks a batch of jobs (HGETALL + HSET _started, as one script each, in one pipeline) and
// runs each in a goroutine of its own.
func (w *Worker) start(ctx context.Context, ids []string) {
	rdb, keys := w.cfg.Redis, w.cfg.Keys
	takes := make([]*redis.Cmd, len(ids))
	now := epoch(time.Now())
	_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			takes[i] = takeScript.Eval(ctx, p, []string{JobKey(id)}, now, w.cfg.WorkerID)
		}
		return nil
	})
	var gone []string
	for i, id := range ids {
		res, err := takes[i].StringSlice()
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
		job.Deliveries = 1
		if d, err := strconv.Atoi(h[fieldDeliveries]); err == nil {
			job.Deliveries += d
		}
		w.jobs.Add(1)
		go func() {
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
		}()
	}
	if len(gone) > 0 && w.cfg.Mode == ModeReliable {
		_, _ = rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, id := range gone {
				p.LRem(ctx, keys.Processing(), 1, id)
			}
			return nil
		})
	}
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
	go func() {
		defer w.jobs.Done()
		res, err := w.serve(ctx, job)
		w.answers <- answer{job: job, res: res, err: err, simple: true}
		<-w.slots
	}()
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
	now := epoch(time.Now())
	// Results are stored before their notifications go out, and the IDs leave `processing` last.
	err := pipelineInOrder(ctx, rdb, w.cfg.Multi, func(p redis.Pipeliner) {
		for _, a := range batch {
			fields := []any{fieldProcessed, now}
			if a.err != nil {
				fields = append(fields, fieldResult, string(TagText)+failedResultPrefix+a.err.Error(), fieldError, a.err.Error())
			} else {
				fields = append(fields, fieldResult, a.res.encode())
			}
			updateIfExists(ctx, p, a.job.ID, fields...)
		}
	}, func(p redis.Pipeliner) {
		for _, a := range batch {
			if a.job.ReplyTo != "" {
				p.Publish(ctx, ClientChannel(a.job.ReplyTo), a.job.ID)
			}
			if w.cfg.Mode == ModeReliable {
				p.LRem(ctx, keys.Processing(), 1, a.job.ID)
			}
		}
		keys.countDone(ctx, p, len(batch), time.Now())
	})
	if err != nil {
		w.log.Warn("write results failed", "jobs", len(batch), "err", err)
	}
}
