package server

import (
	"context"
	"embed"
	"encoding/json"
	"io/fs"
	"net"
	"net/http"
	"sort"
	"time"
)

//go:embed console
var consoleFiles embed.FS

// consoleStats is what the console page polls (/console/stats.json).
type consoleStats struct {
	AtMs          int64          `json:"at_ms"`
	Ready         bool           `json:"ready"`
	NotReady      string         `json:"not_ready,omitempty"`
	Connections   int64          `json:"connections"`
	Requests      uint64         `json:"requests"`
	LatencySumMs  float64        `json:"latency_sum_ms"`
	PendingJobs   int64          `json:"pending_jobs"`
	Timeouts      uint64         `json:"timeouts"`
	WebSocketPort string         `json:"websocket_port"`
	WebSocketPath string         `json:"websocket_path"`
	Queues        []consoleQueue `json:"queues"`
}

type consoleQueue struct {
	Name            string  `json:"name"`
	List            string  `json:"list"`
	Pending         int64   `json:"pending"`
	Processing      int64   `json:"processing"`
	Dead            int64   `json:"dead"`
	OldestPendingMs int64   `json:"oldest_pending_ms"`
	LiveWorkers     int     `json:"live_workers"`
	JobsPerSecond   float64 `json:"jobs_per_second"`
	Unserved        bool    `json:"unserved"`
}

// mountConsole serves the browser console: static files embedded in the binary under /console/, and the
// figures they poll. The page itself holds no data; stats.json is guarded like every admin endpoint.
func (g *Gateway) mountConsole(mux *http.ServeMux, guard func(http.Handler) http.Handler) {
	static, _ := fs.Sub(consoleFiles, "console")
	mux.Handle("GET /console/", http.StripPrefix("/console/", http.FileServerFS(static)))
	mux.Handle("GET /console/stats.json", guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(g.consoleStats(r.Context()))
	})))
}

func (g *Gateway) consoleStats(ctx context.Context) consoleStats {
	st := g.Stats()
	_, port, _ := net.SplitHostPort(g.ln.Addr().String())
	out := consoleStats{AtMs: time.Now().UnixMilli(), Connections: st.Transport.Connections,
		Requests: g.metrics.answered.Load(), LatencySumMs: float64(g.metrics.latencySum.Load()) / 1e6,
		PendingJobs: st.Registry.Pending, Timeouts: st.Registry.TimedOut, WebSocketPort: port, WebSocketPath: g.path(),
		Queues: []consoleQueue{}}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := g.Ready(ctx); err != nil {
		out.NotReady = err.Error()
	} else {
		out.Ready = true
	}
	g.watch.mu.Lock()
	for name, q := range g.watch.samples {
		out.Queues = append(out.Queues, consoleQueue{Name: name, List: q.Queue, Pending: q.Pending + q.Simple,
			Processing: q.Processing, Dead: q.Dead, OldestPendingMs: q.OldestPendingAge.Milliseconds(),
			LiveWorkers: q.LiveWorkers, JobsPerSecond: q.JobsPerSecond, Unserved: g.watch.unservedProblem(q) != ""})
	}
	g.watch.mu.Unlock()
	sort.Slice(out.Queues, func(i, j int) bool { return out.Queues[i].Name < out.Queues[j].Name })
	return out
}
