package server

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/actors"
	"github.com/wsgate/wsgate/redisq"
	"github.com/wsgate/wsgate/transport"
)

// Defaults of the public face (the flags of cmd/wsgate).
const (
	DefaultListen   = "127.0.0.1:8080"
	DefaultAdmin    = "127.0.0.1:8081"
	DefaultRedisURL = "redis://127.0.0.1:6379"
	DefaultMode     = "reliable"
	// DefaultQueueTimeout is the job timeout when the config sets none, as in the Perl JobAsync backend.
	DefaultQueueTimeout = actors.DefaultTimeout
	// DefaultPassivateAfter is Config.PassivateAfter's default.
	DefaultPassivateAfter = 5 * time.Second
	// DefaultDrainTimeout bounds a drain when Config.DrainTimeout is 0.
	DefaultDrainTimeout = 10 * time.Second
	// DefaultQueueName names the queue of actions that name none.
	DefaultQueueName = "default"
)

// Action is one RPC method that clients may call, as configured (in Go, or under `actions:` in the file,
// where a bare name is an action without options). New turns each into the actors.Action that sessions run.
type Action struct {
	// Name is the request key that selects the action and the job name sent to the worker.
	Name string `yaml:"name"`
	// MsgType is the msg_type of its replies; "" means Name.
	MsgType string `yaml:"msg_type"`
	// Queue names the queue (Config.Queues) its jobs go to; "" means DefaultQueueName.
	Queue string `yaml:"queue"`
	// Timeout is how long to wait for a result; 0 means Config.QueueTimeout.
	Timeout time.Duration `yaml:"timeout"`
	// StashParams names stash values copied into every job's params.
	StashParams []string `yaml:"stash_params"`
	// RateLimit bounds how often one connection may call it; nil means no limit of its own.
	RateLimit *actors.Rate `yaml:"rate_limit"`
	// RequireResult answers WrongResponse to a worker envelope without `result` ({"success":0,"error":...});
	// nil means Config.RequireResult.
	RequireResult *bool `yaml:"require_result"`
	// ResultStash says whether a `stash` member of this action's results is merged into the connection's
	// stash; nil means Config.ResultStash. Set it false on actions whose workers reflect client input (as the
	// demo echo does): whatever such a result carries in `stash`, the client chose.
	ResultStash *bool `yaml:"result_stash"`
	// InsteadOfForward serves the action in the gateway (embedding only; see actors.Action).
	InsteadOfForward func(r *actors.Request) actors.Verdict `yaml:"-"`
}

// Queue is where a group of actions' jobs go.
type Queue struct {
	// Prefix of the queue's lists; "" means "jobs". A {tag} keeps them in one Redis Cluster slot.
	Prefix string `yaml:"prefix"`
	// NoPrefix names the lists bare (`pending`), as the Perl code does for an empty prefix.
	NoPrefix bool `yaml:"no_prefix"`
	// Name is the pending list's name after the prefix; "" means "pending".
	Name string `yaml:"name"`
}

func (q Queue) keys() redisq.Keys {
	return redisq.Keys{Prefix: q.Prefix, NoPrefix: q.NoPrefix, Queue: q.Name}
}

// QueueWatch configures the gateway's sampling of its queues (depth, oldest job, live workers), which feeds
// /metrics and /readyz.
type QueueWatch struct {
	// Interval between samples; 0 means 5 s.
	Interval time.Duration `yaml:"interval"`
	// NoWorkerAfter: jobs that have waited this long on a queue with no live Go worker (heartbeat) make the
	// gateway log a warning and say so on /readyz; 0 means 30 s, negative turns the check off.
	NoWorkerAfter time.Duration `yaml:"no_worker_after"`
	// RequireWorker makes /readyz fail (not only warn) while a queue is unserved so. Off by default: Perl
	// workers send no heartbeats.
	RequireWorker bool `yaml:"require_worker"`
}

