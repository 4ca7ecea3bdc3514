package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The peers scenario puts wsgate next to a well-known peer under the same closed-loop load: Centrifugo v6 with
// its RPC proxy to a tiny Go HTTP backend (the closest thing Centrifugo has to wsgate's request → worker →
// reply path), against wsgate in reliable and simple mode. Every process runs on this machine, as in the
// other scenarios. The targets take turns at each connection count, so that a noisy spell of the shared
// machine hits all of them rather than one.
//
// Centrifugo is installed with the Go toolchain (`go install github.com/centrifugal/centrifugo/v6@<version>`)
// into a cache folder, once. Its client protocol (JSON over WebSocket): a connect command, then rpc commands;
// replies may share a frame, one a line; the server's ping is `{}`, answered with `{}`.

// centrifugoModule is the module that `go install` builds Centrifugo from.
const centrifugoModule = "github.com/centrifugal/centrifugo/v6"

type peersFlags struct {
	rpcFlags
	centrifugo string // the binary; "" means the cache's, installed if missing
	cache      string
	version    string
	base       string // a wsgate binary of another commit, run in reliable mode as "wsgate-base" (A/B)
}

// runPeers is the peers scenario.
func runPeers(args []string) error {
	f := &peersFlags{}
	fs := flag.NewFlagSet("peers", flag.ContinueOnError)
	conns := fs.String("conns", "1,100,1000", "connection counts, comma-separated")
	fs.IntVar(&f.inflight, "inflight", 1, "requests in flight per connection (closed loop)")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "measured time per run")
	fs.DurationVar(&f.warmup, "warmup", 3*time.Second, "unmeasured time before each run")
	fs.IntVar(&f.workers, "workers", 2, "wsgate: Go worker processes")
	fs.IntVar(&f.concurrency, "concurrency", 64, "wsgate: jobs each worker runs at once")
	fs.StringVar(&f.out, "out", "bench/out", "directory for results")
	fs.StringVar(&f.centrifugo, "centrifugo", "", "Centrifugo binary; empty means <cache>/centrifugo, installed with `go install` if missing")
	fs.StringVar(&f.version, "centrifugo-version", "v6.9.1", "Centrifugo version to install")
	fs.StringVar(&f.base, "wsgate-base", "", "also run this wsgate binary (e.g. built from main) in reliable mode, as target wsgate-base")
	defCache := filepath.Join(os.TempDir(), "wsgate-bench-cache")
	if d, err := os.UserCacheDir(); err == nil {
		defCache = filepath.Join(d, "wsgate-bench")
	}
	fs.StringVar(&f.cache, "cache", defCache, "folder for installed peers (a subfolder per version)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	f.action = "ping"
	for _, s := range strings.Split(*conns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("--conns: bad count %q", s)
		}
		f.conns = append(f.conns, n)
	}
	if err := os.MkdirAll(f.out, 0o755); err != nil {
		return err
	}

	// Centrifugo first: if it cannot be had, say why before spending minutes on the rest.
	cf, cfErr := startCentrifugo(f)
	if cfErr != nil {
		fmt.Printf("centrifugo: %v\n(the wsgate runs go on without it)\n", cfErr)
	} else {
		defer cf.stop()
	}
	type wsTarget struct {
		name, mode, bin string
		st              *stack
	}
	targets := []*wsTarget{{name: "wsgate", mode: "reliable"}, {name: "wsgate", mode: "simple"}}
	if f.base != "" {
		targets = append(targets, &wsTarget{name: "wsgate-base", mode: "reliable", bin: f.base})
	}
	for _, t := range targets {
		st, cleanup, err := newStack(stackConfig{workers: f.workers, concurrency: f.concurrency, mode: t.mode,
			env: []string{"QUEUE_TIMEOUT=30"}, gatewayArgs: []string{"--compression=false"}, bin: t.bin})
		if err != nil {
			return err
		}
		defer cleanup()
		t.st = st
	}

	var runs []RPCRun
	for _, n := range f.conns {
		for _, t := range targets {
			st := t.st
			var before, after cpuShares
			res, err := closedLoopSampled(st.wsURL, n, &f.rpcFlags, func() { before = st.cpu() }, func() { after = st.cpu() })
			if err != nil {
				return fmt.Errorf("%s %s, %d connections: %w", t.name, t.mode, n, err)
			}
			runs = append(runs, RPCRun{Target: t.name, Mode: t.mode, loadResult: res, CPUus: perReply(before, after, res)})
		}
		if cf == nil {
			continue
		}
		var before, after cpuShares
		fmt.Printf("%s: %d connections × %d in flight ...\n", cf.url, n, f.inflight)
		l, err := dialLoadProto(cf.url, n, 15000, f.action, true, centrifugoProto)
		if err != nil {
			return fmt.Errorf("centrifugo, %d connections: %w", n, err)
		}
		l.atStart, l.atEnd = func() { before = cf.cpu() }, func() { after = cf.cpu() }
		res := l.runClosedLoop(f.inflight, f.warmup, f.duration, func(s string) { fmt.Printf("\r  %s", s) })
		l.closeAll()
		fmt.Printf("\r  %.0f rps, p50 %dµs p99 %dµs p99.9 %dµs, %d errors\n", res.RPS, res.P50us, res.P99us, res.P999us, res.Errors)
		runs = append(runs, RPCRun{Target: "centrifugo", Mode: "rpc-proxy", loadResult: res, CPUus: perReply(before, after, res)})
	}
	printRPCTable(runs)
	fmt.Printf("\nCPU per reply (µs): server = wsgate gateway or Centrifugo; handler = Go workers or the HTTP backend\n")
	fmt.Printf("%-11s %-10s %7s %8s %8s %8s %8s\n", "target", "mode", "conns", "server", "handler", "redis", "loadgen")
	for _, r := range runs {
		if c := r.CPUus; c != nil {
			fmt.Printf("%-11s %-10s %7d %8.0f %8.0f %8.0f %8.0f\n", r.Target, r.Mode, r.Connections, c.Gateway, c.Workers, c.Redis, c.LoadGen)
		}
	}
	png := filepath.Join(f.out, "peers.png")
	if err := plotRPC(png, runs); err != nil {
		return err
	}
	latPNG := filepath.Join(f.out, "peers-latency.png")
	if err := plotLatencyByConns(latPNG, runs); err != nil {
		return err
	}
	js := filepath.Join(f.out, "peers.json")
	meta := map[string]any{"scenario": "peers", "runs": runs, "inflight_per_conn": f.inflight,
		"duration_s": f.duration.Seconds(), "workers": f.workers, "worker_concurrency": f.concurrency,
		"centrifugo_version": f.version,
		"cpu_note":           "cpu_us_per_reply: Gateway = the server (wsgate gateway or Centrifugo), Workers = the handler (Go workers or the HTTP backend)"}
	if cfErr != nil {
		meta["centrifugo_error"] = cfErr.Error()
	}
	if err := writeJSON(js, meta); err != nil {
		return err
	}
	fmt.Printf("\nresults: %s, plots: %s %s\n", js, png, latPNG)
	if cfErr != nil {
		return fmt.Errorf("centrifugo was not measured: %w", cfErr)
	}
	return nil
}

