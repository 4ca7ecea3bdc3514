package redisq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Client errors.
var (
	ErrClosed    = errors.New("redisq: client is shut down")
	ErrQueueFull = errors.New("redisq: submit queue is full")
	ErrSubmit    = errors.New("redisq: submit failed")
	ErrNoResult  = errors.New("redisq: job has no result")
	// ErrJobLost is the outcome of a pending job whose hash vanished from Redis (a Redis restart without
	// persistence, or an expired TTL): no worker will ever answer it.
	ErrJobLost = errors.New("redisq: job is gone from Redis")
)

// DefaultJobTTL is how long a job hash lives when ClientConfig.JobTTL is zero: a little over the gateway's
// default job timeout (300 s), so that nothing leaks when a client dies.
const DefaultJobTTL = 330 * time.Second

// Field is one data field of a submitted job. A text field is stored as `text_<Key>`, a JSON one as
// `json_<Key>`.
type Field struct {
	Key   string
	Value string
	JSON  bool
}

// Submission is a job to submit. The caller chooses the ID (NewID) so that it can register the job before the
// job can possibly complete.
type Submission struct {
	ID     string
	Fields []Field
}

// Completion is the outcome of a submitted job: a result, or an error (ErrSubmit, ErrJobFailed, ErrJobLost,
// ErrNoResult or a Redis error, each wrapped).
type Completion struct {
	JobID  string
	Result Result
	Err    error
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// Redis is the connection; required. A *redis.Client, *redis.ClusterClient or failover client all work.
	Redis redis.UniversalClient
	// Mode must match the workers'; "" means DefaultMode (reliable, the Perl protocol).
	Mode Mode
	// Keys names the queue; the zero value is the Perl default `jobs::pending`.
	Keys Keys
	// ClientID names the completion channel `client::<ClientID>`; "" means a new random ID.
	ClientID string
	// JobTTL is set on every job hash (and bounds a simple-mode job's life); 0 means DefaultJobTTL, a negative
	// value means no TTL (as the Perl code).
	JobTTL time.Duration
	// Sereal writes JSON fields as `sereal_<key>` (Sereal, the Perl default for structures) instead of
	// `json_<key>`; hash modes only.
	Sereal bool
	// Multi wraps the writes of each batch of submits in MULTI/EXEC (the Perl client's use_multi). Not on
	// Redis Cluster, where a job's keys live in different slots.
	Multi bool
	// CancelForgotten cancels a job that Forget is called for, so that no worker runs a job nobody waits for:
	// its ID leaves the pending list and its hash is marked `_cancelled` (Go workers skip it) and left to
	// expire (see cancelJob). Simple-mode jobs are not cancelled: they expire.
	CancelForgotten bool
	// BareNotifications keeps to the Perl protocol's completion exactly: every job's result is read from its hash
	// (HMGET, then DEL) after a notification that carries only the job ID. The zero value writes the field
	// `_reply_with_result` into each job hash, which asks Go workers to publish the result itself (PROTOCOL.md,
	// "Results in the notification"), saving a round trip per job; Perl workers ignore the field and publish
	// the bare ID, which the client handles as before.
	BareNotifications bool
	// MaxBatch bounds how many submits (and how many completions) share one pipeline; 0 means 256.
	MaxBatch int
	// QueueSize bounds the submits waiting for the pipeline; 0 means 65536. Submit fails with ErrQueueFull
	// beyond. (It bounds the client's other internal queues too.) Memory is taken as submits queue, not up
	// front, and given back once a burst has been sent.
	QueueSize int
	// OnComplete receives every completion once; required. It is called from the client's goroutines (the
	// completion reader, and the submitter for failed submits), possibly at the same time, and must not block.
	OnComplete func(Completion)
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Validate reports a configuration error.
func (c *ClientConfig) Validate() error {
	if c.Redis == nil {
		return errors.New("redisq: ClientConfig.Redis is required")
	}
	if c.OnComplete == nil {
		return errors.New("redisq: ClientConfig.OnComplete is required")
	}
	if _, err := ParseMode(string(c.Mode)); err != nil {
		return err
	}
	if c.MaxBatch < 0 || c.QueueSize < 0 {
		return errors.New("redisq: ClientConfig.MaxBatch and QueueSize must not be negative")
	}
	if _, cluster := c.Redis.(*redis.ClusterClient); cluster && c.Multi {
		return errors.New("redisq: Multi does not work on Redis Cluster (a job's keys are in different slots)")
	}
	return nil
}

// ClientStats are counters of a Client since it started.
type ClientStats struct {
	Submitted     uint64
	SubmitErrors  uint64
	Completed     uint64 // completions delivered
	Recovered     uint64 // of which found by recovery after a pub/sub reconnect
	Lost          uint64 // of which ErrJobLost
	Late          uint64 // notifications for jobs nobody waited for any more
	Resubscribed  uint64
	Pending       int // jobs waiting for a completion
	CancelledJobs uint64
}

// Client submits jobs and receives their completions.
type Client struct {
	cfg    ClientConfig
	id     string
	log    *slog.Logger
	pubsub *redis.PubSub
	// The submit loop's input (queue.go: each holds memory for what is queued, not for QueueSize): submits,
	// IDs of jobs to cancel, and job hashes to delete after a result that came in its notification (queueDel).
	submits *queue[Submission]
	forgets *queue[string]
	dels    *queue[string]
	// notices are bare job IDs from pub/sub, for the fetch loop. The receive loop waits while it is full: a
	// fetch loop that falls behind slows the reading of the subscription rather than growing memory.
	notices *queue[string]
	recover chan int64 // asks the fetch loop for a recovery pass (the time of the re-subscription)
	pending *pendingSet
	// serealWarned is when "cannot be written as Sereal" was last logged (unix nanoseconds): it can hit every
	// job of a caller, so one line a minute.
	serealWarned atomic.Int64

	mu         sync.RWMutex // guards closed against Submit, so that the channels are closed only once idle
	closed     bool
	once       sync.Once
	startMu    sync.Mutex // one Start at a time; a second one after success does nothing
	started    bool
	wg         sync.WaitGroup
	done       chan struct{} // closed by Shutdown: stops the receive loop's reconnect waits
	subscribed atomic.Bool

	stats struct {
		submitted, submitErrors, completed, recovered, lost, late, resubscribed, cancelled atomic.Uint64
	}
}

// NewClient checks cfg and returns a Client that is not started yet.
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Mode, _ = ParseMode(string(cfg.Mode))
	if cfg.ClientID == "" {
		cfg.ClientID = NewID()
	}
	if cfg.JobTTL == 0 {
		cfg.JobTTL = DefaultJobTTL
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 256
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = 1 << 16
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	// Each pipeline takes up to MaxBatch items, so steady traffic keeps a queue under a few batches; what a
	// burst beyond that grows is given back as it drains.
	keep := 4 * cfg.MaxBatch
	return &Client{
		cfg:     cfg,
		id:      cfg.ClientID,
		log:     cfg.Logger.With("component", "redisq.client", "client_id", cfg.ClientID),
		submits: newQueue[Submission](cfg.QueueSize, keep),
		forgets: newQueue[string](cfg.QueueSize, keep),
		dels:    newQueue[string](cfg.QueueSize, keep),
		notices: newQueue[string](cfg.QueueSize, keep),
		recover: make(chan int64, 1),
		pending: newPendingSet(),
		done:    make(chan struct{}),
	}, nil
}

// Subscribed reports whether the completion channel's subscription is up (for readiness checks).
func (c *Client) Subscribed() bool { return c.subscribed.Load() }

// ID is the client's ID (its completion channel is `client::<ID>`).
func (c *Client) ID() string { return c.id }

// Stats returns the client's counters.
func (c *Client) Stats() ClientStats {
	return ClientStats{
		Submitted: c.stats.submitted.Load(), SubmitErrors: c.stats.submitErrors.Load(),
		Completed: c.stats.completed.Load(), Recovered: c.stats.recovered.Load(), Lost: c.stats.lost.Load(),
		Late: c.stats.late.Load(), Resubscribed: c.stats.resubscribed.Load(), Pending: c.pending.len(),
		CancelledJobs: c.stats.cancelled.Load(),
	}
}

// Start subscribes to the completion channel and waits until Redis confirms the subscription, so that no
// completion can be published before the client listens (the Perl client does not wait, and can lose one).
// Safe to call twice (the second call does nothing); after Shutdown it fails with ErrClosed.
func (c *Client) Start(ctx context.Context) error {
	c.startMu.Lock()
	defer c.startMu.Unlock()
	c.mu.RLock()
	closed := c.closed
	c.mu.RUnlock()
	switch {
	case closed:
		return ErrClosed
	case c.started:
		return nil
	}
	if c.cfg.Mode == ModeSimple {
		if _, err := c.markAlive(ctx); err != nil {
			return fmt.Errorf("redisq: client marker: %w", err)
		}
	}
	ps := c.cfg.Redis.Subscribe(ctx, ClientChannel(c.id))
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return fmt.Errorf("redisq: subscribe %s: %w", ClientChannel(c.id), err)
	}
	c.pubsub = ps
	c.subscribed.Store(true)
	c.started = true
	c.wg.Add(3)
	go c.submitLoop()
	go c.receiveLoop(ps)
	go c.fetchLoop()
	return nil
}

