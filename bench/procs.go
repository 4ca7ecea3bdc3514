package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// proc is a child process the harness started; stop ends it with SIGINT (then SIGKILL).
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *os.File
}

func startProc(dir, name string, env []string, bin string, args ...string) (*proc, error) {
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return &proc{name: name, cmd: cmd, out: logf}, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
	p.out.Close()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitTCP(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not listening after %v: %w", addr, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// buildWsgate builds the gateway binary from this module into dir.
func buildWsgate(dir string) (string, error) {
	bin := filepath.Join(dir, "wsgate")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/wsgate/wsgate/cmd/wsgate")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build wsgate: %v\n%s", err, out)
	}
	return bin, nil
}

// stack is what one scenario runs: redis-server, workers and the gateway.
type stack struct {
	dir       string
	redis     *proc
	redisAddr string
	workers   []*proc
	gateway   *proc
	wsURL     string
	adminAddr string
}

type stackConfig struct {
	workers     int
	concurrency int // per worker
	mode        string
	env         []string // extra gateway environment (QUEUE_TIMEOUT, GOGC, ...)
	gatewayArgs []string
	bin         string // the wsgate binary for the gateway and workers; "" means built from this module
}

func startStack(dir string, sc stackConfig) (*stack, error) {
	s := &stack{dir: dir}
	ok := false
	defer func() {
		if !ok {
			s.stop()
		}
	}()
	bin := sc.bin
	if bin == "" {
		var err error
		if bin, err = buildWsgate(dir); err != nil {
			return nil, err
		}
	}
	rport, err := freePort()
	if err != nil {
		return nil, err
	}
	s.redisAddr = fmt.Sprintf("127.0.0.1:%d", rport)
	s.redis, err = startProc(dir, "redis", nil, "redis-server", "--port", strconv.Itoa(rport), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", dir, "--maxclients", "10000")
	if err != nil {
		return nil, err
	}
	if err := waitTCP(s.redisAddr, 10*time.Second); err != nil {
		return nil, err
	}
	redisURL := "redis://" + s.redisAddr
	mode := sc.mode
	if mode == "" {
		mode = "reliable"
	}
	for i := 0; i < sc.workers; i++ {
		w, err := startProc(dir, fmt.Sprintf("worker%d", i), nil, bin, "worker", "--demo", "--redis", redisURL,
			"--mode", mode, "--concurrency", strconv.Itoa(max(sc.concurrency, 1)), "--log-level", "warn")
		if err != nil {
			return nil, err
		}
		s.workers = append(s.workers, w)
	}
	wport, err := freePort()
	if err != nil {
		return nil, err
	}
	aport, err := freePort()
	if err != nil {
		return nil, err
	}
	s.adminAddr = fmt.Sprintf("127.0.0.1:%d", aport)
	args := append([]string{"serve", "--redis", redisURL, "--mode", mode, "--log-level", "warn",
		"--listen", fmt.Sprintf("127.0.0.1:%d", wport), "--admin", s.adminAddr}, sc.gatewayArgs...)
	s.gateway, err = startProc(dir, "gateway", sc.env, bin, args...)
	if err != nil {
		return nil, err
	}
	if err := waitTCP(s.adminAddr, 20*time.Second); err != nil {
		return nil, err
	}
	s.wsURL = fmt.Sprintf("ws://127.0.0.1:%d/ws", wport)
	ok = true
	return s, nil
}

// newStack starts a stack in a temporary directory; cleanup stops it and removes the directory.
func newStack(sc stackConfig) (st *stack, cleanup func(), err error) {
	dir, err := os.MkdirTemp("", "wsgate-bench-")
	if err != nil {
		return nil, nil, err
	}
	st, err = startStack(dir, sc)
	if err != nil {
		os.RemoveAll(dir)
		return nil, nil, err
	}
	return st, func() { st.stop(); os.RemoveAll(dir) }, nil
}

func (s *stack) stop() {
	if s.gateway != nil {
		s.gateway.stop()
	}
	for _, w := range s.workers {
		w.stop()
	}
	if s.redis != nil {
		s.redis.stop()
	}
}

// procSample is what the harness reads of a process.
type procSample struct {
	RSSBytes   int64 `json:"rss_bytes"`
	Goroutines int   `json:"goroutines"`
	FDs        int   `json:"fds"`
	HeapInuse  int64 `json:"heap_inuse_bytes"`
	HeapAlloc  int64 `json:"heap_alloc_bytes"` // live objects (HeapInuse adds the free room in their spans)
	StackInuse int64 `json:"stack_inuse_bytes"`
	// HeapRetained is heap memory the runtime holds from the OS (HeapSys − HeapReleased): in use plus free
	// pages it has not returned yet, which at GOGC 100 may reach the next GC's goal.
	HeapRetained int64 `json:"heap_retained_bytes"`
	NextGC       int64 `json:"next_gc_bytes"`
	// RuntimeSys is the runtime's own bookkeeping: spans, GC metadata, profiling buckets and the rest.
	RuntimeSys int64 `json:"runtime_sys_bytes"`
	// Passivated is the gateway's wsgate_sessions_passivated: connections whose session has no actor now.
	Passivated int64 `json:"sessions_passivated"`
}

// memStatLine matches the runtime.MemStats lines of /debug/pprof/heap?debug=1 ("# HeapInuse = 123", and
// "# Stack = inuse / sys" for the pairs).
var memStatLine = regexp.MustCompile(`^# (\w+) = (\d+)(?: / (\d+))?$`)

// sampleGateway reads RSS and fds from /proc and goroutines and heap figures from the admin listener (after a GC).
func sampleGateway(pid int, admin string) (procSample, error) {
	var s procSample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			s.RSSBytes = kb * 1024
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.FDs = len(fds)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body, err := httpGet(ctx, "http://"+admin+"/debug/pprof/goroutine?debug=1")
	if err != nil {
		return s, err
	}
	fmt.Sscanf(body, "goroutine profile: total %d", &s.Goroutines)
	body, err = httpGet(ctx, "http://"+admin+"/debug/pprof/heap?debug=1&gc=1")
	if err != nil {
		return s, err
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	stats := map[string][2]int64{}
	for sc.Scan() {
		if m := memStatLine.FindStringSubmatch(sc.Text()); m != nil {
			v, _ := strconv.ParseInt(m[2], 10, 64)
			w, _ := strconv.ParseInt(m[3], 10, 64)
			stats[m[1]] = [2]int64{v, w}
		}
	}
	if _, ok := stats["HeapInuse"]; !ok {
		return s, fmt.Errorf("no runtime.MemStats in the heap profile of %s", admin)
	}
	s.HeapInuse, s.HeapAlloc = stats["HeapInuse"][0], stats["HeapAlloc"][0]
	s.StackInuse = stats["Stack"][0]
	s.HeapRetained = stats["HeapSys"][0] - stats["HeapReleased"][0]
	s.NextGC = stats["NextGC"][0]
	s.RuntimeSys = stats["MSpan"][1] + stats["MCache"][1] + stats["BuckHashSys"][0] + stats["GCSys"][0] + stats["OtherSys"][0]
	if body, err = httpGet(ctx, "http://"+admin+"/metrics"); err == nil {
		for _, l := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(l, "wsgate_sessions_passivated "); ok {
				f, _ := strconv.ParseFloat(v, 64)
				s.Passivated = int64(f)
			}
		}
	}
	return s, nil
}

func httpGet(ctx context.Context, url string) (string, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK { // e.g. /debug/pprof/ without --pprof: not a figure of 0
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

// saveCPUProfile records the gateway's CPU profile for d and writes it for `go tool pprof`.
func saveCPUProfile(admin, path string, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	body, err := httpGet(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", admin, int(d.Seconds())))
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(body), 0o644)
}

// saveHeapProfile writes the gateway's heap profile (after a GC) for `go tool pprof`.
func saveHeapProfile(admin, path string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body, err := httpGet(ctx, "http://"+admin+"/debug/pprof/heap?gc=1")
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(body), 0o644)
}

// cpuTime is the CPU time (user + system) a process has used, from /proc/<pid>/stat.
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which is in parentheses and may hold spaces).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}

// cpuShares samples the CPU time of the stack's processes and of this process.
type cpuShares struct {
	Gateway, Workers, Redis, LoadGen time.Duration
}

func (s *stack) cpu() cpuShares {
	var c cpuShares
	c.Gateway = cpuTime(s.gateway.pid())
	for _, w := range s.workers {
		c.Workers += cpuTime(w.pid())
	}
	c.Redis = cpuTime(s.redis.pid())
	c.LoadGen = cpuTime(os.Getpid())
	return c
}
