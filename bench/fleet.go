package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"gonum.org/v1/plot/plotter"
)

// The fleet scenario (issue 13): several gateways on a Redis Cluster behind HAProxy, as a site runs them.
//
//	A capacity    S sessions spread over G gateways, each answering a ping once all are connected; RSS per session
//	B throughput  closed loop at 1,000 and 10,000 connections over the fleet, and the same on one gateway with one
//	              Redis; replies/s, latency, Redis CPU per job on each master
//	C rolling     continuous load through HAProxy, each gateway in turn SIGTERMed and restarted; every request
//	              sent gets exactly one answer, every client is connected again within the bound

// FleetResult is what `bench fleet` writes (fleet.json).
type FleetResult struct {
	Scenario   string            `json:"scenario"`
	Machine    map[string]string `json:"machine"`
	Gateways   int               `json:"gateways"`
	Workers    int               `json:"workers"`
	Masters    int               `json:"redis_masters"`
	Capacity   *CapacityResult   `json:"capacity,omitempty"`
	Throughput []ThroughputRun   `json:"throughput,omitempty"`
	Rolling    *RollingResult    `json:"rolling,omitempty"`
}

type fleetFlags struct {
	scenarios   map[string]bool
	gateways    int
	workers     int
	concurrency int
	sessions    int
	perProc     int
	conns       []int
	duration    time.Duration
	warmup      time.Duration
	rollClients int
	think       time.Duration
	rollSettle  time.Duration
	gapBound    time.Duration
	drain       time.Duration
	settle      time.Duration
	out         string
	bin         string // a built wsgate (tests); "" builds one
}

func parseFleetFlags(args []string) (*fleetFlags, error) {
	f := &fleetFlags{scenarios: map[string]bool{}}
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	sc := fs.String("scenarios", "capacity,throughput,rolling", "which of capacity, throughput, rolling to run")
	fs.IntVar(&f.gateways, "gateways", 8, "gateway processes")
	fs.IntVar(&f.workers, "workers", 2, "worker processes")
	fs.IntVar(&f.concurrency, "concurrency", 64, "jobs each worker runs at once")
	fs.IntVar(&f.sessions, "sessions", 150000, "capacity: sessions held over the fleet")
	fs.IntVar(&f.perProc, "per-process", 9500, "capacity: connections per client process (one source address each)")
	conns := fs.String("conns", "1000,10000", "throughput: connection counts")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "throughput: measured time per run")
	fs.DurationVar(&f.warmup, "warmup", 2*time.Second, "throughput: unmeasured time before each run")
	fs.IntVar(&f.rollClients, "roll-clients", 2000, "rolling: clients connected through HAProxy")
	fs.DurationVar(&f.think, "think", 100*time.Millisecond, "rolling: each client's pause between an answer and its next request")
	fs.DurationVar(&f.rollSettle, "roll-settle", 3*time.Second, "rolling: load time before the first and after each restart")
	fs.DurationVar(&f.gapBound, "reconnect-bound", 2*time.Second, "rolling: a client must be connected again within this")
	fs.DurationVar(&f.drain, "drain-timeout", 10*time.Second, "the gateways' --drain-timeout")
	fs.DurationVar(&f.settle, "settle", 10*time.Second, "capacity: wait after the pings before sampling memory")
	fs.StringVar(&f.out, "out", "bench/out", "directory for results")
	fs.StringVar(&f.bin, "wsgate", "", "a built wsgate binary (default: build this module's)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, s := range strings.Split(*sc, ",") {
		s = strings.TrimSpace(s)
		switch s {
		case "capacity", "throughput", "rolling":
			f.scenarios[s] = true
		default:
			return nil, fmt.Errorf("--scenarios: unknown %q (capacity, throughput, rolling)", s)
		}
	}
	for _, s := range strings.Split(*conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("--conns: bad count %q", s)
		}
		f.conns = append(f.conns, n)
	}
	if f.gateways < 1 || f.workers < 1 {
		return nil, fmt.Errorf("--gateways and --workers must be at least 1")
	}
	// The fd limit: each gateway holds its share of the sessions, each client process its own.
	limit := fdLimit()
	if f.scenarios["capacity"] {
		per := (f.sessions + f.gateways - 1) / f.gateways
		if per+300 > limit {
			return nil, fmt.Errorf("fd limit: %d sessions over %d gateways is %d per gateway, over the limit of %d open "+
				"files per process (RLIMIT_NOFILE) less 300 for Redis and listeners; add --gateways or raise ulimit -n",
				f.sessions, f.gateways, per, limit)
		}
		if f.perProc+100 > limit {
			return nil, fmt.Errorf("fd limit: --per-process %d is over the limit of %d open files per process less 100",
				f.perProc, limit)
		}
	}
	if f.scenarios["rolling"] && 2*f.rollClients+300 > limit {
		return nil, fmt.Errorf("fd limit: %d rolling clients need %d fds in HAProxy (2 each), the limit is %d",
			f.rollClients, 2*f.rollClients+300, limit)
	}
	return f, os.MkdirAll(f.out, 0o755)
}