func perReply(before, after cpuShares, res loadResult) *cpuPerReply {
	per := func(a, b time.Duration) float64 {
		return float64((b - a).Microseconds()) / float64(max(res.Replies, 1))
	}
	return &cpuPerReply{Gateway: per(before.Gateway, after.Gateway), Workers: per(before.Workers, after.Workers),
		Redis: per(before.Redis, after.Redis), LoadGen: per(before.LoadGen, after.LoadGen)}
}

// centrifugoProto is Centrifugo's JSON client protocol: an anonymous connect (the server runs with
// client.insecure), then `rpc` commands whose data is the wsgate request; the backend echoes req_id.
var centrifugoProto = loadProto{
	hello: []byte(`{"id":1,"connect":{}}`),
	request: func(buf []byte, action string, sent int64) []byte {
		// Command IDs only pair replies with commands; one request in flight per connection (or any number,
		// as replies carry req_id) needs no unique ID, but Centrifugo wants a non-zero one.
		return fmt.Appendf(buf, `{"id":2,"rpc":{"method":"%s","data":{"%s":1,"req_id":%d}}}`, action, action, sent)
	},
	ping:  []byte(`{}`),
	pong:  []byte(`{}`),
	lines: true,
}

// centrifugo is a running Centrifugo and its RPC backend.
type centrifugo struct {
	dir      string
	server   *proc
	backend  *proc
	url      string
	ownsDir  bool
	stopOnce bool
}

func (c *centrifugo) stop() {
	if c.stopOnce {
		return
	}
	c.stopOnce = true
	if c.server != nil {
		c.server.stop()
	}
	if c.backend != nil {
		c.backend.stop()
	}
	if c.ownsDir {
		os.RemoveAll(c.dir)
	}
}

// cpu samples Centrifugo (as Gateway), the backend (as Workers) and this process.
func (c *centrifugo) cpu() cpuShares {
	return cpuShares{Gateway: cpuTime(c.server.pid()), Workers: cpuTime(c.backend.pid()), LoadGen: cpuTime(os.Getpid())}
}