// Config configures a Gateway. Each field's zero value means the default named in its comment.
type Config struct {
	// Listen is the WebSocket listener's address; "" means DefaultListen.
	Listen string
	// Admin is the admin HTTP listener's address (/healthz, /readyz, /metrics, and /debug/pprof/ with Pprof);
	// "" means DefaultAdmin, "off" disables it.
	Admin string
	// Pprof serves /debug/pprof/ on the admin listener; false (the default) answers 404 there.
	Pprof bool
	// AdminToken, if set, is the bearer token every admin endpoint but /healthz and /readyz requires
	// (`Authorization: Bearer <token>`, compared in constant time): /metrics and /debug/pprof/ answer 401
	// without it, and /readyz gives its reason for "not ready" only with it. "" means no token.
	AdminToken string
	// RedisURL, if set, is RedisConfig.URL (it wins over that; kept for compatibility); "" means
	// RedisConfig.URL.
	RedisURL string
	// RedisConfig says how to reach Redis (single node, Sentinel or Cluster; TLS; ACL user) when Redis is nil;
	// its zero value means DefaultRedisURL.
	RedisConfig RedisConfig
	// Redis, if set, is the connection to use (a single node, Sentinel or Cluster client); the gateway does not
	// close it.
	Redis redis.UniversalClient
	// Mode is the queue mode (simple, recoverable or reliable; see redisq.Mode); "" means DefaultMode. The
	// workers should use the same mode (Go workers of another mode still serve the jobs; Perl workers never see
	// simple-mode jobs).
	Mode string
	// Queues names the queues actions can be routed to (priority handling); the queue named DefaultQueueName
	// (created with the Perl defaults if absent) takes every action that names none.
	Queues map[string]Queue
	// Prefix is the default queue's prefix when Queues does not define it; "" means "jobs".
	Prefix string
	// QueueTimeout is the default time to wait for a job's result; 0 means DefaultQueueTimeout. (The command
	// line reads the QUEUE_TIMEOUT environment variable into it; the library reads no environment.)
	QueueTimeout time.Duration
	// Actions lists the RPC methods in priority order; required (New fails without any). The command line
	// passes DemoActions() when no configuration names actions.
	Actions []Action
	// RequireResult makes a worker envelope without `result` a WrongResponse for every action that does not
	// say otherwise; false (the default) answers it as the Perl JobAsync backend does, a success with a null
	// value.
	RequireResult bool
	// ResultStash is the default of Action.ResultStash; nil means true: results may set the stash, as in
	// Mojo::WebSocketProxy, so that existing authorisation workers keep working. Workers set the stash, clients
	// never: see the package documentation.
	ResultStash *bool
	// MaxInFlight bounds one connection's requests waiting for results; 0 means 100.
	MaxInFlight int
	// RateLimit is a per-connection token bucket for all requests; nil means none.
	RateLimit *actors.Rate
	// MaxResponseSize bounds every encoded reply; 0 means actors.DefaultMaxResponseSize (328,000 bytes), else
	// at least actors.MinMaxResponseSize (256). Error replies shed echo_req, passthrough, req_id to fit.
	MaxResponseSize int
	// DisableSanityCheck turns SanityCheckFailed off; Sanity replaces the default rule.
	DisableSanityCheck bool
	Sanity             *actors.SanityCheck
	// CloseOnInvalidUTF8 closes a connection that sends a text frame that is not UTF-8 (1007, RFC 6455)
	// instead of answering BadRequest.
	CloseOnInvalidUTF8 bool
	// Transport tunes the WebSocket side (path, limits, timeouts, compression); its zero value is sensible.
	// Its TLS field, if nil, is set from the TLS setting below (an embedder may set its own instead).
	Transport transport.Config
	// TLS serves wss:// with a certificate from files, reloaded by ReloadTLS; its zero value means ws://.
	TLS ListenerTLS
	// SessionWorkers, if positive, runs the session actors on that many long-lived goroutines
	// (actors.PoolDispatcher) instead of protoactor's default, a new goroutine per mailbox run. Measured
	// (bench/RESULTS.md): ~15 % less gateway CPU per request and more closed-loop throughput, but about twice
	// the p99 near the saturation knee; so it is off (0) by default.
	SessionWorkers int
	// PassivateAfter: the session of a connection that sent nothing for between PassivateAfter and 1.5 times
	// it, and has nothing in flight, stops its actor and keeps its state (stash, rate limits) in the
	// connection; the next message starts it again (see actors.Host). An idle connection then costs ~600 bytes
	// less. 0 means DefaultPassivateAfter; negative keeps every session's actor for the connection's life.
	PassivateAfter time.Duration
	// QueueWatch samples the queues for metrics and notices queues that no worker serves.
	QueueWatch QueueWatch
	// DrainTimeout bounds how long Shutdown waits for the requests taken before it (new ones are answered
	// ServiceUnavailable meanwhile); those still pending then are answered RequestTimeout. 0 means 10 s.
	DrainTimeout time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger

	clusterPrefixed []string // queues that WithDefaults gave ClusterPrefix, for a log line
}