func runFleet(args []string) error {
	f, err := parseFleetFlags(args)
	if err != nil {
		return err
	}
	// SIGINT/SIGTERM: stop what we started, then exit.
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	res, err := fleetRun(ctx, f)
	if ctx.Err() != nil {
		err = fmt.Errorf("interrupted, every process it started is stopped (%v)", err)
	}
	if res != nil {
		path := filepath.Join(f.out, "fleet.json")
		if werr := writeJSON(path, res); werr != nil && err == nil {
			err = werr
		}
		fmt.Println("results:", path)
	}
	return err
}

// fleetRun runs the chosen scenarios on one fleet (and the single-gateway baseline after the fleet stopped).
func fleetRun(ctx context.Context, f *fleetFlags) (*FleetResult, error) {
	dir, err := os.MkdirTemp("", "wsgate-fleet-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := f.bin
	if bin == "" {
		if bin, err = buildWsgate(dir); err != nil {
			return nil, err
		}
	}
	res := &FleetResult{Scenario: "fleet", Machine: machine(), Gateways: f.gateways, Workers: f.workers, Masters: 3}
	cfg := fleetConfig{gateways: f.gateways, workers: f.workers, concurrency: f.concurrency,
		gatewayArgs: append([]string{"--drain-timeout", f.drain.String()}, loadGatewayArgs...),
		haproxy:     f.scenarios["rolling"], lbMaxConn: f.rollClients + 100}
	fmt.Printf("fleet: starting a 3-master Redis Cluster, %d workers, %d gateways%s ...\n", f.workers, f.gateways,
		map[bool]string{true: ", HAProxy", false: ""}[cfg.haproxy])
	fl, err := startFleet(dir, bin, cfg)
	if err != nil {
		return nil, err
	}
	defer fl.stop()
	go func() { <-ctx.Done(); fl.stop() }() // a signal: stop everything; the scenario then fails
	fmt.Printf("fleet: cluster %s; gateways %d ready\n", strings.Join(fl.addrs, ","), len(fl.gws))
	if f.scenarios["capacity"] {
		c, err := capacity(ctx, fl, f, dir)
		res.Capacity = c
		if err != nil {
			return res, fmt.Errorf("capacity: %w", err)
		}
		if f.scenarios["throughput"] || f.scenarios["rolling"] {
			quiesce(fl, c)
		}
	}
	if f.scenarios["throughput"] {
		for _, n := range f.conns {
			r, err := fleetThroughput(fl, f, n)
			if err != nil {
				return res, fmt.Errorf("throughput, fleet, %d connections: %w", n, err)
			}
			res.Throughput = append(res.Throughput, r)
		}
	}
	if f.scenarios["rolling"] {
		r, err := rolling(ctx, fl, f)
		res.Rolling = r
		if err != nil {
			return res, fmt.Errorf("rolling deploy: %w", err)
		}
	}
	fl.stop()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if f.scenarios["throughput"] {
		runs, err := singleThroughput(f)
		res.Throughput = append(res.Throughput, runs...)
		if err != nil {
			return res, fmt.Errorf("throughput, one gateway: %w", err)
		}
		printThroughput(res.Throughput)
		if err := plotThroughput(filepath.Join(f.out, "fleet-throughput.png"), res.Throughput); err != nil {
			return res, err
		}
	}
	return res, nil
}

// loadGatewayArgs are what every gateway under the harness's load runs with, the fleet's and the single one:
// the load generator opens 64 connections at once from one source address, at the default per-address
// handshake limit (64), where one more upgrade in progress gets its socket closed.
var loadGatewayArgs = []string{"--handshake-timeout", "30s", "--max-handshakes-per-ip", "256"}

func machine() map[string]string {
	m := map[string]string{"cpus": strconv.Itoa(runtime.NumCPU()), "go": runtime.Version(),
		"fd_limit": strconv.Itoa(fdLimit()), "date": time.Now().UTC().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m["memory"] = strings.Join(strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1:], " ")
	}
	if out, err := exec.Command("redis-server", "--version").Output(); err == nil {
		m["redis"] = strings.TrimSpace(string(out))
	}
	if out, err := exec.Command("haproxy", "-v").Output(); err == nil {
		m["haproxy"] = strings.SplitN(string(out), "\n", 2)[0]
	}
	return m
}

