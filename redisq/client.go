package redisq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Client errors.
var (
	ErrClosed    = errors.New("redisq: client is shut down")
	ErrQueueFull = errors.New("redisq: submit queue is full")
	ErrSubmit    = errors.New("redisq: submit failed")
	ErrNoResult  = errors.New("redisq: job has no result")
)

// DefaultJobTTL is how long a job hash lives when ClientConfig.JobTTL is zero: a little over the gateway's
// default job timeout (300 s), so that nothing leaks when a client dies.
const DefaultJobTTL = 330 * time.Second

// Field is one data field of a submitted job. A text field is stored as `text_<Key>`, a JSON one as `json_<Key>`.
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

// Completion is the outcome of a submitted job: a result, or an error (ErrSubmit, ErrJobFailed, ErrNoResult or
// a Redis error, each wrapped).
type Completion struct {
	JobID  string
	Result Result
	Err    error
}

// ClientConfig configures a Client.
type ClientConfig struct {
	// Redis is the connection; required. A *redis.Client, *redis.ClusterClient or failover client all work.
	Redis redis.UniversalClient
	// Keys names the queue; the zero value is the Perl default `jobs::pending`.
	Keys Keys
	// ClientID names the completion channel `client::<ClientID>`; "" means a new random ID.
	ClientID string
	// JobTTL is set on every job hash; 0 means DefaultJobTTL, a negative value means no TTL (as the Perl code).
	JobTTL time.Duration
	// MaxBatch bounds how many submits (and how many completions) share one pipeline; 0 means 256.
	MaxBatch int
	// QueueSize bounds the submits waiting for the pipeline; 0 means 65536. Submit fails with ErrQueueFull beyond.
	QueueSize int
	// OnComplete receives every completion, from one goroutine, in arrival order; required. It must not block.
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
	if c.MaxBatch < 0 || c.QueueSize < 0 {
		return errors.New("redisq: ClientConfig.MaxBatch and QueueSize must not be negative")
	}
	return nil
}

// Client submits jobs and receives their completions.
type Client struct {
	cfg     ClientConfig
	id      string
	log     *slog.Logger
	pubsub  *redis.PubSub
	submits chan Submission

	mu        sync.RWMutex // guards closed against Submit, so that the submit channel is closed only once idle
	closed    bool
	once      sync.Once
	wg        sync.WaitGroup
	submitted chan struct{} // closed when the submit loop has sent everything and ended
}

// NewClient checks cfg and returns a Client that is not started yet.
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
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
	return &Client{
		cfg:       cfg,
		id:        cfg.ClientID,
		log:       cfg.Logger.With("component", "redisq.client", "client_id", cfg.ClientID),
		submits:   make(chan Submission, cfg.QueueSize),
		submitted: make(chan struct{}),
	}, nil
}

// ID is the client's ID (its completion channel is `client::<ID>`).
func (c *Client) ID() string { return c.id }

// Start subscribes to the completion channel and waits until Redis confirms the subscription, so that no
// completion can be published before the client listens (the Perl client does not wait, and can lose one).
func (c *Client) Start(ctx context.Context) error {
	ps := c.cfg.Redis.Subscribe(ctx, ClientChannel(c.id))
	if _, err := ps.Receive(ctx); err != nil {
		ps.Close()
		return fmt.Errorf("redisq: subscribe %s: %w", ClientChannel(c.id), err)
	}
	c.pubsub = ps
	c.wg.Add(2)
	go c.submitLoop()
	go c.completionLoop(ps.Channel(redis.WithChannelSize(c.cfg.QueueSize)))
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
	select {
	case c.submits <- s:
		return nil
	default:
		return ErrQueueFull
	}
}

// Shutdown stops taking submits, sends those already queued, stops listening for completions and waits for
// its goroutines, or for ctx. Call it once the caller expects no more completions. Safe to call twice.
func (c *Client) Shutdown(ctx context.Context) error {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		close(c.submits)
		if c.pubsub == nil { // never started
			close(c.submitted)
			return
		}
		// The completion loop ends when the pub/sub closes: do that once every queued submit was sent.
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			<-c.submitted
			c.pubsub.Close()
		}()
	})
	done := make(chan struct{})
	go func() {
		c.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		if c.pubsub != nil {
			c.pubsub.Close()
		}
		return ctx.Err()
	}
}

