package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// workerAdmin is `wsgate worker --admin ADDR`: /healthz and /metrics of a worker process.
type workerAdmin struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// startWorkerAdmin listens on addr and serves until shutdown. healthy reports whether the worker can reach
// Redis.
func startWorkerAdmin(addr string, gatherer prometheus.Gatherer, healthy func(context.Context) error, log *slog.Logger) (*workerAdmin, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if err := healthy(ctx); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("worker: admin listen: %w", err)
	}
	a := &workerAdmin{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("worker admin listener failed", "err", err)
		}
	}()
	return a, nil
}

// addr is where the admin listener listens, or "off".
func (a *workerAdmin) addr() string {
	if a == nil {
		return "off"
	}
	return a.ln.Addr().String()
}

// Shutdown stops the listener and waits for its goroutine.
func (a *workerAdmin) Shutdown(ctx context.Context) error {
	err := a.srv.Shutdown(ctx)
	<-a.done
	return err
}
