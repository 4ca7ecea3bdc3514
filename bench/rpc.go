package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/transport"
)

// RPCRun is one closed-loop run at one connection count.
type RPCRun struct {
	Target string `json:"target"` // gateway (mode), ws-echo, raw-redis
	Mode   string `json:"mode,omitempty"`
	loadResult
	FractionOfRedisCeiling float64 `json:"fraction_of_redis_ceiling,omitempty"`
	// CPU time per reply of each process during the measured window (µs).
	CPUus *cpuPerReply `json:"cpu_us_per_reply,omitempty"`
}

type cpuPerReply struct {
	Gateway, Workers, Redis, LoadGen float64
}

type rpcFlags struct {
	conns       []int
	inflight    int
	duration    time.Duration
	warmup      time.Duration
	workers     int
	concurrency int
	action      string
	baselines   bool
	url         string
	profile     bool
	gwArgs      []string
	out         string
}

func parseRPCFlags(name string, args []string) (*rpcFlags, []string, error) {
	f := &rpcFlags{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	conns := fs.String("conns", "1,100,1000,10000", "connection counts, comma-separated")
	modes := fs.String("modes", "simple,recoverable,reliable", "queue modes (the modes scenario)")
	fs.IntVar(&f.inflight, "inflight", 1, "requests in flight per connection (closed loop)")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "measured time per run")
	fs.DurationVar(&f.warmup, "warmup", 2*time.Second, "unmeasured time before each run")
	fs.IntVar(&f.workers, "workers", 2, "Go worker processes")
	fs.IntVar(&f.concurrency, "concurrency", 64, "jobs each worker runs at once")
	fs.StringVar(&f.action, "action", "ping", "the action requested")
	fs.BoolVar(&f.baselines, "baselines", true, "also measure the raw-Redis ceiling and the WebSocket hop alone")
	fs.StringVar(&f.out, "out", "bench/out", "directory for results")
	fs.BoolVar(&f.profile, "profile", false, "save the gateway's CPU profile of each measured window (gateway-<mode>-<conns>.cpu.pprof)")
	gwArgs := fs.String("gateway-args", "", "extra arguments for `wsgate serve`, space-separated (e.g. --session-workers=8)")
	fs.StringVar(&f.url, "url", "", "measure this running gateway (ws://...) instead of starting one (no baselines)")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if f.url != "" {
		f.baselines = false
	}
	f.gwArgs = strings.Fields(*gwArgs)
	if f.profile { // the gateway serves /debug/pprof/ only when asked
		f.gwArgs = append(f.gwArgs, "--pprof")
	}
	for _, s := range strings.Split(*conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, nil, fmt.Errorf("--conns: bad count %q", s)
		}
		f.conns = append(f.conns, n)
	}
	return f, strings.Split(*modes, ","), os.MkdirAll(f.out, 0o755)
}

// runRPC is the rpc scenario (one mode) and the modes scenario (several), with the baselines in the same run.
func runRPC(args []string, allModes bool) error {
	f, modes, err := parseRPCFlags("rpc", args)
	if err != nil {
		return err
	}
	if !allModes || f.url != "" {
		modes = modes[len(modes)-1:] // reliable unless --modes says otherwise; a running gateway has its own
	}
	var runs []RPCRun
	ceilings := map[string]float64{}
	for _, mode := range modes {
		if f.baselines {
			ceiling, err := rawRedisCeiling(mode, 16, 16, f.duration)
			if err != nil {
				return err
			}
			ceilings[mode] = ceiling
			fmt.Printf("raw-redis ceiling, %s command mix: %.0f jobs/s\n", mode, ceiling)
			runs = append(runs, RPCRun{Target: "raw-redis", Mode: mode, loadResult: loadResult{RPS: ceiling}})
		}
		gw, err := gatewayRuns(f, mode)
		if err != nil {
			return err
		}
		for i := range gw {
			if c := ceilings[mode]; c > 0 {
				gw[i].FractionOfRedisCeiling = gw[i].RPS / c
			}
		}
		runs = append(runs, gw...)
	}
	if f.baselines {
		echo, err := echoRuns(f)
		if err != nil {
			return err
		}
		runs = append(runs, echo...)
	}
	printRPCTable(runs)
	name := "rpc"
	if allModes {
		name = "modes"
	}
	if err := plotRPC(filepath.Join(f.out, name+".png"), runs); err != nil {
		return err
	}
	fmt.Printf("\nresults: %s, plot: %s\n", filepath.Join(f.out, name+".json"), filepath.Join(f.out, name+".png"))
	return writeJSON(filepath.Join(f.out, name+".json"), map[string]any{"scenario": name, "runs": runs,
		"inflight_per_conn": f.inflight, "duration_s": f.duration.Seconds(), "workers": f.workers,
		"worker_concurrency": f.concurrency})
}