func (c *Client) submitLoop() {
	defer c.wg.Done()
	defer close(c.submitted)
	batch := make([]Submission, 0, c.cfg.MaxBatch)
	for s := range c.submits {
		batch = append(batch[:0], s)
	fill:
		for len(batch) < c.cfg.MaxBatch {
			select {
			case s, ok := <-c.submits:
				if !ok {
					break fill
				}
				batch = append(batch, s)
			default:
				break fill
			}
		}
		c.sendBatch(batch)
	}
}

// sendBatch writes a batch of jobs in one pipeline: per job HSET job::<id> (the Perl HMSET), EXPIRE, LPUSH.
func (c *Client) sendBatch(batch []Submission) {
	ctx := context.Background()
	now := epoch(time.Now())
	pushes := make([]*redis.IntCmd, len(batch))
	_, _ = c.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, s := range batch {
			key := JobKey(s.ID)
			args := make([]any, 0, 4+2*len(s.Fields))
			args = append(args, fieldReplyTo, c.id, fieldQueued, now)
			for _, f := range s.Fields {
				if f.JSON {
					args = append(args, "json_"+f.Key, f.Value)
				} else {
					args = append(args, "text_"+f.Key, f.Value)
				}
			}
			p.HSet(ctx, key, args...)
			if c.cfg.JobTTL > 0 {
				p.Expire(ctx, key, c.cfg.JobTTL)
			}
			pushes[i] = p.LPush(ctx, c.cfg.Keys.Pending(), s.ID)
		}
		return nil
	})
	for i, s := range batch {
		if err := pushes[i].Err(); err != nil {
			c.cfg.OnComplete(Completion{JobID: s.ID, Err: fmt.Errorf("%w: %w", ErrSubmit, err)})
		}
	}
}

func (c *Client) completionLoop(msgs <-chan *redis.Message) {
	defer c.wg.Done()
	ids := make([]string, 0, c.cfg.MaxBatch)
	for m := range msgs {
		ids = append(ids[:0], m.Payload)
	fill:
		for len(ids) < c.cfg.MaxBatch {
			select {
			case m, ok := <-msgs:
				if !ok {
					break fill
				}
				ids = append(ids, m.Payload)
			default:
				break fill
			}
		}
		c.fetchResults(ids)
	}
}

// fetchResults reads and deletes the results of completed jobs in one pipeline (HMGET result, DEL: the Perl
// client's sequence) and delivers them.
func (c *Client) fetchResults(ids []string) {
	ctx := context.Background()
	gets := make([]*redis.SliceCmd, len(ids))
	_, _ = c.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, id := range ids {
			gets[i] = p.HMGet(ctx, JobKey(id), fieldResult, fieldError)
			p.Del(ctx, JobKey(id))
		}
		return nil
	})
	for i, id := range ids {
		c.cfg.OnComplete(completionFrom(id, gets[i]))
	}
}

func completionFrom(id string, cmd *redis.SliceCmd) Completion {
	vals, err := cmd.Result()
	if err != nil {
		return Completion{JobID: id, Err: fmt.Errorf("redisq: read result of job %s: %w", id, err)}
	}
	if msg, ok := vals[1].(string); ok {
		return Completion{JobID: id, Err: fmt.Errorf("%w: %s", ErrJobFailed, msg)}
	}
	raw, ok := vals[0].(string)
	if !ok {
		return Completion{JobID: id, Err: ErrNoResult}
	}
	res, err := decodeResult(raw)
	if err != nil {
		return Completion{JobID: id, Err: err}
	}
	return Completion{JobID: id, Result: res}
}

// DecodeJSON decodes a result payload of either tag as JSON into v.
func (r Result) DecodeJSON(v any) error {
	if err := json.Unmarshal(r.Payload, v); err != nil {
		return fmt.Errorf("redisq: decode result: %w", err)
	}
	return nil
}