// CapacityResult is scenario A.
type CapacityResult struct {
	Sessions        int              `json:"sessions"`
	Failed          int              `json:"failed"`
	ClientProcesses int              `json:"client_processes"`
	ConnectSeconds  float64          `json:"connect_seconds"`
	PingOK          int              `json:"ping_ok"`
	PingFailed      int              `json:"ping_failed"`
	PingSeconds     float64          `json:"ping_seconds"`
	Gateways        []GatewayFootprt `json:"gateways"`
	FleetRSSPerSess float64          `json:"fleet_gateway_rss_bytes_per_session"`
	RedisRSS        []int64          `json:"redis_rss_bytes"`
	WorkersRSS      int64            `json:"workers_rss_bytes"`
	TotalRSS        int64            `json:"total_rss_bytes"` // gateways + workers + Redis
}

type GatewayFootprt struct {
	Name          string  `json:"name"`
	Sessions      int     `json:"sessions"`
	RSSBefore     int64   `json:"rss_before_bytes"`
	RSSAfter      int64   `json:"rss_after_bytes"`
	RSSPerSession float64 `json:"rss_bytes_per_session"`
	FDsBefore     int     `json:"fds_before"`
	FDs           int     `json:"fds"`
}

// gaugeConnections reads wsgate_connections from a gateway's /metrics; -1 if it cannot.
func gaugeConnections(admin string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body, err := httpGet(ctx, "http://"+admin+"/metrics")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, "wsgate_connections "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return int(f)
			}
		}
	}
	return -1
}

func fds(pid int) int {
	d, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(d)
}