// Submit queues a job for the next pipeline and returns at once. Its outcome arrives at OnComplete, also when
// the submit itself fails; Submit returns an error (and OnComplete is not called) only when the job was not
// queued at all.
func (c *Client) Submit(s Submission) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	c.pending.add(s.ID)
	if !c.submits.push(s) {
		c.pending.remove(s.ID)
		return ErrQueueFull
	}
	return nil
}

// Forget stops waiting for a job (its caller gave up): its completion will not be delivered, and with
// CancelForgotten the job is cancelled so that no worker runs it. It never blocks.
func (c *Client) Forget(jobID string) {
	if !c.pending.remove(jobID) || !c.cfg.CancelForgotten || !c.cfg.Mode.usesHash() {
		return
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return
	}
	_ = c.forgets.push(jobID) // when full, the job may still run; its hash expires by its TTL anyway
}

// Shutdown stops taking submits, sends those already queued, stops listening for completions and waits for
// its goroutines, or for ctx. Call it once the caller expects no more completions. Safe to call twice.
func (c *Client) Shutdown(ctx context.Context) error {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.submits.close()
		close(c.done)
	})
	finished := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		if c.pubsub != nil {
			c.pubsub.Close()
		}
		return ctx.Err()
	}
}

func (c *Client) deliver(x Completion, recovered bool) {
	if !c.pending.remove(x.JobID) {
		c.stats.late.Add(1)
		return
	}
	c.stats.completed.Add(1)
	if recovered {
		c.stats.recovered.Add(1)
	}
	if errors.Is(x.Err, ErrJobLost) {
		c.stats.lost.Add(1)
	}
	c.cfg.OnComplete(x)
}

