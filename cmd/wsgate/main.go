// Command wsgate is the gateway binary: serve, worker, dev and version (see ../shared/spec/cli.md).
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/redisq"
	"github.com/wsgate/wsgate/server"
	"github.com/wsgate/wsgate/server/demo"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `wsgate — a WebSocket gateway that turns JSON RPC requests into Redis jobs.

Usage:
  wsgate serve   [flags]         the gateway
  wsgate worker  --demo [flags]  a Go worker serving the demo actions
  wsgate dev     [flags]         gateway + in-process Redis + demo worker, for trying it out
  wsgate version

Run 'wsgate <command> -h' for the flags of a command. Flags beat WSGATE_* environment variables, which beat
the --config file, which beats defaults. QUEUE_TIMEOUT (seconds, default 300) sets how long to wait for a
job's result when the file does not.
`

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "wsgate:", err)
		}
		os.Exit(2)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
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
		gw, err := server.New(o.gatewayConfig())
		if err != nil {
			return err
		}
		return gw.Run(ctx)
	case "dev":
		o, err := parseFlags("dev", args[1:], stderr)
		if err != nil {
			return err
		}
		return server.RunDev(ctx, o.gatewayConfig(), stdout)
	case "worker":
		o, err := parseFlags("worker", args[1:], stderr)
		if err != nil {
			return err
		}
		return runWorker(ctx, o)
	case "version", "-v", "--version":
		fmt.Fprintln(stdout, "wsgate", version)
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
	return []setting{
		{"listen", "WSGATE_LISTEN", "WebSocket listener address", str(func(o *options) *string { return &o.cfg.Listen }), server.DefaultListen},
		{"admin", "WSGATE_ADMIN", `admin HTTP listener address, or "off"`, str(func(o *options) *string { return &o.cfg.Admin }), server.DefaultAdmin},
		{"path", "WSGATE_PATH", "WebSocket path", str(func(o *options) *string { return &o.cfg.Transport.Path }), "/ws"},
		{"redis", "WSGATE_REDIS", "Redis URL", str(func(o *options) *string { return &o.redisURL }), server.DefaultRedisURL},
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
		{"session-workers", "WSGATE_SESSION_WORKERS", "run session actors on N long-lived goroutines (0: a new one per mailbox run; see bench/RESULTS.md)", func(o *options, v string) error {
			n, err := strconv.Atoi(v)
			o.cfg.SessionWorkers = n
			return err
		}, "0"},
		{"buffer-budget", "WSGATE_BUFFER_BUDGET", "bytes all connections may hold in unfinished messages and write queues (over it the biggest holders are closed)", func(o *options, v string) error {
			n, err := strconv.Atoi(v)
			o.cfg.Transport.BufferBudget = n
			return err
		}, "536870912"},
		{"message-timeout", "WSGATE_MESSAGE_TIMEOUT", "time a client has to finish a frame or fragmented message (1008 after it)", func(o *options, v string) error {
			d, err := time.ParseDuration(v)
			o.cfg.Transport.MessageTimeout = d
			return err
		}, "30s"},
		{"compression", "WSGATE_COMPRESSION", "offer permessage-deflate to clients (the Perl proxy's default)", func(o *options, v string) error {
			b, err := strconv.ParseBool(v)
			o.cfg.Transport.Compression = b
			return err
		}, "true"},
	}
}

func parseFlags(cmd string, args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("wsgate "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", os.Getenv("WSGATE_CONFIG"), "YAML configuration file")
	logFormat := fs.String("log-format", "", "log format: text or json (default text)")
	logLevel := fs.String("log-level", "", "log level: debug, info, warn, error (default info)")
	flagValues := map[string]*string{}
	for _, st := range settings() {
		flagValues[st.flag] = fs.String(st.flag, "", fmt.Sprintf("%s (env %s, default %s)", st.usage, st.env, st.def))
	}
	if cmd == "serve" {
		fs.BoolVar(&o.checkOnly, "check-config", false, "check the configuration and exit")
	}
	if cmd == "worker" {
		fs.BoolVar(&o.demo, "demo", false, "serve the demo actions (ping, echo, sleep, fail, whoami)")
		fs.IntVar(&o.concurrency, "concurrency", 64, "jobs run at once")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
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
		v := os.Getenv(st.env) // an empty variable counts as unset
		ok := v != ""
		if set[st.flag] {
			v, ok = *flagValues[st.flag], true
		}
		if !ok {
			continue
		}
		if err := st.apply(o, v); err != nil {
			return nil, fmt.Errorf("--%s: %w", st.flag, err)
		}
	}
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
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		o.logger = slog.New(slog.NewTextHandler(stderr, hopts))
	case "json":
		o.logger = slog.New(slog.NewJSONHandler(stderr, hopts))
	default:
		return nil, fmt.Errorf("log format must be text or json, not %q", format)
	}
	o.cfg.Logger = o.logger
	if _, err := o.cfg.WithDefaults(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return o, nil
}

func (o *options) gatewayConfig() server.Config { return o.cfg }

func runWorker(ctx context.Context, o *options) error {
	if !o.demo {
		return errors.New("worker: only the demo actions are built in; pass --demo (or embed redisq.Worker in your program)")
	}
	mode, err := redisq.ParseMode(o.mode)
	if err != nil {
		return err
	}
	var opts *redis.Options
	redisURL := o.redisURL
	if redisURL == "" {
		redisURL = server.DefaultRedisURL
	}
	opts, err = redis.ParseURL(redisURL)
	if err != nil {
		return fmt.Errorf("worker: redis URL: %w", err)
	}
	rdb := redis.NewClient(redisq.WorkerRedisOptions(opts, o.concurrency))
	defer rdb.Close()
	keys := redisq.Keys{}
	if q, ok := o.cfg.Queues[server.DefaultQueueName]; ok {
		keys = redisq.Keys{Prefix: q.Prefix, NoPrefix: q.NoPrefix, Queue: q.Name}
	}
	w, err := redisq.NewWorker(redisq.WorkerConfig{Redis: rdb, Mode: mode, Keys: keys, Handler: demo.Handler(),
		Concurrency: o.concurrency, Logger: o.logger})
	if err != nil {
		return err
	}
	o.logger.Info("wsgate worker running", "redis", redisURL, "queue", keys.Pending(), "concurrency", o.concurrency)
	w.Start()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return w.Shutdown(sctx)
}