// capacity is scenario A: client processes, one source address each, open S sessions spread round robin over
// the gateways; once all are open every one sends a ping and must get its pong.
func capacity(ctx context.Context, fl *fleet, f *fleetFlags, dir string) (*CapacityResult, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var urls []string
	res := &CapacityResult{}
	for _, g := range fl.gws {
		urls = append(urls, g.url())
		res.Gateways = append(res.Gateways, GatewayFootprt{Name: g.name, RSSBefore: rss(g.p.pid()), FDsBefore: fds(g.p.pid())})
	}
	procs := (f.sessions + f.perProc - 1) / f.perProc
	res.ClientProcesses = procs
	fmt.Printf("capacity: %d sessions over %d gateways from %d client processes ...\n", f.sessions, len(fl.gws), procs)
	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		lines *bufio.Scanner
	}
	var children []*child
	defer func() {
		for _, c := range children {
			c.stdin.Close()
		}
		for _, c := range children {
			done := make(chan struct{})
			go func() { c.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				c.cmd.Process.Kill()
				<-done
			}
		}
	}()
	t0 := time.Now()
	left := f.sessions
	for i := 0; i < procs; i++ {
		k := min(f.perProc, left)
		left -= k
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("client%d.log", i)))
		if err != nil {
			return res, err
		}
		defer logf.Close()
		// Rotate the URL list so that each gateway gets an even share whatever k is.
		rot := append(append([]string{}, urls[i%len(urls):]...), urls[:i%len(urls)]...)
		cmd := exec.Command(self, "fleet-client", "--urls", strings.Join(rot, ","),
			"--src", fmt.Sprintf("127.0.0.%d", 2+i), "--conns", strconv.Itoa(k))
		cmd.Stderr = logf
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			return res, fmt.Errorf("client process %d: %w", i, err)
		}
		children = append(children, &child{cmd, stdin, bufio.NewScanner(stdout)})
	}
	readLine := func(c *child, i int, want string) ([]string, error) {
		line := make(chan bool, 1)
		go func() { line <- c.lines.Scan() }()
		select {
		case ok := <-line:
			if !ok || !strings.HasPrefix(c.lines.Text(), want+" ") {
				log, _ := os.ReadFile(filepath.Join(dir, fmt.Sprintf("client%d.log", i)))
				return nil, fmt.Errorf("client process %d ended before %q: %s", i, want, lastLines(log, 5))
			}
			return strings.Fields(c.lines.Text()), nil
		case <-time.After(10 * time.Minute):
			return nil, fmt.Errorf("client process %d: no %q after 10 minutes", i, want)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	for i, c := range children {
		w, err := readLine(c, i, "ready")
		if err != nil {
			return res, err
		}
		ok, _ := strconv.Atoi(w[1])
		bad, _ := strconv.Atoi(w[2])
		res.Sessions += ok
		res.Failed += bad
	}
	res.ConnectSeconds = time.Since(t0).Seconds()
	fmt.Printf("capacity: %d sessions open (%d failed) in %.1fs; pinging every one ...\n", res.Sessions, res.Failed, res.ConnectSeconds)
	t1 := time.Now()
	for _, c := range children {
		fmt.Fprintln(c.stdin, "ping")
	}
	for i, c := range children {
		w, err := readLine(c, i, "pinged")
		if err != nil {
			return res, err
		}
		ok, _ := strconv.Atoi(w[1])
		bad, _ := strconv.Atoi(w[2])
		res.PingOK += ok
		res.PingFailed += bad
	}
	res.PingSeconds = time.Since(t1).Seconds()
	fmt.Printf("capacity: %d pongs (%d failed) in %.1fs; settling %v before sampling memory ...\n", res.PingOK, res.PingFailed, res.PingSeconds, f.settle)
	time.Sleep(f.settle)
	var sumBefore, sumAfter int64
	for i, g := range fl.gws {
		fp := &res.Gateways[i]
		fp.RSSAfter = rss(g.p.pid())
		fp.FDs = fds(g.p.pid())
		fp.Sessions = gaugeConnections(g.admin)
		if fp.Sessions < 0 {
			fp.Sessions = fp.FDs - fp.FDsBefore // one socket per session (and the odd health check)
		}
		if fp.Sessions > 0 {
			fp.RSSPerSession = float64(fp.RSSAfter-fp.RSSBefore) / float64(fp.Sessions)
		}
		sumBefore += fp.RSSBefore
		sumAfter += fp.RSSAfter
		res.TotalRSS += fp.RSSAfter
	}
	res.FleetRSSPerSess = float64(sumAfter-sumBefore) / float64(max(res.Sessions, 1))
	for _, m := range fl.masters {
		r := rss(m.pid())
		res.RedisRSS = append(res.RedisRSS, r)
		res.TotalRSS += r
	}
	for _, w := range fl.workers {
		res.WorkersRSS += rss(w.pid())
	}
	res.TotalRSS += res.WorkersRSS
	fmt.Printf("capacity: gateway RSS per session %.0f B over the fleet; total RSS (gateways, workers, Redis) %.0f MiB\n",
		res.FleetRSSPerSess, float64(res.TotalRSS)/(1<<20))
	for _, g := range res.Gateways {
		fmt.Printf("  %-4s %6d sessions  RSS %6.0f MiB  %5.0f B/session\n", g.Name, g.Sessions, float64(g.RSSAfter)/(1<<20), g.RSSPerSession)
	}
	if res.Failed > 0 || res.PingFailed > 0 {
		return res, fmt.Errorf("%d connections failed to open and %d pings failed (client logs in the run directory)",
			res.Failed, res.PingFailed)
	}
	return res, nil
}

// quiesce waits (up to a minute) until the gateways have closed the capacity scenario's sessions, and 5 s
// more, so that the next scenario does not measure their teardown.
func quiesce(fl *fleet, c *CapacityResult) {
	deadline := time.Now().Add(time.Minute)
	for i, g := range fl.gws {
		for i < len(c.Gateways) && fds(g.p.pid()) > c.Gateways[i].FDsBefore+50 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
	}
	time.Sleep(5 * time.Second)
}

// ThroughputRun is one closed-loop run of scenario B.
type ThroughputRun struct {
	Target string `json:"target"` // fleet (G gateways, Cluster) or single (1 gateway, 1 Redis)
	loadResult
	CPUus        map[string]float64 `json:"cpu_us_per_reply"`
	RedisCPUusPM []float64          `json:"redis_cpu_us_per_job_per_master,omitempty"`
	// Redis commands (total_commands_processed, which counts the calls inside Lua scripts) per job, per master.
	RedisOpsPM []float64 `json:"redis_commands_per_job_per_master,omitempty"`
}

// redisCommands reads total_commands_processed of each Redis.
func redisCommands(addrs []string) []int64 {
	var out []int64
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		info, _ := c.Info(context.Background(), "stats").Result()
		c.Close()
		var n int64
		for _, l := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "total_commands_processed:"); ok {
				n, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		out = append(out, n)
	}
	return out
}