// delLinger is how long the DEL of a hash whose result came in its notification waits for a submit to share
// its pipeline with. The DEL is off every caller's path (the result is delivered already), so waiting costs
// nothing but a little memory in Redis, and sharing saves Redis a round trip: with one request in flight per
// connection the next submit usually follows within a millisecond.
const delLinger = 2 * time.Millisecond

// submitLoop batches submits (and cancels, and DELs of answered jobs) into pipelines. When it ends, every
// queued submit and DEL has been sent, and it closes the pub/sub so that the receive loop ends too.
func (c *Client) submitLoop() {
	defer c.wg.Done()
	defer func() {
		if c.pubsub != nil {
			c.pubsub.Close()
		}
	}()
	batch := make([]Submission, 0, c.cfg.MaxBatch)
	var cancels, dels []string
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	closing := false
	for !closing {
		batch, cancels, dels = batch[:0], cancels[:0], dels[:0]
		select { // a queue's wake holds a token only while it has items, or once it is closed
		case <-c.submits.wake:
		case <-c.forgets.wake:
		case <-c.dels.wake:
		}
		batch, cancels, dels, closing = c.fill(batch, cancels, dels)
		if !closing && len(batch)+len(cancels) == 0 && len(dels) > 0 {
			linger.Reset(delLinger)
		wait: // DELs alone: give a submit a moment to come and carry them
			for len(dels) < c.cfg.MaxBatch {
				select {
				case <-c.submits.wake:
					break wait
				case <-c.forgets.wake:
					break wait
				case <-c.dels.wake:
					dels, _ = c.dels.take(dels, c.cfg.MaxBatch-len(dels))
				case <-linger.C:
					break wait
				}
			}
			linger.Stop()
			batch, cancels, dels, closing = c.fill(batch, cancels, dels)
		}
		if closing { // the last pipeline: every DEL queued so far (Shutdown set closed before closing submits)
			dels, _ = c.dels.take(dels, math.MaxInt)
		}
		if len(batch)+len(cancels)+len(dels) > 0 {
			c.sendBatch(batch, cancels, dels)
		}
	}
}

