package redisq_test

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/redisq"
)

var (
	cmdstatCalls = regexp.MustCompile(`(?m)^cmdstat_([a-z|]+):calls=(\d+),usec=(\d+)`)
	usedCPU      = regexp.MustCompile(`(?m)^used_cpu_(?:sys|user):([\d.]+)`)
)

// redisCPU is the CPU time the server has used (INFO cpu: user + system).
func redisCPU(b *testing.B, rdb *redis.Client) time.Duration {
	info, err := rdb.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var total float64
	for _, m := range usedCPU.FindAllStringSubmatch(info, -1) {
		f, _ := strconv.ParseFloat(m[1], 64)
		total += f
	}
	return time.Duration(total * float64(time.Second))
}

// commandCounts reads INFO commandstats: calls and µs spent inside them per command since the last CONFIG
// RESETSTAT (a script's µs include those of the commands it calls, which are counted on their own too).
func commandCounts(b *testing.B, rdb *redis.Client) (calls, usec map[string]int) {
	info, err := rdb.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	calls, usec = map[string]int{}, map[string]int{}
	for _, m := range cmdstatCalls.FindAllStringSubmatch(info, -1) {
		calls[m[1]], _ = strconv.Atoi(m[2])
		usec[m[1]], _ = strconv.Atoi(m[3])
	}
	return calls, usec
}

// BenchmarkRoundTrip measures jobs through client → Redis → Go worker → Redis → client, for each mode, with
// many jobs in flight (the gateway's situation). It reports jobs/s and the Redis commands per job (from INFO
// commandstats; the worker's idle blocking fetches included).
func BenchmarkRoundTrip(b *testing.B) {
	srv := redistest.Start(b)
	admin := srv.Client()
	for _, mode := range []redisq.Mode{redisq.ModeSimple, redisq.ModeRecoverable, redisq.ModeReliable} {
		for _, inflight := range []int{1, 256} {
			b.Run(fmt.Sprintf("mode=%s/inflight=%d", mode, inflight), func(b *testing.B) {
				keys := redisq.Keys{Prefix: fmt.Sprintf("bench-%s-%d", mode, inflight)}
				done := make(chan redisq.Completion, 4096)
				rdb := redis.NewClient(&redis.Options{Addr: srv.Addr})
				defer rdb.Close()
				c, err := redisq.NewClient(redisq.ClientConfig{Redis: rdb, Mode: mode, Keys: keys, Logger: quiet,
					OnComplete: func(x redisq.Completion) { done <- x }})
				if err != nil {
					b.Fatal(err)
				}
				if err := c.Start(context.Background()); err != nil {
					b.Fatal(err)
				}
				defer c.Shutdown(context.Background())
				const concurrency = 32
				wrdb := redis.NewClient(redisq.WorkerRedisOptions(&redis.Options{Addr: srv.Addr}, concurrency))
				defer wrdb.Close()
				w, err := redisq.NewWorker(redisq.WorkerConfig{Redis: wrdb, Mode: mode, Keys: keys, Handler: echoRPC,
					Concurrency: concurrency, PollTimeout: time.Second, Logger: quiet})
				if err != nil {
					b.Fatal(err)
				}
				if err := w.Start(context.Background()); err != nil {
					b.Fatal(err)
				}
				defer w.Shutdown(context.Background())
				params := []byte(`{"args":{"ping":1,"req_id":7}}`)
				admin.ConfigResetStat(context.Background())
				cpu0 := redisCPU(b, admin)
				b.ReportAllocs()
				b.ResetTimer()
				start := time.Now()
				sent, got := 0, 0
				for got < b.N {
					for sent < b.N && sent-got < inflight {
						if err := c.Submit(redisq.RPCSubmission(redisq.NewID(), "ping", params)); err != nil {
							b.Fatal(err)
						}
						sent++
					}
					if x := <-done; x.Err != nil {
						b.Fatal(x.Err)
					}
					got++
				}
				elapsed := time.Since(start)
				b.StopTimer()
				cpu := redisCPU(b, admin) - cpu0
				counts, usec := commandCounts(b, admin)
				total := 0
				var names []string
				for name, n := range counts {
					if name == "info" || name == "config|resetstat" || n == 0 {
						continue
					}
					total += n
					names = append(names, fmt.Sprintf("%s=%.2f(%.1fµs)", name, float64(n)/float64(b.N),
						float64(usec[name])/float64(b.N)))
				}
				sort.Strings(names)
				b.ReportMetric(float64(b.N)/elapsed.Seconds(), "jobs/s")
				b.ReportMetric(float64(total)/float64(b.N), "redis-cmds/job")
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "redis-cpu-µs/job")
				b.ReportMetric(cpu.Seconds()/elapsed.Seconds()*100, "redis-cpu-%")
				if testing.Verbose() {
					b.Logf("per job, calls(µs inside): %s", strings.Join(names, " "))
				}
			})
		}
	}
}