func opsPerJob(before, after []int64, jobs int64) []float64 {
	var out []float64
	for i := range before {
		out = append(out, float64(after[i]-before[i])/float64(max(jobs, 1)))
	}
	return out
}

func fleetThroughput(fl *fleet, f *fleetFlags, n int) (ThroughputRun, error) {
	var urls []string
	for _, g := range fl.gws {
		urls = append(urls, g.url())
	}
	fmt.Printf("throughput: fleet (%d gateways, Cluster), %d connections ...\n", len(urls), n)
	l, err := dialLoadURLs(urls, n, 15000, "ping", true)
	if err != nil {
		return ThroughputRun{}, err
	}
	defer l.closeAll()
	var before, after fleetCPU
	var ops0, ops1 []int64
	l.atStart = func() { ops0 = redisCommands(fl.addrs); before = fl.cpu() }
	l.atEnd = func() { after = fl.cpu(); ops1 = redisCommands(fl.addrs) }
	res := l.runClosedLoop(1, f.warmup, f.duration, nil)
	r := ThroughputRun{Target: fmt.Sprintf("fleet (%d gateways, 3-master Cluster)", len(urls)), loadResult: res,
		RedisOpsPM: opsPerJob(ops0, ops1, res.Replies)}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(max(res.Replies, 1)) }
	var redis time.Duration
	for i := range after.Masters {
		d := after.Masters[i] - before.Masters[i]
		redis += d
		r.RedisCPUusPM = append(r.RedisCPUusPM, per(d))
	}
	r.CPUus = map[string]float64{"gateways": per(after.Gateways - before.Gateways), "workers": per(after.Workers - before.Workers),
		"redis": per(redis), "load_generator": per(after.LoadGen - before.LoadGen)}
	fmt.Printf("  %.0f replies/s, p50 %dµs p99 %dµs p99.9 %dµs, %d errors; CPU µs/reply %v; Redis per master %v\n",
		res.RPS, res.P50us, res.P99us, res.P999us, res.Errors, fmtCPU(r.CPUus), fmtFloats(r.RedisCPUusPM))
	return r, nil
}

