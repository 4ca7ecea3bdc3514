package redisq

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/redistest"
)

// TestAnswersOfLargeResultsAreSplit: a batch whose results exceed answerChunkBytes goes to Redis as several
// answer scripts (no single command of unbounded size), and every job is still answered exactly as in one
// script: result in its hash, one notification carrying it, its ID out of processing.
func TestAnswersOfLargeResultsAreSplit(t *testing.T) {
	tests := []struct {
		name       string
		jobs, size int
		wantEvals  int // answer scripts sent as EVAL in a pipeline; a batch that fits in one goes as EVALSHA
	}{
		{"small batch: one EVALSHA", 3, 100, 0},
		{"large batch: split", 6, 1 << 20, 2}, // 6 × (1 MiB result + its copy in the notification) = 3 chunks of 4 MiB
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t)
			rdb, ctx := srv.Client(), context.Background()
			w, err := NewWorker(WorkerConfig{Redis: rdb, Handler: HandlerFunc(nil), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			sub := rdb.Subscribe(ctx, ClientChannel("c1"))
			defer sub.Close()
			if _, err := sub.Receive(ctx); err != nil {
				t.Fatal(err)
			}
			var batch []answer
			for i := range tt.jobs {
				id := fmt.Sprintf("job-%d", i)
				rdb.HSet(ctx, JobKey(id), fieldReplyTo, "c1", fieldReplyWithResult, "1")
				rdb.LPush(ctx, w.cfg.Keys.Processing(), id)
				batch = append(batch, answer{job: &Job{ID: id, ReplyTo: "c1", replyWithResult: true},
					res: Text(strings.Repeat(string(rune('a'+i)), tt.size))})
			}
			rdb.ConfigResetStat(ctx)
			w.writeAnswers(batch)
			for range tt.jobs {
				msg, err := sub.ReceiveTimeout(ctx, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				var m simpleResult
				if err := json.Unmarshal([]byte(msg.(*redis.Message).Payload), &m); err != nil || len(m.Result) != 1+tt.size {
					t.Fatalf("notification of %q: %d bytes of result (%v), want %d", m.ID, len(m.Result), err, 1+tt.size)
				}
			}
			for i := range tt.jobs {
				if n, _ := rdb.HStrLen(ctx, JobKey(fmt.Sprintf("job-%d", i)), fieldResult).Result(); n != int64(1+tt.size) {
					t.Fatalf("job-%d: result of %d bytes in the hash, want %d", i, n, 1+tt.size)
				}
			}
			if n, _ := rdb.LLen(ctx, w.cfg.Keys.Processing()).Result(); n != 0 {
				t.Fatalf("%d IDs left in processing", n)
			}
			info, _ := rdb.Info(ctx, "commandstats").Result()
			evals := 0
			if i := strings.Index(info, "cmdstat_eval:calls="); i >= 0 {
				fmt.Sscanf(info[i+len("cmdstat_eval:calls="):], "%d", &evals)
			}
			if tt.wantEvals > 0 && evals < tt.wantEvals {
				t.Fatalf("%d answer scripts for %d jobs of %d bytes, want at least %d", evals, tt.jobs, tt.size, tt.wantEvals)
			}
			if tt.wantEvals == 0 && !strings.Contains(info, "cmdstat_evalsha:calls=1,") {
				t.Fatalf("want one EVALSHA for a small batch; commandstats:\n%s", info)
			}
		})
	}
}
