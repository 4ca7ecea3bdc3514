// Command wsgate is the gateway binary: serve, worker, dev, queue and version (`wsgate help` lists them).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsgate/wsgate/internal/redact"
	"github.com/wsgate/wsgate/redisq"
	"github.com/wsgate/wsgate/redisq/workermetrics"
	"github.com/wsgate/wsgate/server"
	"github.com/wsgate/wsgate/server/demo"
	"github.com/wsgate/wsgate/transport"
)

// version, if set at build time with -ldflags "-X main.version=...", replaces the module version that the Go
// toolchain records in the binary.
var version = ""

// versionString is the module version and the VCS revision the binary was built from, as recorded by the Go
// toolchain (runtime/debug.ReadBuildInfo): `wsgate v0.0.0-20261202030150-c0083b9a1b2c+dirty (revision
// c0083b9a1b2c…, modified, 2026-12-02T03:01:50Z, go1.26.8)`.
func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	return formatVersion(version, bi, runtime.Version())
}

// formatVersion is versionString for given build information (nil when the binary has none). A binary built
// in a git checkout has vcs.* settings (not in a git worktree, nor with -buildvcs=false: then only the module
// version, "(devel)" for a source build).
func formatVersion(override string, bi *debug.BuildInfo, goVersion string) string {
	v := override
	var details []string
	if bi != nil {
		if v == "" {
			v = bi.Main.Version
		}
		var rev, at string
		var modified bool
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" {
			details = append(details, "revision "+rev)
			if modified {
				details = append(details, "modified")
			}
		}
		if at != "" {
			details = append(details, at)
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
	}
	if v == "" {
		v = "(devel)"
	}
	return fmt.Sprintf("wsgate %s (%s)", v, strings.Join(append(details, goVersion), ", "))
}

