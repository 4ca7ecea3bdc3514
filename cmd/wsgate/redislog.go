package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/redis/go-redis/v9"
)

// redisLogger routes go-redis's own log lines (dial failures, Sentinel switches) through the binary's slog
// handler, so they share its format (JSON with --log-format json), its level and its password masking.
// go-redis has one process-wide logger: only the binary sets it, never the library.
type redisLogger struct{ log *slog.Logger }

func (l redisLogger) Printf(ctx context.Context, format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	level := slog.LevelWarn // go-redis logs what went wrong: failed dials, retired connections
	if strings.HasPrefix(msg, "sentinel: ") {
		level = slog.LevelInfo // failover news
	}
	l.log.Log(ctx, level, msg, "component", "go-redis")
}

// useRedisLogger makes go-redis log through l.
func useRedisLogger(l *slog.Logger) { redis.SetLogger(redisLogger{l}) }