func gatewayRuns(f *rpcFlags, mode string) ([]RPCRun, error) {
	if f.url != "" {
		var runs []RPCRun
		for _, n := range f.conns {
			res, err := closedLoop(f.url, n, f)
			if err != nil {
				return runs, err
			}
			runs = append(runs, RPCRun{Target: "gateway", Mode: "(running)", loadResult: res})
		}
		return runs, nil
	}
	st, cleanup, err := newStack(stackConfig{workers: f.workers, concurrency: f.concurrency, mode: mode,
		env: []string{"QUEUE_TIMEOUT=30"}, gatewayArgs: append([]string{"--compression=false"}, f.gwArgs...)})
	if err != nil {
		return nil, err
	}
	defer cleanup()
	var runs []RPCRun
	for _, n := range f.conns {
		var before, after cpuShares
		var profDone chan error
		start := func() {
			before = st.cpu()
			if f.profile {
				profDone = make(chan error, 1)
				path := filepath.Join(f.out, fmt.Sprintf("gateway-%s-%d.cpu.pprof", mode, n))
				go func() { profDone <- saveCPUProfile(st.adminAddr, path, f.duration) }()
			}
		}
		res, err := closedLoopSampled(st.wsURL, n, f, start, func() { after = st.cpu() })
		if profDone != nil {
			if perr := <-profDone; perr != nil {
				fmt.Println("  profile:", perr)
			}
		}
		if err != nil {
			return runs, fmt.Errorf("mode %s, %d connections: %w", mode, n, err)
		}
		per := func(a, b time.Duration) float64 {
			return float64((b - a).Microseconds()) / float64(max(res.Replies, 1))
		}
		cpu := &cpuPerReply{Gateway: per(before.Gateway, after.Gateway), Workers: per(before.Workers, after.Workers),
			Redis: per(before.Redis, after.Redis), LoadGen: per(before.LoadGen, after.LoadGen)}
		fmt.Printf("  CPU per reply: gateway %.0fµs, workers %.0fµs, redis %.0fµs, load generator %.0fµs\n",
			cpu.Gateway, cpu.Workers, cpu.Redis, cpu.LoadGen)
		runs = append(runs, RPCRun{Target: "gateway", Mode: mode, loadResult: res, CPUus: cpu})
	}
	return runs, nil
}

func closedLoop(url string, n int, f *rpcFlags) (loadResult, error) {
	return closedLoopSampled(url, n, f, nil, nil)
}

// closedLoopSampled is closedLoop with hooks at the start and end of the measured window.
func closedLoopSampled(url string, n int, f *rpcFlags, atStart, atEnd func()) (loadResult, error) {
	fmt.Printf("%s: %d connections × %d in flight ...\n", url, n, f.inflight)
	l, err := dialLoad(url, n, 15000, f.action, true)
	if err != nil {
		return loadResult{}, err
	}
	defer l.closeAll()
	l.atStart, l.atEnd = atStart, atEnd
	res := l.runClosedLoop(f.inflight, f.warmup, f.duration, func(s string) { fmt.Printf("\r  %s", s) })
	fmt.Printf("\r  %.0f rps, p50 %dµs p99 %dµs p99.9 %dµs, %d errors\n", res.RPS, res.P50us, res.P99us, res.P999us, res.Errors)
	return res, nil
}

// echoRuns measures the WebSocket hop alone: an echo server on the same transport, in its own process.
func echoRuns(f *rpcFlags) ([]RPCRun, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, _ := os.MkdirTemp("", "wsgate-echo-")
	defer os.RemoveAll(dir)
	p, err := startProc(dir, "echo", nil, self, "echo-server", "--listen", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, err
	}
	defer p.stop()
	if err := waitTCP(fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second); err != nil {
		return nil, err
	}
	var runs []RPCRun
	for _, n := range f.conns {
		res, err := closedLoop(fmt.Sprintf("ws://127.0.0.1:%d/ws", port), n, f)
		if err != nil {
			return runs, err
		}
		runs = append(runs, RPCRun{Target: "ws-echo", loadResult: res})
	}
	return runs, nil
}