// DemoActions are the actions of the demo worker (ping, echo, sleep, fail, whoami). echo's results may not set
// the stash: it returns what the client sent.
func DemoActions() []Action {
	no := false
	return []Action{
		{Name: "ping"}, {Name: "echo", ResultStash: &no}, {Name: "sleep"}, {Name: "fail"},
		{Name: "whoami", StashParams: []string{"user"}},
	}
}

// WithDefaults returns a copy of c with every zero value replaced by its default, checked.
func (c Config) WithDefaults() (Config, error) {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Admin == "" {
		c.Admin = DefaultAdmin
	}
	if c.RedisURL != "" { // the older field wins, so that --redis beats the file's redis.url
		c.RedisConfig.URL = c.RedisURL
	}
	if c.RedisConfig.URL == "" && c.RedisConfig.Kind() == "single" {
		c.RedisConfig.URL = DefaultRedisURL
	}
	c.RedisURL = c.RedisConfig.URL
	if c.Mode == "" {
		c.Mode = DefaultMode
	}
	if c.QueueTimeout == 0 {
		c.QueueTimeout = DefaultQueueTimeout
	}
	queues := make(map[string]Queue, len(c.Queues)+1)
	for k, v := range c.Queues {
		queues[k] = v
	}
	if _, ok := queues[DefaultQueueName]; !ok {
		queues[DefaultQueueName] = Queue{Prefix: c.Prefix}
	}
	c.Queues = queues
	var err error
	if c.clusterPrefixed, err = c.clusterPrefixes(); err != nil {
		return c, err
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.PassivateAfter == 0 {
		c.PassivateAfter = DefaultPassivateAfter
	}
	if c.QueueWatch.Interval == 0 {
		c.QueueWatch.Interval = 5 * time.Second
	}
	if c.QueueWatch.NoWorkerAfter == 0 {
		c.QueueWatch.NoWorkerAfter = 30 * time.Second
	}

	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, c.Validate()
}

// ErrNoActions is New's error for a Config that lists no actions. (Validate accepts it: the worker and queue
// commands share the configuration and need none.)
var ErrNoActions = errors.New("actions: none configured (list the RPC methods clients may call; DemoActions() are the demo worker's)")

// Validate reports a configuration error, naming the setting.
func (c Config) Validate() error {
	if _, err := redisq.ParseMode(c.Mode); err != nil {
		return fmt.Errorf("mode: %w", err)
	}
	if c.Redis == nil {
		if err := c.RedisConfig.Validate(); err != nil {
			return err
		}
	}
	if c.QueueTimeout < 0 {
		return errors.New("queue_timeout: must not be negative")
	}
	if c.DrainTimeout < 0 {
		return errors.New("drain_timeout: must not be negative")
	}
	if c.QueueWatch.Interval < 0 {
		return errors.New("queue_watch.interval: must not be negative")
	}
	if c.SessionWorkers < 0 {
		return errors.New("session_workers: must not be negative")
	}
	if c.MaxInFlight < 0 {
		return errors.New("limits.max_in_flight: must not be negative")
	}
	if c.MaxResponseSize < 0 || c.MaxResponseSize > 0 && c.MaxResponseSize < actors.MinMaxResponseSize {
		return fmt.Errorf("limits.max_response_size: must be 0 (the default) or at least %d", actors.MinMaxResponseSize)
	}
	if c.RateLimit != nil {
		if err := c.RateLimit.Validate(); err != nil {
			return fmt.Errorf("limits.rate_limit: %w", err)
		}
	}
	seen := map[string]bool{}
	for i, a := range c.Actions {
		if !actors.ValidActionName(a.Name) {
			return fmt.Errorf("actions[%d].name: %q is not a valid action name (letters, digits, _ and -, at most 50)", i, a.Name)
		}
		if seen[a.Name] {
			return fmt.Errorf("actions[%d].name: action %q is listed twice", i, a.Name)
		}
		seen[a.Name] = true
		if a.Queue != "" && c.Queues != nil {
			if _, ok := c.Queues[a.Queue]; !ok {
				return fmt.Errorf("actions[%d].queue: no queue named %q", i, a.Queue)
			}
		}
		if a.Timeout < 0 {
			return fmt.Errorf("actions[%d].timeout: must not be negative", i)
		}
		if a.RateLimit != nil {
			if err := a.RateLimit.Validate(); err != nil {
				return fmt.Errorf("actions[%d].rate_limit: %w", i, err)
			}
		}
	}
	if err := c.TLS.Validate(); err != nil {
		return err
	}
	if err := c.Transport.Validate(); err != nil {
		return fmt.Errorf("transport: %w", err)
	}
	return nil
}
