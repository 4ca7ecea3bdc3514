package server

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/actors"
	"github.com/wsgate/wsgate/redisq"
	"github.com/wsgate/wsgate/transport"
)

// Defaults of the public face (../shared/spec/cli.md).
const (
	DefaultListen   = "127.0.0.1:8080"
	DefaultAdmin    = "127.0.0.1:8081"
	DefaultRedisURL = "redis://127.0.0.1:6379"
	DefaultMode     = "reliable"
	// DefaultQueueTimeout is the job timeout when neither the config nor QUEUE_TIMEOUT sets one, as in the
	// Perl JobAsync backend.
	DefaultQueueTimeout = 300 * time.Second
)

// Config configures a Gateway. Each field's zero value means the default named in its comment.
type Config struct {
	// Listen is the WebSocket listener's address; "" means DefaultListen.
	Listen string
	// Admin is the admin HTTP listener's address (/healthz, /readyz, /debug/pprof/); "" means DefaultAdmin,
	// "off" disables it.
	Admin string
	// RedisURL is used when Redis is nil; "" means DefaultRedisURL.
	RedisURL string
	// Redis, if set, is the connection to use (a single node, Sentinel or Cluster client); the gateway does not
	// close it.
	Redis redis.UniversalClient
	// Mode is the queue mode (simple, recoverable or reliable; see redisq.Mode); "" means DefaultMode. The
	// workers must use the same mode.
	Mode string
	// Prefix is the queue prefix; "" means "jobs".
	Prefix string
	// QueueTimeout is the default time to wait for a job's result; 0 means the QUEUE_TIMEOUT environment
	// variable (seconds), or DefaultQueueTimeout if that is unset.
	QueueTimeout time.Duration
	// Actions lists the RPC methods in priority order; nil means DemoActions().
	Actions []actors.Action
	// MaxInFlight bounds one connection's requests waiting for results; 0 means 100.
	MaxInFlight int
	// Transport tunes the WebSocket side (path, limits, timeouts); its zero value is sensible.
	Transport transport.Config
	// DrainTimeout bounds how long Shutdown waits for in-flight requests; 0 means 10 s.
	DrainTimeout time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// DemoActions are the actions of the demo worker (ping, echo, sleep, fail, whoami).
func DemoActions() []actors.Action {
	return []actors.Action{
		{Name: "ping"}, {Name: "echo"}, {Name: "sleep"}, {Name: "fail"},
		{Name: "whoami", StashParams: []string{"user"}},
	}
}

// QueueTimeoutFromEnv reads QUEUE_TIMEOUT (seconds, may be fractional); ok is false when it is unset.
func QueueTimeoutFromEnv() (d time.Duration, ok bool, err error) {
	v, set := os.LookupEnv("QUEUE_TIMEOUT")
	if !set || v == "" {
		return 0, false, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		return 0, false, fmt.Errorf("server: QUEUE_TIMEOUT=%q is not a positive number of seconds", v)
	}
	return time.Duration(f * float64(time.Second)), true, nil
}

// withDefaults returns a copy of c with every zero value replaced by its default.
func (c Config) withDefaults() (Config, error) {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Admin == "" {
		c.Admin = DefaultAdmin
	}
	if c.RedisURL == "" {
		c.RedisURL = DefaultRedisURL
	}
	if c.Mode == "" {
		c.Mode = DefaultMode
	}
	if c.QueueTimeout == 0 {
		d, ok, err := QueueTimeoutFromEnv()
		if err != nil {
			return c, err
		}
		c.QueueTimeout = DefaultQueueTimeout
		if ok {
			c.QueueTimeout = d
		}
	}
	if c.Actions == nil {
		c.Actions = DemoActions()
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, c.Validate()
}

// Validate reports a configuration error.
func (c Config) Validate() error {
	if _, err := redisq.ParseMode(c.Mode); err != nil {
		return err
	}
	if c.QueueTimeout < 0 || c.DrainTimeout < 0 || c.MaxInFlight < 0 {
		return errors.New("server: QueueTimeout, DrainTimeout and MaxInFlight must not be negative")
	}
	return c.Transport.Validate()
}
