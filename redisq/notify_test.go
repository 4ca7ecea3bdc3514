package redisq_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/redisq"
)

// TestResultInNotification checks the `_reply_with_result` extension from the wire: a default client's job is
// answered by a Go worker with the result in the PUBLISH (JSON `{"id","result"}`, or `{"id","error"}` for a
// failure), and the client never reads the hash (no HMGET) but still deletes it; a client with
// BareNotifications gets the Perl protocol's bare ID and reads the hash. A second subscriber on the client's
// channel sees what the worker published.
func TestResultInNotification(t *testing.T) {
	tests := []struct {
		name      string
		bare      bool
		wantReads int // HMGETs by the client, one per job in the Perl protocol
	}{
		{"default", false, 0},
		{"bare", true, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t)
			rdb, ctx := srv.Client(), context.Background()
			c, col := startClient(t, srv, redisq.ClientConfig{BareNotifications: tt.bare})
			observer := srv.Client().Subscribe(ctx, redisq.ClientChannel(c.ID()))
			defer observer.Close()
			if _, err := observer.Receive(ctx); err != nil {
				t.Fatal(err)
			}
			// No reaper pass during the test: its HMGETs would count as reads.
			startTestWorker(t, srv, redisq.WorkerConfig{Handler: echoRPC, ReapInterval: time.Hour})
			rdb.ConfigResetStat(ctx)
			ids := map[string]bool{}
			for i := 0; i < 4; i++ {
				method := "echo"
				if i == 3 {
					method = "fail"
				}
				id := fmt.Sprintf("job-%d", i)
				ids[id] = method == "fail"
				c.Submit(redisq.RPCSubmission(id, method, []byte(fmt.Sprintf(`{"args":%d}`, i))))
			}
			for _, got := range col.wait(t, 4) {
				if fail := ids[got.JobID]; fail != (got.Err != nil) {
					t.Fatalf("job %s: completion %+v", got.JobID, got)
				}
			}
			for range 4 {
				msg, err := observer.ReceiveTimeout(ctx, 10*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				payload := msg.(*redis.Message).Payload
				if tt.bare {
					if _, ok := ids[payload]; !ok {
						t.Fatalf("notification %q, want a bare job ID", payload)
					}
					continue
				}
				var m struct{ ID, Result, Error string }
				if err := json.Unmarshal([]byte(payload), &m); err != nil {
					t.Fatalf("notification %q: %v", payload, err)
				}
				if fail, ok := ids[m.ID]; !ok || fail != (m.Error != "") || fail == strings.HasPrefix(m.Result, "T") {
					t.Fatalf("notification %q: want the job's result or error", payload)
				}
			}
			var left []string
			waitForMsg(t, func() bool {
				left, _ = rdb.Keys(ctx, "job::*").Result()
				return len(left) == 0
			}, func() string { return fmt.Sprintf("job hashes left behind: %v", left) })
			info, _ := rdb.Info(ctx, "commandstats").Result()
			reads := 0
			if i := strings.Index(info, "cmdstat_hmget:calls="); i >= 0 {
				fmt.Sscanf(info[i+len("cmdstat_hmget:calls="):], "%d", &reads)
			}
			if reads != tt.wantReads {
				t.Fatalf("%d HMGETs of results, want %d", reads, tt.wantReads)
			}
		})
	}
}
