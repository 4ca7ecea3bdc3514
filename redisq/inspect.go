package redisq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Inspector reads and manages one queue for operators (`wsgate queue`): what waits, what runs, what died,
// which workers are alive. It only reads, except for the methods whose names say they change something.
// It is safe for concurrent use.
type Inspector struct {
	rdb  redis.UniversalClient
	keys Keys
}

// NewInspector returns an Inspector of the queue named by keys.
func NewInspector(rdb redis.UniversalClient, keys Keys) *Inspector {
	return &Inspector{rdb: rdb, keys: keys}
}

// QueueStats is a snapshot of one queue.
type QueueStats struct {
	Queue      string `json:"queue"`      // the pending list's key
	Pending    int64  `json:"pending"`    // job IDs waiting on the pending list (recoverable and reliable modes)
	Simple     int64  `json:"simple"`     // JSON jobs waiting on simple mode's list
	Processing int64  `json:"processing"` // job IDs a worker has taken (reliable mode)
	Dead       int64  `json:"dead"`       // job IDs on the dead-letter list
	// OldestPendingAge is how long the job next in line has waited; 0 when nothing waits or its age is unknown.
	OldestPendingAge time.Duration `json:"oldest_pending_age_ns"`
	// LiveWorkers counts the Go workers whose heartbeat has not expired. Perl workers send none.
	LiveWorkers int `json:"live_workers"`
	// JobsPerSecond is the rate of jobs finished by Go workers over the last minute (Perl workers are not
	// counted).
	JobsPerSecond float64 `json:"jobs_per_second"`
}

// Stats reads a snapshot of the queue.
func (in *Inspector) Stats(ctx context.Context) (QueueStats, error) {
	st := QueueStats{Queue: in.keys.Pending()}
	now := time.Now()
	p := in.rdb.Pipeline()
	pending := p.LLen(ctx, in.keys.Pending())
	simple := p.LLen(ctx, in.keys.Simple())
	processing := p.LLen(ctx, in.keys.Processing())
	dead := p.LLen(ctx, in.keys.Dead())
	oldestID := p.LIndex(ctx, in.keys.Pending(), -1)
	oldestSimple := p.LIndex(ctx, in.keys.Simple(), -1)
	buckets := make([]*redis.StringCmd, 0, rateBuckets)
	for _, k := range in.keys.rateKeys(now) {
		buckets = append(buckets, p.Get(ctx, k))
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return st, fmt.Errorf("redisq: queue stats: %w", err)
	}
	st.Pending, st.Simple, st.Processing, st.Dead = pending.Val(), simple.Val(), processing.Val(), dead.Val()
	var done int64
	for _, b := range buckets {
		n, _ := strconv.ParseInt(b.Val(), 10, 64)
		done += n
	}
	st.JobsPerSecond = float64(done) / rateSpan(now).Seconds()

	var queued time.Time
	if id := oldestID.Val(); id != "" {
		q, err := in.rdb.HGet(ctx, JobKey(id), fieldQueued).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return st, fmt.Errorf("redisq: queue stats: %w", err)
		}
		queued = parseEpoch(q)
	}
	if raw := oldestSimple.Val(); raw != "" {
		var sj simpleJob
		if json.Unmarshal([]byte(raw), &sj) == nil && sj.Queued > 0 {
			t := time.UnixMicro(int64(sj.Queued * 1e6))
			if queued.IsZero() || t.Before(queued) {
				queued = t
			}
		}
	}
	if !queued.IsZero() && now.After(queued) {
		st.OldestPendingAge = now.Sub(queued)
	}
	workers, err := in.Workers(ctx)
	if err != nil {
		return st, err
	}
	st.LiveWorkers = len(workers)
	return st, nil
}

