package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// IdleResult is the outcome of the idle scenario.
type IdleResult struct {
	Scenario        string     `json:"scenario"`
	Connections     int        `json:"connections"`
	Failed          int        `json:"failed"`
	ClientProcesses int        `json:"client_processes"`
	SettleSeconds   float64    `json:"settle_seconds"`
	GatewayEnv      []string   `json:"gateway_env,omitempty"`
	GatewayArgs     []string   `json:"gateway_args,omitempty"`
	Before          procSample `json:"before"`
	After           procSample `json:"after"`
	RSSPerConn      float64    `json:"rss_bytes_per_conn"`
	HeapPerConn     float64    `json:"heap_inuse_bytes_per_conn"`
	LivePerConn     float64    `json:"heap_alloc_bytes_per_conn"`
	StackPerConn    float64    `json:"stack_inuse_bytes_per_conn"`
	RetainedPerConn float64    `json:"heap_retained_bytes_per_conn"`
	RuntimePerConn  float64    `json:"runtime_sys_bytes_per_conn"`
	GoroutinesAdded int        `json:"goroutines_added"`
	FDsPerConn      float64    `json:"fds_per_conn"`
	OpenSeconds     float64    `json:"open_seconds"`
	HeapProfile     string     `json:"heap_profile"`
}

// runIdle opens N connections to one gateway process from several client processes, each sending one ping, and
// samples the gateway's memory, goroutines and fds before and after.
func runIdle(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ContinueOnError)
	connList := fs.String("conns", "19000", "connections to hold; several (comma-separated) plot memory against connections")
	perProc := fs.Int("per-process", 9500, "connections per client process (each process has ≤20,000 fds)")
	out := fs.String("out", "bench/out", "directory for results")
	var env multiFlag
	fs.Var(&env, "gateway-env", "KEY=VALUE for the gateway's environment (repeatable), e.g. GOGC=50")
	settle := fs.Duration("settle", 10*time.Second, "wait after the last connection opened before sampling")
	gwArgs := fs.String("gateway-args", "", "extra arguments for `wsgate serve`, space-separated")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	var results []IdleResult
	for _, f := range strings.Split(*connList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("--conns: bad count %q", f)
		}
		res, err := idleOnce(n, *perProc, *out, env, strings.Fields(*gwArgs), *settle)
		if err != nil {
			return err
		}
		results = append(results, res)
	}
	if len(results) > 1 {
		if err := plotIdle(filepath.Join(*out, "idle.png"), results); err != nil {
			return err
		}
		fmt.Printf("plot: %s\n", filepath.Join(*out, "idle.png"))
	}
	return writeJSON(filepath.Join(*out, "idle.json"), results)
}

// idleOnce measures one connection count on a fresh stack.
func idleOnce(nConns, perProcess int, outDir string, env multiFlag, gwArgs []string, settleFor time.Duration) (IdleResult, error) {
	n, perProc, out, settle := &nConns, &perProcess, &outDir, &settleFor
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return IdleResult{}, err
	}
	// --pprof: the heap and goroutine figures come from the admin listener's /debug/pprof/.
	st, cleanup, err := newStack(stackConfig{workers: 1, concurrency: 16, env: env,
		gatewayArgs: append([]string{"--pprof"}, gwArgs...)})
	if err != nil {
		return IdleResult{}, err
	}
	defer cleanup()
	self, err := os.Executable()
	if err != nil {
		return IdleResult{}, err
	}
	time.Sleep(500 * time.Millisecond)
	before, err := sampleGateway(st.gateway.pid(), st.adminAddr)
	if err != nil {
		return IdleResult{}, err
	}
	procs := (*n + *perProc - 1) / *perProc
	fmt.Printf("idle: opening %d connections from %d client processes...\n", *n, procs)
	start := time.Now()
	type child struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		lines *bufio.Scanner
	}
	var children []child
	defer func() {
		for _, c := range children {
			c.stdin.Close()
			c.cmd.Wait()
		}
	}()
	left := *n
	for i := 0; i < procs; i++ {
		k := min(*perProc, left)
		left -= k
		cmd := exec.Command(self, "client", "--url", st.wsURL, "--src", fmt.Sprintf("127.0.0.%d", 2+i),
			"--conns", fmt.Sprint(k), "--parallel", "32") // under the gateway's 64 handshakes per address
		cmd.Stderr = os.Stderr
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			return IdleResult{}, err
		}
		children = append(children, child{cmd, stdin, bufio.NewScanner(stdout)})
	}
	res := IdleResult{Scenario: "idle", ClientProcesses: procs, GatewayEnv: env, GatewayArgs: gwArgs}
	for _, c := range children {
		if !c.lines.Scan() {
			return IdleResult{}, fmt.Errorf("client process ended early")
		}
		var ok, failed int
		fmt.Sscanf(c.lines.Text(), "ready %d %d", &ok, &failed)
		res.Connections += ok
		res.Failed += failed
	}
	res.OpenSeconds = time.Since(start).Seconds()
	res.SettleSeconds = settle.Seconds()
	time.Sleep(*settle) // let the gateway settle: GC done, the scavenger returns handshake garbage to the OS
	after, err := sampleGateway(st.gateway.pid(), st.adminAddr)
	if err != nil {
		return IdleResult{}, err
	}
	res.Before, res.After = before, after
	c := float64(res.Connections)
	res.RSSPerConn = float64(after.RSSBytes-before.RSSBytes) / c
	res.HeapPerConn = float64(after.HeapInuse-before.HeapInuse) / c
	res.StackPerConn = float64(after.StackInuse-before.StackInuse) / c
	res.LivePerConn = float64(after.HeapAlloc-before.HeapAlloc) / c
	res.RetainedPerConn = float64(after.HeapRetained-before.HeapRetained) / c
	res.RuntimePerConn = float64(after.RuntimeSys-before.RuntimeSys) / c
	res.GoroutinesAdded = after.Goroutines - before.Goroutines
	res.FDsPerConn = float64(after.FDs-before.FDs) / c
	res.HeapProfile = filepath.Join(*out, fmt.Sprintf("idle-heap-%d.pprof", res.Connections))
	if err := saveHeapProfile(st.adminAddr, res.HeapProfile); err != nil {
		return res, err
	}
	fmt.Printf("\n%-28s %s\n", "connections held", fmt.Sprintf("%d (%d failed) in %.1fs", res.Connections, res.Failed, res.OpenSeconds))
	fmt.Printf("%-28s %.0f bytes\n", "gateway RSS per connection", res.RSSPerConn)
	fmt.Printf("%-28s %.0f bytes\n", "heap in use per connection", res.HeapPerConn)
	fmt.Printf("%-28s %.0f bytes\n", "live heap per connection", res.LivePerConn)
	fmt.Printf("%-28s %.0f bytes\n", "stack in use per connection", res.StackPerConn)
	fmt.Printf("%-28s %.0f bytes\n", "heap retained per connection", res.RetainedPerConn)
	fmt.Printf("%-28s %.0f bytes\n", "runtime's own per connection", res.RuntimePerConn)
	fmt.Printf("%-28s %d\n", "sessions passivated", after.Passivated)
	fmt.Printf("%-28s %d (at %d connections)\n", "goroutines added", res.GoroutinesAdded, res.Connections)
	fmt.Printf("%-28s %.3f\n", "fds per connection", res.FDsPerConn)
	fmt.Printf("%-28s %s\n", "heap profile", res.HeapProfile)
	return res, nil
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