// fill tops a pipeline up to MaxBatch items with what is queued, and reports closing once the submits are all
// taken after Shutdown. Queues that have items share the room evenly, as a select over three channels shared
// it one item at a time: a flood of submits cannot starve DELs (whose queue, full, would make the receive loop
// delete by itself) or cancels.
func (c *Client) fill(batch []Submission, cancels, dels []string) (_ []Submission, _, _ []string, closing bool) {
	room := func() int { return c.cfg.MaxBatch - len(batch) - len(cancels) - len(dels) }
	moreSubmits, moreCancels, moreDels := true, true, true // a queue that gave less than asked is empty
	for r := room(); r > 0; r = room() {
		active := 0
		for _, more := range [...]bool{moreSubmits, moreCancels, moreDels} {
			if more {
				active++
			}
		}
		if active == 0 {
			break
		}
		share := max(r/active, 1)
		if n, want := len(batch), min(share, room()); moreSubmits && want > 0 {
			open := true
			if batch, open = c.submits.take(batch, want); !open {
				return batch, cancels, dels, true
			}
			moreSubmits = len(batch)-n == want
		}
		if n, want := len(cancels), min(share, room()); moreCancels && want > 0 {
			cancels, _ = c.forgets.take(cancels, want)
			moreCancels = len(cancels)-n == want
		}
		if n, want := len(dels), min(share, room()); moreDels && want > 0 {
			dels, _ = c.dels.take(dels, want)
			moreDels = len(dels)-n == want
		}
	}
	return batch, cancels, dels, false
}

// queueDel has the hash of an answered job deleted by the submit loop's next pipeline. After Shutdown began, or
// when the queue is full, the caller deletes them itself.
func (c *Client) queueDel(ctx context.Context, ids []string) {
	var direct []string
	c.mu.RLock()
	for i, id := range ids {
		if c.closed {
			direct = ids[i:]
			break
		}
		if c.dels.push(id) {
			continue
		}
		direct = ids[i:]
		break
	}
	c.mu.RUnlock()
	if len(direct) > 0 {
		c.delJobs(ctx, direct)
	}
}

// delJobs deletes job hashes, one DEL each in one pipeline (the hashes are in different Cluster slots).
func (c *Client) delJobs(ctx context.Context, ids []string) {
	_, _ = c.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, id := range ids {
			p.Del(ctx, JobKey(id))
		}
		return nil
	})
}

