package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// runRate is the open-loop scenario: a fixed request rate, stepped up to find the knee where latency climbs.
func runRate(args []string) error {
	fs := flag.NewFlagSet("rate", flag.ContinueOnError)
	conns := fs.Int("conns", 1000, "connections the rate is spread over")
	rates := fs.String("rates", "500,1000,2000,3000,4000,5000,6000,8000", "offered requests/s, one step each")
	step := fs.Duration("step", 8*time.Second, "measured time per step")
	warmup := fs.Duration("warmup", 2*time.Second, "unmeasured time before each step")
	mode := fs.String("mode", "reliable", "queue mode")
	workers := fs.Int("workers", 2, "Go worker processes")
	out := fs.String("out", "bench/out", "directory for results")
	url := fs.String("url", "", "measure this running gateway (ws://...) instead of starting one")
	gwArgs := fs.String("gateway-args", "", "extra arguments for `wsgate serve`, space-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	os.MkdirAll(*out, 0o755)
	target := *url
	if target == "" {
		st, cleanup, err := newStack(stackConfig{workers: *workers, concurrency: 64, mode: *mode,
			env: []string{"QUEUE_TIMEOUT=30"}, gatewayArgs: append([]string{"--compression=false"}, strings.Fields(*gwArgs)...)})
		if err != nil {
			return err
		}
		defer cleanup()
		target = st.wsURL
	}
	var steps []loadResult
	for _, s := range strings.Split(*rates, ",") {
		rate, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || rate <= 0 {
			return fmt.Errorf("--rates: bad rate %q", s)
		}
		l, err := dialLoad(target, *conns, 15000, "ping", false)
		if err != nil {
			return err
		}
		res := l.runOpenLoop(rate, *warmup, *step)
		l.closeAll()
		fmt.Printf("offered %6.0f/s: got %6.0f/s  p50 %6dµs  p90 %6dµs  p99 %7dµs  p99.9 %7dµs  max %7dµs  errors %d\n",
			rate, res.RPS, res.P50us, res.P90us, res.P99us, res.P999us, res.MaxUs, res.Errors)
		steps = append(steps, res)
	}
	if err := plotRate(filepath.Join(*out, "rate.png"), steps); err != nil {
		return err
	}
	return writeJSON(filepath.Join(*out, "rate.json"), map[string]any{"scenario": "rate", "mode": *mode,
		"connections": *conns, "steps": steps})
}