// runEchoServer is the child process of the WebSocket-hop baseline: the gateway's transport with a handler
// that sends every message back.
func runEchoServer(args []string) error {
	fs := flag.NewFlagSet("echo-server", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	srv, err := transport.NewServer(transport.Config{}, echoHandler{})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	return srv.Serve(ln)
}

type echoHandler struct{}

func (echoHandler) OnOpen(*transport.Conn)         {}
func (echoHandler) OnClose(*transport.Conn, error) {}
func (echoHandler) OnMessage(c *transport.Conn, m transport.Message) {
	_ = c.Send(append([]byte(nil), m.Data...))
}

// rawRedisCeiling runs the Redis commands of jobs in the given mode (client submit, worker take and answer,
// client read) through plain go-redis pipelines, batch jobs per pipeline (as the gateway's client batches
// across jobs), from parallel goroutines: no WebSocket, no actors, no worker process. It is the most jobs/s
// Redis does for that command mix on this machine.
func rawRedisCeiling(mode string, parallel, batch int, d time.Duration) (float64, error) {
	dir, err := os.MkdirTemp("", "wsgate-raw-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	port, err := freePort()
	if err != nil {
		return 0, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := startProc(dir, "redis", nil, "redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir)
	if err != nil {
		return 0, err
	}
	defer p.stop()
	if err := waitTCP(addr, 10*time.Second); err != nil {
		return 0, err
	}
	rdb := redis.NewClient(&redis.Options{Addr: addr, PoolSize: parallel})
	defer rdb.Close()
	ctx := context.Background()
	take := redis.NewScript(`local h = redis.call('HGETALL', KEYS[1]) if #h > 0 then redis.call('HSET', KEYS[1], '_started', ARGV[1], '_worker', ARGV[2]) end return h`)
	update := redis.NewScript(`if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end redis.call('HSET', KEYS[1], unpack(ARGV)) return 1`)
	take.Load(ctx, rdb)
	update.Load(ctx, rdb)
	var jobs atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for g := 0; g < parallel; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			pending := fmt.Sprintf("jobs::pending%d", g) // a list per goroutine: its own jobs come back
			ids := make([]string, batch)
			for round := 0; time.Now().Before(deadline); round++ {
				for i := range ids {
					ids[i] = fmt.Sprintf("%d-%d-%d", g, round, i)
				}
				pipe := func(f func(p redis.Pipeliner, id string)) {
					rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
						for _, id := range ids {
							f(p, id)
						}
						return nil
					})
				}
				if mode == "simple" {
					pipe(func(p redis.Pipeliner, id string) {
						p.LPush(ctx, pending, `{"id":"`+id+`","reply_to":"c","text":{"name":"ping","params":"{\"args\":{\"ping\":1}}"}}`)
					})
					pipe(func(p redis.Pipeliner, id string) {
						p.RPop(ctx, pending)
						p.Publish(ctx, "client::c", `{"id":"`+id+`","result":"T{\"success\":1,\"result\":\"pong\"}"}`)
					})
					jobs.Add(int64(batch))
					continue
				}
				pipe(func(p redis.Pipeliner, id string) { // the client's submit
					key := "job::" + id
					p.HSet(ctx, key, "_reply_to", "c", "_queued", "1", "text_name", "ping", "text_params", `{"args":{"ping":1}}`)
					p.Expire(ctx, key, 330*time.Second)
					p.LPush(ctx, pending, id)
				})
				pipe(func(p redis.Pipeliner, id string) { // the worker's fetch and take
					if mode == "reliable" {
						p.LMove(ctx, pending, "jobs::processing", "RIGHT", "LEFT")
					} else {
						p.RPop(ctx, pending)
					}
					take.EvalSha(ctx, p, []string{"job::" + id}, "1", "w")
				})
				pipe(func(p redis.Pipeliner, id string) { // the worker's answer
					update.EvalSha(ctx, p, []string{"job::" + id}, "_processed", "1", "result", `T{"success":1,"result":"pong"}`)
					p.Publish(ctx, "client::c", id)
					if mode == "reliable" {
						p.LRem(ctx, "jobs::processing", 1, id)
					}
				})
				pipe(func(p redis.Pipeliner, id string) { // the client's read
					p.HMGet(ctx, "job::"+id, "result", "_error", "_reply_to")
					p.Del(ctx, "job::"+id)
				})
				jobs.Add(int64(batch))
			}
		}(g)
	}
	wg.Wait()
	return float64(jobs.Load()) / d.Seconds(), nil
}

func printRPCTable(runs []RPCRun) {
	fmt.Printf("\n%-11s %-12s %7s %10s %9s %9s %9s %9s %9s %7s %8s\n", "target", "mode", "conns", "rps",
		"p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs", "errors", "of redis")
	for _, r := range runs {
		frac := ""
		if r.FractionOfRedisCeiling > 0 {
			frac = fmt.Sprintf("%.0f%%", 100*r.FractionOfRedisCeiling)
		}
		conns := strconv.Itoa(r.Connections)
		if r.Target == "raw-redis" {
			conns = "-"
		}
		fmt.Printf("%-11s %-12s %7s %10.0f %9d %9d %9d %9d %9d %7d %8s\n", r.Target, r.Mode, conns, r.RPS,
			r.P50us, r.P90us, r.P99us, r.P999us, r.MaxUs, r.Errors, frac)
	}
}