// sendBatch writes a batch of jobs in one pipeline. Hash modes, per job: HSET job::<id> (the Perl HMSET),
// EXPIRE, LPUSH <pending> <id>; simple mode: LPUSH <simple list> <job JSON>, then its TTL. Cancelled jobs: see
// cancelJob. dels are the hashes of jobs answered in their notification, deleted here (the Perl client's DEL).
func (c *Client) sendBatch(batch []Submission, cancels, dels []string) {
	ctx := context.Background()
	if len(batch)+len(cancels) == 0 {
		c.delJobs(ctx, dels) // not in MULTI: the Perl client's DEL is not either
		return
	}
	now := time.Now()
	pushes := make([]*redis.IntCmd, len(batch))
	hashes := func(p redis.Pipeliner) {
		if c.cfg.Mode == ModeSimple {
			return
		}
		for _, s := range batch {
			key := JobKey(s.ID)
			args := make([]any, 0, 6+2*len(s.Fields))
			args = append(args, fieldReplyTo, c.id, fieldQueued, epoch(now))
			if !c.cfg.BareNotifications {
				args = append(args, fieldReplyWithResult, "1")
			}
			for _, f := range s.Fields {
				args = append(args, c.field(f)...)
			}
			p.HSet(ctx, key, args...)
			if c.cfg.JobTTL > 0 {
				p.Expire(ctx, key, c.cfg.JobTTL)
			}
		}
		for _, id := range dels {
			p.Del(ctx, JobKey(id))
		}
	}
	lists := func(p redis.Pipeliner) {
		for i, s := range batch {
			if c.cfg.Mode == ModeSimple {
				pushes[i] = p.LPush(ctx, c.cfg.Keys.Simple(), c.simpleJob(s, now))
			} else {
				pushes[i] = p.LPush(ctx, c.cfg.Keys.Pending(), s.ID)
			}
		}
		if c.cfg.Mode == ModeSimple && len(batch) > 0 && c.cfg.JobTTL > 0 {
			extendTTLScript.Eval(ctx, p, []string{c.cfg.Keys.Simple()}, c.cfg.JobTTL.Milliseconds())
		}
		for _, id := range cancels { // last: a job forgotten in the batch that submits it is cancelled too
			c.cancelJob(ctx, p, id, now)
		}
	}
	// A job's hash must exist before its ID is on the list, or a fast worker finds no job.
	if err := pipelineInOrder(ctx, c.cfg.Redis, c.cfg.Multi, hashes, lists); err != nil {
		for i := range pushes {
			if pushes[i] == nil { // the second phase never ran
				pushes[i] = redis.NewIntCmd(ctx)
				pushes[i].SetErr(err)
			}
		}
	}
	c.stats.cancelled.Add(uint64(len(cancels)))
	written := time.Now().UnixNano()
	for i, s := range batch {
		if err := pushes[i].Err(); err != nil {
			c.stats.submitErrors.Add(1)
			c.deliver(Completion{JobID: s.ID, Err: fmt.Errorf("%w: %w", ErrSubmit, err)}, false)
			continue
		}
		c.stats.submitted.Add(1)
		c.pending.markWritten(s.ID, written)
	}
}

// field returns the hash field and value of one data field.
func (c *Client) field(f Field) []any {
	switch {
	case !f.JSON:
		return []any{"text_" + f.Key, f.Value}
	case c.cfg.Sereal:
		if b, err := encodeSereal(f.Value); err == nil {
			return []any{"sereal_" + f.Key, b}
		}
		if now, last := time.Now().UnixNano(), c.serealWarned.Load(); now-last >= int64(time.Minute) &&
			c.serealWarned.CompareAndSwap(last, now) {
			c.log.Warn("field cannot be written as Sereal; writing JSON (logged once a minute)", "key", f.Key)
		}
	}
	return []any{"json_" + f.Key, f.Value}
}