// Workers lists the IDs of the Go workers of this queue's prefix whose heartbeat is alive (from the workers'
// sorted set: one command, whatever the size of the keyspace).
func (in *Inspector) Workers(ctx context.Context) ([]string, error) {
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	ids, err := in.rdb.ZRangeByScore(ctx, in.keys.workers(), &redis.ZRangeBy{Min: "(" + now, Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("redisq: list workers: %w", err)
	}
	sort.Strings(ids)
	return ids, nil
}

// JobInfo is a job's hash, decoded for people.
type JobInfo struct {
	ID string `json:"id"`
	// Exists is false when the hash is gone (answered and deleted, expired, or purged).
	Exists     bool              `json:"exists"`
	ReplyTo    string            `json:"reply_to,omitempty"`
	Queued     time.Time         `json:"queued,omitzero"`
	Started    time.Time         `json:"started,omitzero"`
	Processed  time.Time         `json:"processed,omitzero"`
	Worker     string            `json:"worker,omitempty"`
	Deliveries int               `json:"deliveries"`
	Data       map[string]any    `json:"data,omitempty"`   // text_, json_ and sereal_ fields, decoded
	Result     string            `json:"result,omitempty"` // the result's payload (its tag dropped)
	Error      string            `json:"error,omitempty"`  // the failure a Go worker wrote back
	TTL        time.Duration     `json:"ttl_ns"`           // -1 when the hash has no expiry (a leak)
	Other      map[string]string `json:"other,omitempty"`  // fields neither protocol names, raw
	// DecodeError says why a data field could not be decoded (the job would fail at a worker).
	DecodeError string `json:"decode_error,omitempty"`
}

// Job reads one job's hash.
func (in *Inspector) Job(ctx context.Context, id string) (JobInfo, error) {
	infos, err := in.jobs(ctx, []string{id})
	if err != nil {
		return JobInfo{}, err
	}
	return infos[0], nil
}

// List names one of a queue's lists.
type List string

// The lists of a queue.
const (
	ListPending    List = "pending"
	ListProcessing List = "processing"
	ListDead       List = "dead"
)

func (in *Inspector) listKey(l List) (string, error) {
	switch l {
	case ListPending:
		return in.keys.Pending(), nil
	case ListProcessing:
		return in.keys.Processing(), nil
	case ListDead:
		return in.keys.Dead(), nil
	}
	return "", fmt.Errorf("redisq: no list %q (pending, processing or dead)", l)
}

// Jobs reads up to limit jobs of a list, the next to be taken first.
func (in *Inspector) Jobs(ctx context.Context, l List, limit int) ([]JobInfo, error) {
	key, err := in.listKey(l)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	// Workers take from the right; the dead list is pushed on the left (newest first).
	var ids []string
	if l == ListDead {
		ids, err = in.rdb.LRange(ctx, key, 0, int64(limit)-1).Result()
	} else {
		ids, err = in.rdb.LRange(ctx, key, -int64(limit), -1).Result()
		for i, j := 0, len(ids)-1; i < j; i, j = i+1, j-1 {
			ids[i], ids[j] = ids[j], ids[i]
		}
	}
	if err != nil {
		return nil, fmt.Errorf("redisq: read %s: %w", key, err)
	}
	return in.jobs(ctx, ids)
}

func (in *Inspector) jobs(ctx context.Context, ids []string) ([]JobInfo, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	p := in.rdb.Pipeline()
	hashes := make([]*redis.MapStringStringCmd, len(ids))
	ttls := make([]*redis.DurationCmd, len(ids))
	for i, id := range ids {
		hashes[i] = p.HGetAll(ctx, JobKey(id))
		ttls[i] = p.PTTL(ctx, JobKey(id))
	}
	if _, err := p.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisq: read jobs: %w", err)
	}
	out := make([]JobInfo, len(ids))
	for i, id := range ids {
		out[i] = describeJob(id, hashes[i].Val(), ttls[i].Val())
	}
	return out, nil
}

func describeJob(id string, h map[string]string, ttl time.Duration) JobInfo {
	info := JobInfo{ID: id, Exists: len(h) > 0, TTL: ttl}
	if !info.Exists {
		return info
	}
	for k, v := range h {
		switch k {
		case fieldReplyTo, fieldQueued, fieldResult, "text_", "json_":
		case fieldStarted:
			info.Started = parseEpoch(v)
		case fieldProcessed:
			info.Processed = parseEpoch(v)
		case fieldWorker:
			info.Worker = v
		case fieldDeliveries:
			info.Deliveries, _ = strconv.Atoi(v)
		case fieldError:
			info.Error = v
		default:
			if strings.HasPrefix(k, "_") {
				if info.Other == nil {
					info.Other = map[string]string{}
				}
				info.Other[k] = v
			}
		}
	}
	if r, ok := h[fieldResult]; ok {
		if res, err := decodeResult(r); err == nil {
			info.Result = string(res.Payload)
		} else {
			info.Result = r
		}
	}
	job, err := parseJob(id, h)
	if err != nil {
		info.DecodeError = err.Error()
		return info
	}
	info.ReplyTo, info.Queued = job.ReplyTo, job.Queued
	if len(job.Data) > 0 {
		info.Data = job.Data
	}
	return info
}

