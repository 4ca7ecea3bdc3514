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
defaults. QUEUE_TIMEOUT (seconds, default 300) sets how long to wait for a job's result.
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
	listen, admin, redisURL, mode, prefix, path string
	logFormat, logLevel                         string
	demo, compression                           bool
	concurrency                                 int
	logger                                      *slog.Logger
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func parseFlags(cmd string, args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("wsgate "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", env("WSGATE_LISTEN", server.DefaultListen), "WebSocket listener address")
	fs.StringVar(&o.admin, "admin", env("WSGATE_ADMIN", server.DefaultAdmin), `admin HTTP listener address, or "off"`)
	fs.StringVar(&o.path, "path", env("WSGATE_PATH", "/ws"), "WebSocket path")
	fs.StringVar(&o.redisURL, "redis", env("WSGATE_REDIS", server.DefaultRedisURL), "Redis URL")
	fs.StringVar(&o.mode, "mode", env("WSGATE_MODE", server.DefaultMode), "queue mode: simple, recoverable or reliable")
	fs.StringVar(&o.prefix, "prefix", env("WSGATE_PREFIX", redisq.DefaultPrefix), "queue prefix")
	fs.BoolVar(&o.compression, "compression", env("WSGATE_COMPRESSION", "true") == "true",
		"offer permessage-deflate to clients (the Perl proxy's default)")
	fs.StringVar(&o.logFormat, "log-format", env("WSGATE_LOG_FORMAT", "text"), "log format: text or json")
	fs.StringVar(&o.logLevel, "log-level", env("WSGATE_LOG_LEVEL", "info"), "log level: debug, info, warn, error")
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
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(o.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: lvl}
	switch o.logFormat {
	case "text":
		o.logger = slog.New(slog.NewTextHandler(stderr, hopts))
	case "json":
		o.logger = slog.New(slog.NewJSONHandler(stderr, hopts))
	default:
		return nil, fmt.Errorf("--log-format must be text or json, not %q", o.logFormat)
	}
	return o, nil
}

func (o *options) gatewayConfig() server.Config {
	cfg := server.Config{Listen: o.listen, Admin: o.admin, RedisURL: o.redisURL, Mode: o.mode, Logger: o.logger}
	cfg.Transport.Path = o.path
	cfg.Transport.Compression = o.compression
	if o.prefix != redisq.DefaultPrefix {
		cfg.Prefix = o.prefix
	}
	return cfg
}

func runWorker(ctx context.Context, o *options) error {
	if !o.demo {
		return errors.New("worker: only the demo actions are built in; pass --demo (or embed redisq.Worker in your program)")
	}
	mode, err := redisq.ParseMode(o.mode)
	if err != nil {
		return err
	}
	var opts *redis.Options
	opts, err = redis.ParseURL(o.redisURL)
	if err != nil {
		return fmt.Errorf("worker: redis URL: %w", err)
	}
	rdb := redis.NewClient(redisq.WorkerRedisOptions(opts, o.concurrency))
	defer rdb.Close()
	keys := redisq.Keys{}
	if o.prefix != redisq.DefaultPrefix {
		keys.Prefix = o.prefix
	}
	w, err := redisq.NewWorker(redisq.WorkerConfig{Redis: rdb, Mode: mode, Keys: keys, Handler: demo.Handler(),
		Concurrency: o.concurrency, Logger: o.logger})
	if err != nil {
		return err
	}
	o.logger.Info("wsgate worker running", "redis", o.redisURL, "queue", keys.Pending(), "concurrency", o.concurrency)
	w.Start()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return w.Shutdown(sctx)
}