func (c *Client) simpleJob(s Submission, now time.Time) string {
	j := simpleJob{ID: s.ID, ReplyTo: c.id, Queued: float64(now.UnixMicro()) / 1e6}
	if c.cfg.JobTTL > 0 {
		j.Expires = float64(now.Add(c.cfg.JobTTL).UnixMicro()) / 1e6
	}
	for _, f := range s.Fields {
		if f.JSON {
			if j.JSON == nil {
				j.JSON = map[string]any{}
			}
			j.JSON[f.Key] = json.RawMessage(f.Value)
		} else {
			if j.Text == nil {
				j.Text = map[string]string{}
			}
			j.Text[f.Key] = f.Value
		}
	}
	b, _ := json.Marshal(j) // strings and valid raw JSON only
	return string(b)
}

// receiveLoop reads the pub/sub connection. go-redis reconnects and re-subscribes by itself after a drop; each
// re-subscription triggers a recovery pass over the pending jobs, whose notifications may have been missed.
func (c *Client) receiveLoop(ps *redis.PubSub) {
	defer c.wg.Done()
	defer c.notices.close()
	ctx := context.Background()
	backoff := 10 * time.Millisecond
	for {
		msg, err := ps.ReceiveTimeout(ctx, 30*time.Second)
		if err != nil {
			select {
			case <-c.done:
				return
			default:
			}
			if errors.Is(err, redis.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				_ = ps.Ping(ctx) // a quiet channel: make sure the connection is alive
				continue
			}
			c.subscribed.Store(false)
			c.log.Warn("pub/sub connection lost; reconnecting", "err", err)
			select {
			case <-c.done:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		switch m := msg.(type) {
		case *redis.Message:
			if p := m.Payload; c.cfg.Mode == ModeSimple || len(p) > 0 && p[0] == '{' {
				c.deliverNotified(p) // the result is in the message: no goroutine hand-off, no read
				continue
			}
			c.notices.pushWait(m.Payload)
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				c.subscribed.Store(true)
			}
			if m.Kind == "subscribe" {
				c.stats.resubscribed.Add(1)
				c.log.Info("pub/sub re-subscribed; recovering missed completions", "pending", c.pending.len())
				select {
				case c.recover <- time.Now().UnixNano():
				default: // a pass is already due
				}
			}
		}
	}
}

// fetchLoop turns notifications into completions, batching the reads of results into pipelines.
func (c *Client) fetchLoop() {
	defer c.wg.Done()
	batch := make([]string, 0, c.cfg.MaxBatch)
	// The sweep finds pending jobs written more than JobTTL ago, whose hash has expired with no notification
	// (in recoverable mode a worker that died with the job, or a caller that never called Forget): they are
	// reported lost, so no pending entry stays forever.
	// In simple mode the sweep also refreshes the client's alive marker (simple.go).
	var sweep <-chan time.Time
	if c.cfg.Mode == ModeSimple || c.cfg.JobTTL > 0 {
		every := 30 * time.Second
		if c.cfg.JobTTL > 0 {
			every = min(c.cfg.JobTTL/2, every)
		}
		t := time.NewTicker(every)
		defer t.Stop()
		sweep = t.C
	}
	for {
		select {
		case at := <-c.recover:
			if c.cfg.Mode == ModeSimple {
				c.recoverSimple(at)
			} else {
				c.recoverPending(at)
			}
			continue
		case now := <-sweep:
			cutoff := now.Add(-c.cfg.JobTTL).UnixNano()
			if c.cfg.Mode == ModeSimple {
				if c.cfg.JobTTL <= 0 {
					cutoff = 0 // no expiry: nothing counts as lost
				}
				c.sweepSimple(cutoff)
			} else {
				c.recoverPending(cutoff)
			}
			continue
		case <-c.notices.wake:
		}
		var open bool
		batch, open = c.notices.take(batch[:0], c.cfg.MaxBatch)
		if len(batch) > 0 {
			// Only bare job IDs (the Perl protocol) come here: their results are read from the hashes. A result
			// in its notification was delivered by the receive loop (deliverNotified).
			c.fetchResults(batch, false)
		}
		if !open {
			return
		}
	}
}

// deliverNotified delivers a completion whose notification carries it: simple mode's result message, or a Go
// worker's answer to a job that asked for it (a JSON object, which no job ID can be: see lists.go), whose hash
// is then deleted in the background. It runs on the receive loop, which thus hands completions straight to
// OnComplete (one goroutine hand-off fewer than a bare ID, which the fetch loop reads from Redis).
func (c *Client) deliverNotified(payload string) {
	x := simpleCompletion(payload)
	if x.JobID == "" {
		c.log.Warn("bad notification", "err", x.Err)
		return
	}
	c.deliver(x, false)
	if c.cfg.Mode.usesHash() {
		c.queueDel(context.Background(), []string{x.JobID})
	}
}

func simpleCompletion(payload string) Completion {
	var r simpleResult
	if err := json.Unmarshal([]byte(payload), &r); err != nil || r.ID == "" {
		return Completion{Err: fmt.Errorf("redisq: bad simple-mode notification %.64q", payload)}
	}
	if r.Error != "" {
		return Completion{JobID: r.ID, Err: fmt.Errorf("%w: %s", ErrJobFailed, r.Error)}
	}
	res, err := decodeResult(r.Result)
	return Completion{JobID: r.ID, Result: res, Err: err}
}

// fetchResults reads and deletes the results of jobs in one pipeline (HMGET result, DEL: the Perl client's
// sequence) and delivers them. With probe set (recovery), jobs that have no result yet are left alone, and jobs
// whose hash is gone are reported lost.
func (c *Client) fetchResults(ids []string, probe bool) {
	ctx := context.Background()
	gets := make([]*redis.SliceCmd, len(ids))
	_, _ = c.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			gets[i] = p.HMGet(ctx, JobKey(id), fieldResult, fieldError, fieldReplyTo)
			if !probe {
				p.Del(ctx, JobKey(id))
			}
		}
		return nil
	})
	var done []string
	for i, id := range ids {
		vals, err := gets[i].Result()
		if probe {
			if err != nil {
				continue // try again at the next recovery
			}
			_, hasResult := vals[0].(string)
			_, exists := vals[2].(string)
			if !hasResult && exists {
				continue // still queued or running
			}
			if hasResult {
				done = append(done, id)
			}
		}
		c.deliver(completionFrom(id, vals, err), probe)
	}
	if len(done) > 0 {
		c.delJobs(ctx, done)
	}
}