// RequeueDead moves jobs from the dead-letter list back to the pending list, next in line, with their
// delivery count reset. ids nil means every dead job. A dead job whose hash is gone (its caller gave up and
// it expired) is dropped from the list instead: nobody waits for it. It returns how many were requeued and
// how many were dropped.
func (in *Inspector) RequeueDead(ctx context.Context, ids []string) (requeued, dropped int, err error) {
	if ids == nil {
		if ids, err = in.rdb.LRange(ctx, in.keys.Dead(), 0, -1).Result(); err != nil {
			return 0, 0, fmt.Errorf("redisq: read %s: %w", in.keys.Dead(), err)
		}
	}
	for _, id := range ids {
		n, err := in.rdb.LRem(ctx, in.keys.Dead(), 1, id).Result()
		if err != nil {
			return requeued, dropped, fmt.Errorf("redisq: requeue %s: %w", id, err)
		}
		if n == 0 {
			continue // not on the list (any more)
		}
		ok, err := requeueScript.Run(ctx, in.rdb, []string{JobKey(id)}, fieldDeliveries, fieldWorker, fieldError).Int()
		if err != nil {
			return requeued, dropped, fmt.Errorf("redisq: requeue %s: %w", id, err)
		}
		if ok == 0 {
			dropped++
			continue
		}
		// RPUSH: workers take from the right, so the job is next in line (as the reaper requeues).
		if err := in.rdb.RPush(ctx, in.keys.Pending(), id).Err(); err != nil {
			return requeued, dropped, fmt.Errorf("redisq: requeue %s: %w", id, err)
		}
		requeued++
	}
	return requeued, dropped, nil
}

// requeueScript resets a job hash for another delivery, only if the hash still exists.
var requeueScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[1], ARGV[1], ARGV[2], ARGV[3], 'result', '_started', '_processed', '_orphan_seen')
return 1`)

// PurgeDead empties the dead-letter list and deletes the hashes of its jobs. It returns how many it removed.
func (in *Inspector) PurgeDead(ctx context.Context) (int, error) {
	ids, err := in.rdb.LRange(ctx, in.keys.Dead(), 0, -1).Result()
	if err != nil {
		return 0, fmt.Errorf("redisq: read %s: %w", in.keys.Dead(), err)
	}
	n := 0
	for _, id := range ids {
		removed, err := in.rdb.LRem(ctx, in.keys.Dead(), 1, id).Result()
		if err != nil {
			return n, fmt.Errorf("redisq: purge %s: %w", id, err)
		}
		if removed == 0 {
			continue
		}
		if err := in.rdb.Del(ctx, JobKey(id)).Err(); err != nil {
			return n, fmt.Errorf("redisq: purge %s: %w", id, err)
		}
		n++
	}
	return n, nil
}

// PurgedError is the failure written into a purged job: its caller learns at once that it will not run.
const PurgedError = "purged from the queue by an operator"

// PurgePending takes every job off the pending lists (the ID list and simple mode's list). Each purged job
// is failed the way a worker fails one (PurgedError), so its caller is answered at once instead of waiting for
// its timeout. It returns how many jobs it purged.
func (in *Inspector) PurgePending(ctx context.Context) (int, error) {
	n := 0
	for {
		id, err := in.rdb.RPop(ctx, in.keys.Pending()).Result()
		if errors.Is(err, redis.Nil) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("redisq: purge %s: %w", in.keys.Pending(), err)
		}
		if err := in.failJob(ctx, id); err != nil {
			return n, err
		}
		n++
	}
	for {
		raw, err := in.rdb.RPop(ctx, in.keys.Simple()).Result()
		if errors.Is(err, redis.Nil) {
			break
		}
		if err != nil {
			return n, fmt.Errorf("redisq: purge %s: %w", in.keys.Simple(), err)
		}
		n++
		var sj simpleJob
		if json.Unmarshal([]byte(raw), &sj) != nil || sj.ReplyTo == "" {
			continue // nobody to tell
		}
		msg, _ := json.Marshal(simpleResult{ID: sj.ID, Error: PurgedError})
		if err := in.rdb.Publish(ctx, ClientChannel(sj.ReplyTo), msg).Err(); err != nil {
			return n, fmt.Errorf("redisq: purge %s: %w", sj.ID, err)
		}
	}
	return n, nil
}

// failJob writes a failure into a job's hash, if it still exists, and notifies its caller.
func (in *Inspector) failJob(ctx context.Context, id string) error {
	replyTo, err := failScript.Run(ctx, in.rdb, []string{JobKey(id)}, fieldError, PurgedError, fieldResult,
		string(TagText)+failedResultPrefix+PurgedError, fieldProcessed, epoch(time.Now())).Text()
	if errors.Is(err, redis.Nil) || (err == nil && replyTo == "") {
		return nil // the hash is gone: nobody waits
	}
	if err != nil {
		return fmt.Errorf("redisq: fail %s: %w", id, err)
	}
	if err := in.rdb.Publish(ctx, ClientChannel(replyTo), id).Err(); err != nil {
		return fmt.Errorf("redisq: notify %s: %w", id, err)
	}
	return nil
}

// failScript writes a failure into an existing job hash and returns its _reply_to; it never creates a hash.
var failScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
return redis.call('HGET', KEYS[1], '_reply_to')`)
