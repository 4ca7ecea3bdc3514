package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/redisq"
	"github.com/wsgate/wsgate/server"
	"github.com/wsgate/wsgate/server/demo"
)

// runDev runs the gateway for trying it out: an in-process Redis (miniredis), the demo worker, and the gateway,
// in one process, until ctx ends. It prints how to talk to it on out. cfg.Redis and cfg.RedisURL are ignored.
// It lives in the command, not in server, so that programs embedding the gateway do not link miniredis.
func runDev(ctx context.Context, cfg server.Config, out io.Writer) error {
	mr := miniredis.NewMiniRedis()
	if err := mr.StartAddr("127.0.0.1:0"); err != nil {
		return fmt.Errorf("dev redis: %w", err)
	}
	defer mr.Close()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	cfg.Redis = rdb
	cfg.RedisURL = ""

	const concurrency = 32
	wrdb := redis.NewClient(redisq.WorkerRedisOptions(&redis.Options{Addr: mr.Addr()}, concurrency))
	defer wrdb.Close()
	worker, err := redisq.NewWorker(redisq.WorkerConfig{Redis: wrdb, Handler: demo.Handler(),
		Concurrency: concurrency, PollTimeout: time.Second, Logger: cfg.Logger})
	if err != nil {
		return err
	}
	if err := worker.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		worker.Shutdown(sctx)
	}()

	gw, err := server.New(cfg)
	if err != nil {
		return err
	}
	if err := gw.Start(ctx); err != nil {
		gw.Shutdown(context.Background())
		return err
	}
	fmt.Fprintf(out, `
wsgate dev: gateway, in-process Redis (%s) and demo worker are running.

  Connect any WebSocket client to %s and send, for example:
    {"ping": 1, "req_id": 1}
    {"echo": {"hello": "world"}, "passthrough": {"mine": true}}
    {"sleep": 250}
    {"fail": 1}
    {"whoami": 1}   (the stash values that workers set and whoami's stash_params name)
  e.g. with websocat:  echo '{"ping":1,"req_id":1}' | websocat %s

  Console (live figures and a request box): http://%s/console/
  Health: http://%s/healthz   Ready: http://%s/readyz   Metrics: http://%s/metrics
  Ctrl-C stops it.

`, mr.Addr(), gw.URL(), gw.URL(), gw.AdminAddr(), gw.AdminAddr(), gw.AdminAddr(), gw.AdminAddr())
	return gw.Run(ctx) // started already: serves until ctx ends, then drains
}
