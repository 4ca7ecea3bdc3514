package runner

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
)

// deepTask grows a fresh goroutine's stack past its start size, as a job handler or a session's reply does.
//
//go:noinline
func deepTask(depth int) int {
	var pad [256]byte
	pad[depth%256] = byte(depth)
	if depth == 0 {
		b, _ := json.Marshal(map[string]any{"ping": 1, "req_id": 7})
		return len(b) + int(pad[0])
	}
	return deepTask(depth-1) + int(pad[depth%256])
}

// BenchmarkRun compares a goroutine per task with the pool, 64 tasks at once (a worker's default concurrency).
func BenchmarkRun(b *testing.B) {
	for _, mode := range []string{"goroutine-per-task", "pool"} {
		b.Run(fmt.Sprintf("mode=%s", mode), func(b *testing.B) {
			p := New(0)
			var wg sync.WaitGroup
			slots := make(chan struct{}, 64)
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				slots <- struct{}{}
				wg.Add(1)
				task := func() { deepTask(12); wg.Done(); <-slots }
				if mode == "pool" {
					p.Run(task)
				} else {
					go task()
				}
			}
			wg.Wait()
			_ = p.Shutdown(b.Context())
		})
	}
}