const usage = `wsgate — a WebSocket gateway that turns JSON RPC requests into Redis jobs.

Usage:
  wsgate serve   [flags]         the gateway
  wsgate worker  --demo [flags]  a Go worker serving the demo actions
  wsgate dev     [flags]         gateway + in-process Redis + demo worker, for trying it out
  wsgate queue   <command>       see and manage the queues: stats, jobs, show, dead, pending purge
  wsgate version

Run 'wsgate <command> -h' for the flags of a command. Flags beat WSGATE_* environment variables, which beat
the --config file, which beats defaults. QUEUE_TIMEOUT (seconds, default 300) sets how long to wait for a
job's result when the file does not. Redis passwords come from WSGATE_REDIS_PASSWORD and
WSGATE_REDIS_SENTINEL_PASSWORD (or the file), never from a flag.
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "wsgate:", redact.Error(err)) // a wrapped error may quote a Redis URL
		os.Exit(2)
	}
}

// helpError is what parseFlags returns for -h/--help: the command's usage, which run prints on stdout before
// exiting 0.
type helpError struct{ usage string }

func (e *helpError) Error() string        { return "help requested" }
func (e *helpError) Is(target error) bool { return target == flag.ErrHelp }

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() { // the first signal starts the drain; a second one kills at once (the default action)
		<-ctx.Done()
		stop()
	}()
	err := runCommand(ctx, args, stdout, stderr)
	if h := (*helpError)(nil); errors.As(err, &h) {
		fmt.Fprint(stdout, h.usage)
		return nil
	}
	return err
}

func runCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	switch args[0] {
	case "serve":
		o, err := parseFlags("serve", args[1:], stderr)
		if err != nil {
			return err
		}
		if o.checkOnly {
			fmt.Fprintln(stdout, "configuration OK")
			return nil
		}
		if o.demoActions {
			o.logger.Warn("no actions configured: serving the demo action list (ping, echo, sleep, fail, whoami); " +
				"list your actions under `actions:` in a --config file (see wsgate.example.yaml)")
		}
		if err := applyMemoryLimit(o); err != nil {
			return err
		}
		gw, err := server.New(o.gatewayConfig())
		if err != nil {
			return err
		}
		defer reloadOnSIGHUP(gw, o.logger)()
		return gw.Run(ctx)
	case "dev":
		o, err := parseFlags("dev", args[1:], stderr)
		if err != nil {
			return err
		}
		if err := applyMemoryLimit(o); err != nil {
			return err
		}
		return runDev(ctx, o.gatewayConfig(), stdout)
	case "worker":
		o, err := parseFlags("worker", args[1:], stderr)
		if err != nil {
			return err
		}
		return runWorker(ctx, o)
	case "queue":
		return runQueue(ctx, args[1:], stdout, stderr)
	case "version", "-v", "--version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

type options struct {
	cfg         server.Config
	redisURL    string
	mode        string
	prefix      string
	demo        bool
	concurrency int
	checkOnly   bool
	logger      *slog.Logger
	demoActions bool // no configuration named actions: cfg.Actions is server.DemoActions()

	orphanTimeout time.Duration // worker: redisq.WorkerConfig.OrphanTimeout
	queue         *queueCommand // queue: its own flags and the job IDs
	memoryLimit   string        // serve, dev: applied by applyMemoryLimit
}

// setting is one setting that a flag, an environment variable and the config file can all give.
type setting struct {
	flag, env, usage string
	apply            func(o *options, v string) error
	def              string // shown in -h; the real default comes from server.Config
}

func settings() []setting {
	str := func(p func(o *options) *string) func(*options, string) error {
		return func(o *options, v string) error { *p(o) = v; return nil }
	}
	s := []setting{
		{"listen", "WSGATE_LISTEN", "WebSocket listener address", str(func(o *options) *string { return &o.cfg.Listen }), server.DefaultListen},
		{"admin", "WSGATE_ADMIN", `admin HTTP listener address, or "off"`, str(func(o *options) *string { return &o.cfg.Admin }), server.DefaultAdmin},
		{"path", "WSGATE_PATH", "WebSocket path", str(func(o *options) *string { return &o.cfg.Transport.Path }), transport.DefaultPath},
		{"handshake-timeout", "WSGATE_HANDSHAKE_TIMEOUT", "time a client has to send its upgrade request (30s, or seconds)",
			durationSetting(func(o *options) *time.Duration { return &o.cfg.Transport.HandshakeTimeout }), "5s"},
		{"max-handshakes", "WSGATE_MAX_HANDSHAKES", "upgrades in progress at once; beyond it a new socket is closed", intSetting(func(o *options) *int { return &o.cfg.Transport.MaxHandshakes }), "1024"},
		{"max-handshakes-per-ip", "WSGATE_MAX_HANDSHAKES_PER_IP", "upgrades in progress from one address (IPv6: /64); beyond it a new socket is closed", intSetting(func(o *options) *int { return &o.cfg.Transport.MaxHandshakesPerIP }), "64"},
		{"fd-reserve", "WSGATE_FD_RESERVE", "file descriptors kept free for Redis and the admin listener; upgrades get 503 within it of RLIMIT_NOFILE (-1: off)", intSetting(func(o *options) *int { return &o.cfg.Transport.FDReserve }), "256"},
		{"redis", "WSGATE_REDIS", "Redis URL: redis://, rediss:// (TLS) or unix://", str(func(o *options) *string { return &o.redisURL }), server.DefaultRedisURL},
		{"mode", "WSGATE_MODE", "queue mode: simple, recoverable or reliable", str(func(o *options) *string { return &o.mode }), server.DefaultMode},
		{"prefix", "WSGATE_PREFIX", `queue prefix ("" for none, as the Perl code)`, func(o *options, v string) error {
			o.prefix = v
			q := server.Queue{Prefix: v, NoPrefix: v == ""}
			if o.cfg.Queues == nil {
				o.cfg.Queues = map[string]server.Queue{}
			}
			if old, ok := o.cfg.Queues[server.DefaultQueueName]; ok {
				q.Name = old.Name
			}
			o.cfg.Queues[server.DefaultQueueName] = q
			return nil
		}, "jobs"},
		{"session-workers", "WSGATE_SESSION_WORKERS", "run session actors on N long-lived goroutines (0: a new one per mailbox run; see bench/RESULTS.md)",
			intSetting(func(o *options) *int { return &o.cfg.SessionWorkers }), "0"},
		{"passivate-after", "WSGATE_PASSIVATE_AFTER", `an idle session (nothing in flight, no message for this long) stops its actor until its next message; "off": never`,
			func(o *options, v string) error {
				if v == "off" {
					o.cfg.PassivateAfter = -1
					return nil
				}
				return durationSetting(func(o *options) *time.Duration { return &o.cfg.PassivateAfter })(o, v)
			}, "5s"},
		{"buffer-budget", "WSGATE_BUFFER_BUDGET", "bytes all connections may hold in unfinished messages and write queues (over it the biggest holders are closed)",
			intSetting(func(o *options) *int { return &o.cfg.Transport.BufferBudget }), "536870912"},
		{"message-timeout", "WSGATE_MESSAGE_TIMEOUT", "time a client has to finish a frame or fragmented message (1008 after it)",
			durationSetting(func(o *options) *time.Duration { return &o.cfg.Transport.MessageTimeout }), "30s"},
		{"linger-timeout", "WSGATE_LINGER_TIMEOUT", `after the server's close frame, how long a socket waits for the client to close its side, reading what it still sends, so that late requests cannot reset undelivered replies; "off": close at once`,
			func(o *options, v string) error {
				if v == "off" {
					o.cfg.Transport.LingerTimeout = -1
					return nil
				}
				return durationSetting(func(o *options) *time.Duration { return &o.cfg.Transport.LingerTimeout })(o, v)
			}, "2s"},
		{"memory-limit", "WSGATE_MEMORY_LIMIT", `soft memory limit of the process in bytes; "auto": 2 × buffer budget + 256 MiB, unless GOMEMLIMIT is set; "off"`,
			str(func(o *options) *string { return &o.memoryLimit }), "auto"},
		{"max-connections", "WSGATE_MAX_CONNECTIONS", "open connections at most (0: no limit); beyond it the upgrade gets 503", intSetting(func(o *options) *int { return &o.cfg.Transport.MaxConnections }), "0"},
		{"max-connections-per-ip", "WSGATE_MAX_CONNECTIONS_PER_IP", "open connections from one address at most (0: no limit); beyond it 503", intSetting(func(o *options) *int { return &o.cfg.Transport.MaxConnectionsPerIP }), "0"},
		{"max-frame-size", "WSGATE_MAX_FRAME_SIZE", "bytes of one frame's payload at most; bigger: close 1009", intSetting(func(o *options) *int { return &o.cfg.Transport.MaxFrameSize }), "262144"},
		{"max-message-size", "WSGATE_MAX_MESSAGE_SIZE", "bytes of one reassembled message at most; bigger: close 1009", intSetting(func(o *options) *int { return &o.cfg.Transport.MaxMessageSize }), "262144"},
		{"write-queue-bytes", "WSGATE_WRITE_QUEUE_BYTES", "bytes queued for one client at most; a client that does not read is closed (1008)", intSetting(func(o *options) *int { return &o.cfg.Transport.WriteQueueBytes }), "1048576"},
		{"max-response-size", "WSGATE_MAX_RESPONSE_SIZE", "bytes of one reply at most (at least 256); bigger: ResponseTooLarge", intSetting(func(o *options) *int { return &o.cfg.MaxResponseSize }), "328000"},
		{"max-in-flight", "WSGATE_MAX_IN_FLIGHT", "requests of one connection waiting for results at most; beyond: RateLimit", intSetting(func(o *options) *int { return &o.cfg.MaxInFlight }), "100"},
		{"stream-timeout", "WSGATE_STREAM_TIMEOUT", "idle timeout of a connection (a ping after half of it)", durationSetting(func(o *options) *time.Duration { return &o.cfg.Transport.IdleTimeout }), "120s"},
		{"write-timeout", "WSGATE_WRITE_TIMEOUT", "time a client may refuse writes before it is closed", durationSetting(func(o *options) *time.Duration { return &o.cfg.Transport.WriteTimeout }), "10s"},
		{"queue-timeout", "WSGATE_QUEUE_TIMEOUT", "time a request waits for its result before RequestTimeout (also QUEUE_TIMEOUT, as in Perl)", durationSetting(func(o *options) *time.Duration { return &o.cfg.QueueTimeout }), "300s"},
		{"queue-watch-interval", "WSGATE_QUEUE_WATCH_INTERVAL", "how often the gateway samples its queues (metrics, /readyz)", durationSetting(func(o *options) *time.Duration { return &o.cfg.QueueWatch.Interval }), "5s"},
		{"no-worker-after", "WSGATE_NO_WORKER_AFTER", `jobs waiting this long with no live worker: a warning on the log and /readyz ("off": never)`, func(o *options, v string) error {
			if v == "off" {
				o.cfg.QueueWatch.NoWorkerAfter = -1
				return nil
			}
			return durationSetting(func(o *options) *time.Duration { return &o.cfg.QueueWatch.NoWorkerAfter })(o, v)
		}, "30s"},
		{"require-worker", "WSGATE_REQUIRE_WORKER", "/readyz fails while a queue has no live worker (leave off with Perl workers: they send no heartbeats)", boolSetting(func(o *options) *bool { return &o.cfg.QueueWatch.RequireWorker }), "false"},
		{"require-result", "WSGATE_REQUIRE_RESULT", "a worker envelope without a result is WrongResponse (default: a null result, as in Perl)", boolSetting(func(o *options) *bool { return &o.cfg.RequireResult }), "false"},
		{"close-on-invalid-utf8", "WSGATE_CLOSE_ON_INVALID_UTF8", "close (1007) a connection that sends invalid UTF-8, instead of answering BadRequest", boolSetting(func(o *options) *bool { return &o.cfg.CloseOnInvalidUTF8 }), "false"},
		{"allowed-origins", "WSGATE_ALLOWED_ORIGINS", "comma-separated Origin values accepted (others get 403); empty: any", func(o *options, v string) error {
			o.cfg.Transport.AllowedOrigins = splitList(v)
			return nil
		}, `""`},
		{"compression", "WSGATE_COMPRESSION", "offer permessage-deflate to clients (the Perl proxy's default)",
			boolSetting(func(o *options) *bool { return &o.cfg.Transport.Compression }), "true"},
		{"drain-timeout", "WSGATE_DRAIN_TIMEOUT", "on SIGTERM, how long requests already taken may take (seconds or 10s); new ones get ServiceUnavailable",
			durationSetting(func(o *options) *time.Duration { return &o.cfg.DrainTimeout }), "10s"},
		{"pprof", "WSGATE_PPROF", "serve /debug/pprof/ on the admin listener", boolSetting(func(o *options) *bool { return &o.cfg.Pprof }), "false"},
		{"admin-token", "WSGATE_ADMIN_TOKEN", "bearer token for /metrics and /debug/pprof/ (prefer the variable: flags show in ps)", str(func(o *options) *string { return &o.cfg.AdminToken }), `""`},
	}
	return append(append(s, tlsSettings()...), redisSettings()...)
}