// installCentrifugo returns the Centrifugo binary: --centrifugo, or <cache>/<version>/centrifugo, which it
// builds with `go install` when missing.
func installCentrifugo(f *peersFlags) (string, error) {
	if f.centrifugo != "" {
		return f.centrifugo, nil
	}
	dir := filepath.Join(f.cache, "centrifugo-"+f.version)
	bin := filepath.Join(dir, "centrifugo")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	fmt.Printf("installing %s@%s into %s (go install; a few minutes the first time) ...\n", centrifugoModule, f.version, dir)
	cmd := exec.Command("go", "install", centrifugoModule+"@"+f.version)
	// Outside this module, so that its go.mod does not constrain the install; GOFLAGS cleared of -mod and the like.
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %v\n%s", centrifugoModule, f.version, err, bytes.TrimSpace(out))
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("go install %s@%s left no binary at %s", centrifugoModule, f.version, bin)
	}
	return bin, nil
}

// startCentrifugo installs Centrifugo if needed and starts it with an RPC proxy to a backend process (this
// binary's rpc-backend subcommand).
func startCentrifugo(f *peersFlags) (*centrifugo, error) {
	bin, err := installCentrifugo(f)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "wsgate-peers-")
	if err != nil {
		return nil, err
	}
	c := &centrifugo{dir: dir, ownsDir: true}
	ok := false
	defer func() {
		if !ok {
			c.stop()
		}
	}()
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	bport, err := freePort()
	if err != nil {
		return nil, err
	}
	baddr := fmt.Sprintf("127.0.0.1:%d", bport)
	if c.backend, err = startProc(dir, "rpc-backend", nil, self, "rpc-backend", "--listen", baddr); err != nil {
		return nil, err
	}
	if err := waitTCP(baddr, 10*time.Second); err != nil {
		return nil, err
	}
	cport, err := freePort()
	if err != nil {
		return nil, err
	}
	// Centrifugo v6 configuration (nested sections). Anonymous clients, RPC calls without a namespace go to
	// the default proxy; no built-in ping method (it would answer "ping" without the backend); everything
	// else at its defaults, as an operator would start it.
	config := map[string]any{
		"log":         map[string]any{"level": "warn"},
		"http_server": map[string]any{"address": "127.0.0.1", "port": cport},
		"client":      map[string]any{"insecure": true, "allowed_origins": []string{"*"}},
		"rpc": map[string]any{
			"proxy":             map[string]any{"endpoint": "http://" + baddr + "/rpc", "timeout": "30s"},
			"without_namespace": map[string]any{"proxy_enabled": true},
			"ping":              map[string]any{"enabled": false},
		},
	}
	cfgPath := filepath.Join(dir, "config.json")
	if err := writeJSON(cfgPath, config); err != nil {
		return nil, err
	}
	if c.server, err = startProc(dir, "centrifugo", []string{"GOMAXPROCS=2"}, bin, "--config", cfgPath); err != nil {
		return nil, err
	}
	caddr := fmt.Sprintf("127.0.0.1:%d", cport)
	if err := waitTCP(caddr, 20*time.Second); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "centrifugo.log"))
		return nil, fmt.Errorf("%w\ncentrifugo log:\n%s", err, log)
	}
	c.url = "ws://" + caddr + "/connection/websocket"
	// One request end to end before any load: a wrong configuration fails here, clearly.
	l, err := dialLoadProto(c.url, 1, 15000, f.action, false, centrifugoProto)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "centrifugo.log"))
		return nil, fmt.Errorf("centrifugo connect: %w\ncentrifugo log:\n%s", err, log)
	}
	l.closeAll()
	ok = true
	return c, nil
}

// runRPCBackend is the peers scenario's HTTP backend for Centrifugo's RPC proxy: it answers every call with
// what the wsgate demo worker answers a ping, req_id echoed: {"result":{"data":{...}}}.
func runRPCBackend(args []string) error {
	fs := flag.NewFlagSet("rpc-backend", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(serveRPCProxy), ReadHeaderTimeout: 10 * time.Second}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// proxyRPCRequest is the part of Centrifugo's RPC proxy request the backend reads.
type proxyRPCRequest struct {
	Method string          `json:"method"`
	Data   json.RawMessage `json:"data"`
}

func serveRPCProxy(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req proxyRPCRequest
	if err := json.Unmarshal(body, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var args struct {
		ReqID json.RawMessage `json:"req_id"`
	}
	_ = json.Unmarshal(req.Data, &args)
	type reply struct {
		EchoReq json.RawMessage `json:"echo_req"`
		MsgType string          `json:"msg_type"`
		Ping    string          `json:"ping"`
		ReqID   json.RawMessage `json:"req_id,omitempty"`
	}
	out, _ := json.Marshal(map[string]any{"result": map[string]any{"data": reply{EchoReq: req.Data,
		MsgType: req.Method, Ping: "pong", ReqID: args.ReqID}}})
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}