// singleThroughput is the baseline of scenario B: one gateway, one Redis, the same workers.
func singleThroughput(f *fleetFlags) ([]ThroughputRun, error) {
	st, cleanup, err := newStack(stackConfig{workers: f.workers, concurrency: f.concurrency,
		env: []string{"QUEUE_TIMEOUT=30"}, gatewayArgs: append([]string{"--compression=false"}, loadGatewayArgs...)})
	if err != nil {
		return nil, err
	}
	defer cleanup()
	var runs []ThroughputRun
	for _, n := range f.conns {
		fmt.Printf("throughput: one gateway, one Redis, %d connections ...\n", n)
		var before, after cpuShares
		var ops0, ops1 []int64
		l, err := dialLoad(st.wsURL, n, 15000, "ping", true)
		if err != nil {
			return runs, err
		}
		l.atStart = func() { ops0 = redisCommands([]string{st.redisAddr}); before = st.cpu() }
		l.atEnd = func() { after = st.cpu(); ops1 = redisCommands([]string{st.redisAddr}) }
		res := l.runClosedLoop(1, f.warmup, f.duration, nil)
		l.closeAll()
		per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(max(res.Replies, 1)) }
		r := ThroughputRun{Target: "single (1 gateway, 1 Redis)", loadResult: res,
			CPUus: map[string]float64{"gateways": per(after.Gateway - before.Gateway), "workers": per(after.Workers - before.Workers),
				"redis": per(after.Redis - before.Redis), "load_generator": per(after.LoadGen - before.LoadGen)}}
		r.RedisCPUusPM = []float64{r.CPUus["redis"]}
		r.RedisOpsPM = opsPerJob(ops0, ops1, res.Replies)
		fmt.Printf("  %.0f replies/s, p50 %dµs p99 %dµs p99.9 %dµs, %d errors; CPU µs/reply %v\n",
			res.RPS, res.P50us, res.P99us, res.P999us, res.Errors, fmtCPU(r.CPUus))
		runs = append(runs, r)
	}
	return runs, nil
}

func fmtCPU(m map[string]float64) string {
	return fmt.Sprintf("gateways %.0f, workers %.0f, redis %.0f, loadgen %.0f", m["gateways"], m["workers"], m["redis"], m["load_generator"])
}

func fmtFloats(v []float64) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprintf("%.1f", x))
	}
	return "[" + strings.Join(s, " ") + "]"
}

func printThroughput(runs []ThroughputRun) {
	fmt.Printf("\n%-40s %7s %9s %8s %8s %8s %7s %8s %8s %8s  %s  %s\n", "target", "conns", "replies/s", "p50 µs", "p99 µs",
		"p99.9 µs", "errors", "gw µs", "wk µs", "redis µs", "redis µs/job per master", "redis commands/job per master")
	for _, r := range runs {
		fmt.Printf("%-40s %7d %9.0f %8d %8d %8d %7d %8.0f %8.0f %8.0f  %s  %s\n", r.Target, r.Connections, r.RPS, r.P50us,
			r.P99us, r.P999us, r.Errors, r.CPUus["gateways"], r.CPUus["workers"], r.CPUus["redis"], fmtFloats(r.RedisCPUusPM),
			fmtFloats(r.RedisOpsPM))
	}
}

func plotThroughput(path string, runs []ThroughputRun) error {
	by := map[string]*series{}
	var order []string
	for _, r := range runs {
		s := by[r.Target]
		if s == nil {
			s = &series{name: r.Target}
			by[r.Target] = s
			order = append(order, r.Target)
		}
		s.xy = append(s.xy, plotter.XY{X: float64(r.Connections), Y: r.RPS})
	}
	var ss []series
	for _, n := range order {
		ss = append(ss, *by[n])
	}
	return linePlot(path, "fleet against one gateway: closed-loop replies/s", "connections", "replies/s", true, ss)
}