// workerSettings are the settings() that `wsgate worker` takes; the others are the gateway's.
// A worker's --admin (default off) serves its /metrics and /healthz; the file's `admin` key is the gateway's.
var workerSettings = map[string]bool{"redis": true, "mode": true, "prefix": true, "admin": true}

// takes reports whether a command has the setting: the worker its own and Redis's, queue the prefix and
// Redis's, dev all but Redis's (it runs an in-process Redis).
func takes(cmd, setting string) bool {
	redis := setting == "redis" || strings.HasPrefix(setting, "redis-")
	switch cmd {
	case "worker":
		return workerSettings[setting] || redis
	case "queue":
		return setting == "prefix" || redis
	case "dev":
		return !redis
	}
	return true
}

// parseSeconds reads a duration as seconds (10, 0.5) or as a Go duration (10s, 1m30s).
func parseSeconds(v string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil && f >= 0 {
		return time.Duration(f * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is neither seconds nor a duration such as 10s", v)
	}
	return d, nil
}

// settingFlag holds a setting's flag value as text; boolean settings (default "true" or "false") may be given
// without a value (--pprof).
type settingFlag struct {
	v      string
	isBool bool
}

func (f *settingFlag) String() string     { return f.v }
func (f *settingFlag) Set(v string) error { f.v = v; return nil }
func (f *settingFlag) IsBoolFlag() bool   { return f.isBool }

// commandHelp is the first lines of each command's --help.
var commandHelp = map[string]string{
	"serve":  "Usage: wsgate serve [flags]\n\nThe gateway: WebSocket listener, admin HTTP listener, jobs on Redis.\n",
	"worker": "Usage: wsgate worker --demo [flags]\n\nA Go worker serving the demo actions (ping, echo, sleep, fail, whoami) from the queue.\n",
	"dev":    "Usage: wsgate dev [flags]\n\nThe gateway with an in-process Redis and the demo worker, for trying it out.\n",
	"queue":  queueUsage,
}

func parseFlags(cmd string, args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("wsgate "+cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned; --help is printed by run, on stdout
	configPath := fs.String("config", os.Getenv("WSGATE_CONFIG"), "YAML configuration file (env WSGATE_CONFIG)")
	logFormat := fs.String("log-format", "", "log format: text or json (env WSGATE_LOG_FORMAT, default text)")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn, error (env WSGATE_LOG_LEVEL, default info)")
	flagValues := map[string]*settingFlag{}
	for _, st := range settings() {
		if !takes(cmd, st.flag) {
			continue
		}
		flagValues[st.flag] = &settingFlag{isBool: st.def == "true" || st.def == "false"}
		fs.Var(flagValues[st.flag], st.flag, fmt.Sprintf("%s (env %s, default %s)", st.usage, st.env, st.def))
	}
	if cmd == "serve" {
		fs.BoolVar(&o.checkOnly, "check-config", false, "check the configuration and exit")
	}
	if cmd == "queue" {
		o.queue = queueFlags(fs)
	}
	if cmd == "worker" {
		fs.BoolVar(&o.demo, "demo", false, "serve the demo actions: ping, echo, sleep, fail, whoami (env WSGATE_DEMO)")
		fs.IntVar(&o.concurrency, "concurrency", 64, "jobs run at once (env WSGATE_CONCURRENCY)")
		fs.DurationVar(&o.orphanTimeout, "orphan-timeout", 0, "reliable mode: requeue a job a Perl worker took this long ago (0: never; see redisq/PROTOCOL.md; env WSGATE_ORPHAN_TIMEOUT)")
	}
	for cmd == "queue" { // job IDs may stand between and after the flags
		if err := fs.Parse(args); err != nil || fs.NArg() == 0 {
			break
		}
		o.queue.ids, args = append(o.queue.ids, fs.Arg(0)), fs.Args()[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			var b strings.Builder
			b.WriteString(commandHelp[cmd])
			b.WriteString("\nFlags (a flag beats its WSGATE_* variable, which beats the --config file, which beats the default):\n")
			fs.SetOutput(&b)
			fs.PrintDefaults()
			return nil, &helpError{usage: b.String()}
		}
		return nil, fmt.Errorf("%w (see 'wsgate %s --help')", err, cmd)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	// Precedence: flag, then environment, then file, then default.
	o.cfg.Transport.Compression = true
	format, level := "text", "info"
	if *configPath != "" {
		cfg, file, err := server.LoadFile(*configPath)
		if err != nil {
			return nil, err
		}
		o.cfg = cfg
		o.redisURL, o.mode = cfg.RedisURL, cfg.Mode
		if cmd == "worker" {
			o.cfg.Admin = "" // the file's admin listener is the gateway's
		}
		o.memoryLimit = file.MemoryLimit
		if file.Log.Format != "" {
			format = file.Log.Format
		}
		if file.Log.Level != "" {
			level = file.Log.Level
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, st := range settings() {
		if !takes(cmd, st.flag) {
			continue
		}
		v := os.Getenv(st.env) // an empty variable counts as unset
		ok := v != ""
		if set[st.flag] {
			v, ok = flagValues[st.flag].v, true
		}
		if !ok {
			continue
		}
		if err := st.apply(o, v); err != nil {
			return nil, fmt.Errorf("--%s: %w", st.flag, err)
		}
	}
	if v := os.Getenv("WSGATE_DEMO"); v != "" && cmd == "worker" && !set["demo"] {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, fmt.Errorf("WSGATE_DEMO: %w", err)
		}
		o.demo = b
	}
	if v := os.Getenv("WSGATE_CONCURRENCY"); v != "" && cmd == "worker" && !set["concurrency"] {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("WSGATE_CONCURRENCY=%q is not a positive number", v)
		}
		o.concurrency = n
	}
	if v := os.Getenv("WSGATE_ORPHAN_TIMEOUT"); v != "" && cmd == "worker" && !set["orphan-timeout"] {
		d, err := parseSeconds(v)
		if err != nil {
			return nil, fmt.Errorf("WSGATE_ORPHAN_TIMEOUT: %w", err)
		}
		o.orphanTimeout = d
	}
	redisPasswordsFromEnv(o)
	if v := os.Getenv("WSGATE_LOG_FORMAT"); v != "" {
		format = v
	}
	if v := os.Getenv("WSGATE_LOG_LEVEL"); v != "" {
		level = v
	}
	if set["log-format"] {
		format = *logFormat
	}
	if set["log-level"] {
		level = *logLevel
	}
	o.cfg.RedisURL, o.cfg.Mode = o.redisURL, o.mode
	if o.cfg.QueueTimeout == 0 { // the file's queue_timeout beats the variable, as before
		d, err := queueTimeoutFromEnv()
		if err != nil {
			return nil, err
		}
		o.cfg.QueueTimeout = d
	}
	if o.cfg.Actions == nil {
		o.cfg.Actions, o.demoActions = server.DemoActions(), true
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: lvl, ReplaceAttr: redact.ReplaceAttr} // no log line shows a password
	switch format {
	case "text":
		o.logger = slog.New(slog.NewTextHandler(stderr, hopts))
	case "json":
		o.logger = slog.New(slog.NewJSONHandler(stderr, hopts))
	default:
		return nil, fmt.Errorf("log format must be text or json, not %q", format)
	}
	o.cfg.Logger = o.logger
	useRedisLogger(o.logger)
	if _, err := o.cfg.WithDefaults(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return o, nil
}

func (o *options) gatewayConfig() server.Config { return o.cfg }

// queueTimeoutFromEnv reads QUEUE_TIMEOUT (seconds, may be fractional), the Perl backend's setting; 0 when
// it is unset.
func queueTimeoutFromEnv() (time.Duration, error) {
	v := os.Getenv("QUEUE_TIMEOUT")
	if v == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		return 0, fmt.Errorf("QUEUE_TIMEOUT=%q is not a positive number of seconds", v)
	}
	return time.Duration(f * float64(time.Second)), nil
}

func runWorker(ctx context.Context, o *options) error {
	if !o.demo {
		return errors.New("worker: only the demo actions are built in; pass --demo (or embed redisq.Worker in your program)")
	}
	mode, err := redisq.ParseMode(o.mode)
	if err != nil {
		return err
	}
	cfg, err := o.cfg.WithDefaults()
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	rdb, err := cfg.RedisConfig.NewClient(server.WorkerPoolSize(o.concurrency))
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	defer rdb.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = server.PingRedis(pctx, rdb)
	cancel()
	if err != nil {
		return fmt.Errorf("worker: redis: %w", err)
	}
	q := cfg.Queues[server.DefaultQueueName]
	keys := redisq.Keys{Prefix: q.Prefix, NoPrefix: q.NoPrefix, Queue: q.Name}
	if cfg.RedisConfig.IsCluster() && q.Prefix == server.ClusterPrefix {
		o.logger.Info("redis cluster: the queue prefix is " + server.ClusterPrefix + " so that the queue's lists share a slot; the gateway must use the same")
	}
	reg := prometheus.NewRegistry()
	var w *redisq.Worker
	m, err := workermetrics.New(reg, func() redisq.WorkerStats { return w.Stats() })
	if err != nil {
		return err
	}
	w, err = redisq.NewWorker(redisq.WorkerConfig{Redis: rdb, Mode: mode, Keys: keys,
		Handler: redisq.Chain(demo.Handler(), m.Middleware()), Concurrency: o.concurrency,
		OrphanTimeout: o.orphanTimeout, Logger: o.logger})
	if err != nil {
		return err
	}
	var admin *workerAdmin
	if o.cfg.Admin != "" && o.cfg.Admin != "off" {
		if admin, err = startWorkerAdmin(o.cfg.Admin, reg, func(ctx context.Context) error { return rdb.Ping(ctx).Err() }, o.logger); err != nil {
			return err
		}
	}
	o.logger.Info("wsgate worker running", "redis", cfg.RedisConfig, "queue", keys.Pending(),
		"concurrency", o.concurrency, "mode", mode, "id", w.ID(), "admin", admin.addr())
	if err := w.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	began := time.Now()
	o.logger.Info("wsgate worker stopping: finishing running jobs")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = w.Shutdown(sctx)
	if admin != nil {
		admin.Shutdown(sctx)
	}
	o.logger.Info("wsgate worker stopped", "stop_ms", time.Since(began).Milliseconds(), "err", err)
	return err
}

// durationSetting applies a duration (seconds, or a Go duration such as 30s) to the field p returns.
func durationSetting(p func(o *options) *time.Duration) func(*options, string) error {
	return func(o *options, v string) error {
		d, err := parseSeconds(v)
		*p(o) = d
		return err
	}
}

// boolSetting applies a boolean setting to the field p returns.
func boolSetting(p func(o *options) *bool) func(*options, string) error {
	return func(o *options, v string) error {
		b, err := strconv.ParseBool(v)
		*p(o) = b
		return err
	}
}

// splitList splits a comma-separated list, dropping blanks.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// intSetting applies an integer setting to the field p returns.
func intSetting(p func(o *options) *int) func(*options, string) error {
	return func(o *options, v string) error {
		n, err := strconv.Atoi(v)
		*p(o) = n
		return err
	}
}
