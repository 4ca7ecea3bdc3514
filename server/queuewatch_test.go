package server_test

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/internal/wstest"
	"github.com/wsgate/wsgate/server"
)

func adminGet(t *testing.T, gw *server.Gateway, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + gw.AdminAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// A queue with requests waiting and no worker is the classic "it hangs" report: the gateway must say so in its
// log, on /readyz and in /metrics, and stop saying so once a worker serves the queue.
func TestUnservedQueueIsReported(t *testing.T) {
	t.Parallel()
	for _, require := range []bool{false, true} {
		t.Run(map[bool]string{false: "warn", true: "require_worker"}[require], func(t *testing.T) {
			srv := redistest.Start(t)
			logs := &testutil.Buffer{}
			gw := startGateway(t, srv, server.Config{Admin: "127.0.0.1:0",
				Logger:     slog.New(slog.NewTextHandler(logs, nil)),
				QueueWatch: server.QueueWatch{Interval: 50 * time.Millisecond, NoWorkerAfter: 300 * time.Millisecond, RequireWorker: require}})
			if code, body := adminGet(t, gw, "/readyz"); code != 200 || strings.Contains(body, "warning") {
				t.Fatalf("readyz before any request: %d %q", code, body)
			}
			c := wstest.Dial(t, gw.URL())
			c.Send(`{"ping":1,"req_id":1}`)

			wantCode := 200
			if require {
				wantCode = 503
			}
			waitFor(t, func() bool {
				code, body := adminGet(t, gw, "/readyz")
				return code == wantCode && strings.Contains(body, "queue default: 1 jobs waiting") && strings.Contains(body, "no live worker")
			})
			_, metrics := adminGet(t, gw, "/metrics")
			for _, want := range []string{
				`wsgate_queue_jobs{list="pending",queue="default"} 1`,
				`wsgate_queue_live_workers{queue="default"} 0`,
				`wsgate_queue_unserved{queue="default"} 1`,
			} {
				if !strings.Contains(metrics, want) {
					t.Errorf("/metrics lacks %q", want)
				}
			}
			if !strings.Contains(logs.String(), "no worker is taking jobs from a queue") {
				t.Errorf("no warning logged:\n%s", logs.String())
			}

			startWorker(t, srv)
			if m := c.ReadJSON(10 * time.Second); m["ping"] != "pong" {
				t.Fatalf("the waiting request was not answered once a worker came: %v", m)
			}
			waitFor(t, func() bool {
				code, body := adminGet(t, gw, "/readyz")
				return code == 200 && !strings.Contains(body, "warning")
			})
			waitFor(t, func() bool {
				_, metrics := adminGet(t, gw, "/metrics")
				return strings.Contains(metrics, `wsgate_queue_live_workers{queue="default"} 1`) &&
					strings.Contains(metrics, `wsgate_queue_unserved{queue="default"} 0`)
			})
			if !strings.Contains(logs.String(), "queue served again") {
				t.Errorf("recovery not logged")
			}
		})
	}
}
