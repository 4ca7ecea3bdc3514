package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// The fleet's processes: a Redis Cluster of three masters, G gateways, W workers and, optionally, HAProxy in
// front of the gateways. Everything started here is stopped by fleet.stop, which is safe to call twice and is
// deferred by every caller (and run on SIGINT/SIGTERM by runFleet).

// fproc is a child process with a waiter, so that the harness can tell "exited" from "still starting" and can
// stop it (signal, then SIGKILL) without waiting on it twice.
type fproc struct {
	*proc
	done   chan struct{}
	exitMu sync.Mutex
	exit   error
}

func startFProc(dir, name string, env []string, bin string, args ...string) (*fproc, error) {
	p, err := startProc(dir, name, env, bin, args...)
	if err != nil {
		return nil, err
	}
	fp := &fproc{proc: p, done: make(chan struct{})}
	go func() {
		err := p.cmd.Wait()
		fp.exitMu.Lock()
		fp.exit = err
		fp.exitMu.Unlock()
		close(fp.done)
	}()
	return fp, nil
}

func (p *fproc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// why says how the process ended, with the last lines of its log.
func (p *fproc) why() string {
	p.exitMu.Lock()
	e := p.exit
	p.exitMu.Unlock()
	log, _ := os.ReadFile(p.out.Name())
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	if len(lines) > 5 {
		lines = lines[len(lines)-5:]
	}
	return fmt.Sprintf("%v; last lines of %s:\n  %s", e, p.out.Name(), strings.Join(lines, "\n  "))
}

// signalStop sends sig and waits up to d for the exit, then kills. It returns how long the exit took.
func (p *fproc) signalStop(sig os.Signal, d time.Duration) time.Duration {
	t0 := time.Now()
	if !p.exited() {
		_ = p.cmd.Process.Signal(sig)
		select {
		case <-p.done:
		case <-time.After(d):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	return time.Since(t0)
}

func (p *fproc) stop() {
	p.signalStop(syscall.SIGTERM, 20*time.Second)
	p.out.Close()
}

type fleetConfig struct {
	gateways    int
	workers     int
	concurrency int      // per worker
	mode        string   // queue mode
	gatewayArgs []string // extra `wsgate serve` arguments
	haproxy     bool     // put HAProxy in front
	lbMaxConn   int      // HAProxy's maxconn (its fd limit is set from it)
	checkInter  time.Duration
}

type fleetGateway struct {
	name   string
	p      *fproc
	port   int
	admin  string
	args   []string
	starts int
}

func (g *fleetGateway) url() string { return fmt.Sprintf("ws://%s:%d/ws", gatewayHost, g.port) }

// gatewayHost is the loopback address the gateways listen on. Not 127.0.0.1: every outgoing connection on
// this machine (HAProxy's to the gateways, the gateways' to Redis, other people's tests) takes its local port
// from 127.0.0.1's ephemeral range, and one of them can take a stopped gateway's port before it is started
// again ("bind: address already in use"). Nothing connects from 127.0.3.1, so its ports stay ours.
const gatewayHost = "127.0.3.1"

// freePortOn is a free port on host.
func freePortOn(host string) (int, error) {
	l, err := net.Listen("tcp", host+":0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type fleet struct {
	cfg      fleetConfig
	dir, bin string
	masters  []*fproc
	addrs    []string // the masters' host:port
	workers  []*fproc
	gws      []*fleetGateway
	lb       *fproc
	lbURL    string
	lbStats  string // HAProxy's stats listener (host:port)
	stopOnce sync.Once
}

// startFleet starts the cluster, the workers, the gateways (each ready on /readyz) and HAProxy. On an error
// everything started so far is stopped and the error names what failed.
func startFleet(dir, bin string, cfg fleetConfig) (_ *fleet, err error) {
	f := &fleet{cfg: cfg, dir: dir, bin: bin}
	defer func() {
		if err != nil {
			f.stop()
		}
	}()
	if cfg.mode == "" {
		cfg.mode = "reliable"
		f.cfg.mode = "reliable"
	}
	if err := f.startCluster(3); err != nil {
		return nil, err
	}
	cluster := strings.Join(f.addrs, ",")
	for i := 0; i < cfg.workers; i++ {
		w, err := startFProc(dir, fmt.Sprintf("worker%d", i), nil, bin, "worker", "--demo",
			"--redis-cluster-addrs", cluster, "--prefix", "{jobs}", "--mode", cfg.mode,
			"--concurrency", strconv.Itoa(max(cfg.concurrency, 1)), "--admin", "off", "--log-level", "warn")
		if err != nil {
			return nil, err
		}
		f.workers = append(f.workers, w)
	}
	for i := 0; i < cfg.gateways; i++ {
		port, err := freePortOn(gatewayHost)
		if err != nil {
			return nil, err
		}
		aport, err := freePortOn(gatewayHost)
		if err != nil {
			return nil, err
		}
		g := &fleetGateway{name: fmt.Sprintf("gw%d", i), port: port, admin: fmt.Sprintf("%s:%d", gatewayHost, aport)}
		g.args = append([]string{"serve", "--redis-cluster-addrs", cluster, "--prefix", "{jobs}",
			"--mode", cfg.mode, "--log-level", "warn", "--compression=false",
			"--listen", fmt.Sprintf("%s:%d", gatewayHost, port), "--admin", g.admin}, cfg.gatewayArgs...)
		f.gws = append(f.gws, g)
		if err := f.startGateway(g); err != nil {
			return nil, err
		}
	}
	for i, w := range f.workers {
		if w.exited() {
			return nil, fmt.Errorf("worker%d did not start: %s", i, w.why())
		}
	}
	if cfg.haproxy {
		if err := f.startHAProxy(); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// startCluster starts n redis-server masters with cluster mode on and joins them with
// `redis-cli --cluster create`, then waits for cluster_state:ok on every node.
func (f *fleet) startCluster(n int) error {
	for i := 0; i < n; i++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		nodeDir := filepath.Join(f.dir, fmt.Sprintf("redis%d", i))
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			return err
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		p, err := startFProc(f.dir, fmt.Sprintf("redis%d", i), nil, "redis-server", "--port", strconv.Itoa(port),
			"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", nodeDir,
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
			"--maxclients", "10000")
		if err != nil {
			return fmt.Errorf("redis cluster: %w", err)
		}
		f.masters = append(f.masters, p)
		f.addrs = append(f.addrs, addr)
		if err := waitTCP(addr, 10*time.Second); err != nil {
			if p.exited() {
				return fmt.Errorf("redis cluster: redis%d did not start: %s", i, p.why())
			}
			return fmt.Errorf("redis cluster: redis%d: %w", i, err)
		}
	}
	args := append([]string{"--cluster", "create"}, f.addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil ||
		!bytes.Contains(out, []byte("[OK] All 16384 slots covered")) {
		return fmt.Errorf("redis cluster did not form: redis-cli --cluster create %s: %v\n%s",
			strings.Join(f.addrs, " "), err, lastLines(out, 8))
	}
	deadline := time.Now().Add(20 * time.Second)
	for i, a := range f.addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		for {
			info, err := c.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				return fmt.Errorf("redis cluster did not form: node redis%d (%s) not cluster_state:ok after 20s: %v",
					i, a, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		c.Close()
	}
	return nil
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// startGateway starts (or restarts) one gateway and waits until its /readyz says 200.
func (f *fleet) startGateway(g *fleetGateway) error {
	name := g.name
	if g.starts > 0 {
		name = fmt.Sprintf("%s.%d", g.name, g.starts)
	}
	g.starts++
	p, err := startFProc(f.dir, name, nil, f.bin, g.args...)
	if err != nil {
		return fmt.Errorf("gateway %s: %w", g.name, err)
	}
	g.p = p
	deadline := time.Now().Add(30 * time.Second)
	for {
		if p.exited() {
			return fmt.Errorf("gateway %s did not start: %s", g.name, p.why())
		}
		if ready(g.admin) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway %s not ready on http://%s/readyz after 30s (log: %s)", g.name, g.admin, p.out.Name())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ready(admin string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+admin+"/readyz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// stop ends every process the fleet started: HAProxy, gateways, workers, then Redis. Safe to call twice.
func (f *fleet) stop() {
	f.stopOnce.Do(func() {
		var wg sync.WaitGroup
		each := func(ps ...*fproc) {
			for _, p := range ps {
				if p == nil {
					continue
				}
				wg.Add(1)
				go func() { defer wg.Done(); p.stop() }()
			}
			wg.Wait()
		}
		each(f.lb)
		var gps []*fproc
		for _, g := range f.gws {
			gps = append(gps, g.p)
		}
		each(gps...)
		each(f.workers...)
		each(f.masters...)
	})
}

// cpu is the CPU time used so far by each master, the gateways and the workers.
type fleetCPU struct {
	Masters           []time.Duration
	Gateways, Workers time.Duration
	LB, LoadGen       time.Duration
}

func (f *fleet) cpu() fleetCPU {
	var c fleetCPU
	for _, m := range f.masters {
		c.Masters = append(c.Masters, cpuTime(m.pid()))
	}
	for _, g := range f.gws {
		c.Gateways += cpuTime(g.p.pid())
	}
	for _, w := range f.workers {
		c.Workers += cpuTime(w.pid())
	}
	if f.lb != nil {
		c.LB = cpuTime(f.lb.pid())
	}
	c.LoadGen = cpuTime(os.Getpid())
	return c
}

// rss is a process's resident set, from /proc.
func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			kb, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// fdLimit is this process's RLIMIT_NOFILE (children inherit it).
func fdLimit() int {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 1024
	}
	return int(r.Cur)
}

var errNoHAProxy = errors.New("haproxy is not installed (Debian: apt-get install haproxy)")