func jobKeys(ids []string) []string {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = JobKey(id)
	}
	return keys
}

func completionFrom(id string, vals []any, err error) Completion {
	if err != nil {
		return Completion{JobID: id, Err: fmt.Errorf("redisq: read result of job %s: %w", id, err)}
	}
	if msg, ok := vals[1].(string); ok {
		return Completion{JobID: id, Err: fmt.Errorf("%w: %s", ErrJobFailed, msg)}
	}
	raw, ok := vals[0].(string)
	if !ok {
		if _, exists := vals[2].(string); !exists {
			return Completion{JobID: id, Err: ErrJobLost}
		}
		return Completion{JobID: id, Err: ErrNoResult}
	}
	res, err := decodeResult(raw)
	if err != nil {
		return Completion{JobID: id, Err: err}
	}
	return Completion{JobID: id, Result: res}
}

// recoverPending probes the hashes of the pending jobs written before the re-subscription at time at:
// completions published while the client was not listening are delivered from the stored results, and jobs
// lost with Redis fail at once. (A job written after it cannot have missed its notification.)
func (c *Client) recoverPending(at int64) {
	ids := c.pending.written(at)
	for len(ids) > 0 {
		n := min(len(ids), c.cfg.MaxBatch)
		c.fetchResults(ids[:n], true)
		ids = ids[n:]
	}
}
