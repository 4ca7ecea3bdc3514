package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/wstest"
	"github.com/wsgate/wsgate/server"
)

// built is the wsgate binary, built once for all the package's tests (a build per test cost seconds each).
var built struct {
	once sync.Once
	dir  string // removed by TestMain
	bin  string
	err  error
}

// TestMain removes the binary the tests built.
func TestMain(m *testing.M) {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	os.Exit(code)
}

// buildBinary returns the wsgate binary, building it on first use.
func buildBinary(t *testing.T) string {
	t.Helper()
	built.once.Do(func() {
		if built.dir, built.err = os.MkdirTemp("", "wsgate-test-"); built.err != nil {
			return
		}
		built.bin = filepath.Join(built.dir, "wsgate")
		if out, err := exec.Command("go", "build", "-o", built.bin, ".").CombinedOutput(); err != nil {
			built.err = fmt.Errorf("build: %w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatal(built.err)
	}
	return built.bin
}

// startProcess runs the binary until the test ends and returns its combined output as lines.
func startProcess(t *testing.T, bin string, env []string, args ...string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	r, w := io.Pipe()
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		s := bufio.NewScanner(r)
		for s.Scan() {
			select {
			case lines <- s.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		cmd.Wait() // reports the cancellation itself; the exit status is what matters
		if !cmd.ProcessState.Success() {
			t.Errorf("%s %s did not stop cleanly on SIGINT: %v", filepath.Base(bin), args[0], cmd.ProcessState)
		}
		w.Close()
	})
	return lines
}

var wsURL = regexp.MustCompile(`ws://127\.0\.0\.1:\d+/ws`)

func waitURL(t *testing.T, lines <-chan string) string {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l := <-lines:
			if u := wsURL.FindString(l); u != "" {
				return u
			}
		case <-timeout:
			t.Fatal("the process never said where it listens")
		}
	}
}

func pingOK(t *testing.T, url string) {
	t.Helper()
	c := wstest.Dial(t, url)
	got := c.Call(`{"ping":1,"req_id":1}`)
	if got["msg_type"] != "ping" || got["ping"] != "pong" || got["req_id"] != 1.0 {
		t.Fatalf("ping: %v", got)
	}
	got = c.Call(`{"fail":1}`)
	if e, _ := got["error"].(map[string]any); e["code"] != "WrongResponse" {
		t.Fatalf("fail: %v", got)
	}
}

func TestServeAndWorkerProcesses(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	srv := redistest.Start(t)
	port := redistest.FreePort(t)
	workerAdmin := fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	startProcess(t, bin, nil, "worker", "--demo", "--redis", srv.URL(), "--concurrency", "4", "--admin", workerAdmin)
	lines := startProcess(t, bin, nil, "serve", "--redis", srv.URL(),
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--admin", "off")
	pingOK(t, waitURL(t, lines))

	// The worker's admin listener tells what it ran.
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + workerAdmin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 {
		t.Errorf("worker /healthz: %d %s", code, body)
	}
	_, metrics := get("/metrics")
	for _, want := range []string{
		`wsgate_worker_jobs_total{name="ping",outcome="ok"} 1`,
		`wsgate_worker_jobs_total{name="fail",outcome="failed"} 1`,
		`wsgate_worker_job_duration_seconds_count{name="ping"} 1`,
		`wsgate_worker_jobs_in_flight 0`,
		`wsgate_worker_fetch_wait_seconds_total`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("worker /metrics lacks %q", want)
		}
	}
}

func TestDevAnswersWithNothingElseRunning(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	port := redistest.FreePort(t)
	lines := startProcess(t, bin, nil, "dev", "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--admin", "off")
	pingOK(t, waitURL(t, lines))
}

func TestCommandLineErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "no command"},
		{[]string{"bogus"}, "unknown command"},
		{[]string{"worker"}, "--demo"},
		{[]string{"serve", "--log-format", "xml"}, "log format"},
		{[]string{"serve", "--config", "/nonexistent.yaml"}, "no such file"},
		{[]string{"serve", "--mode", "fast"}, "unknown mode"},
		{[]string{"worker", "--demo", "--mode", "fast"}, "unknown mode"},
	}
	for _, tt := range tests {
		err := run(tt.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%q) = %v, want an error about %q", tt.args, err, tt.want)
		}
	}
	var out strings.Builder
	if err := run([]string{"version"}, &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "wsgate ") {
		t.Errorf("version: %q, %v", out.String(), err)
	}
}

func TestCheckConfigAndPrecedence(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "wsgate.yaml")
	os.WriteFile(path, []byte("listen: 127.0.0.1:1111\nadmin: 127.0.0.1:2222\npath: /file\n"), 0o644)
	var out strings.Builder
	if err := run([]string{"serve", "--config", path, "--check-config"}, &out, io.Discard); err != nil || !strings.Contains(out.String(), "OK") {
		t.Fatalf("check-config: %q %v", out.String(), err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("listen: x\nactions:\n  - name: \"a b\"\n"), 0o644)
	if err := run([]string{"serve", "--config", bad, "--check-config"}, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "bad.yaml:3") {
		t.Fatalf("bad config: %v", err)
	}
	// flag > environment > file > default
	t.Setenv("WSGATE_ADMIN", "127.0.0.1:3333")
	t.Setenv("WSGATE_PATH", "/env")
	o, err := parseFlags("serve", []string{"--config", path, "--path", "/flag"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Listen != "127.0.0.1:1111" || o.cfg.Admin != "127.0.0.1:3333" || o.cfg.Transport.Path != "/flag" {
		t.Fatalf("precedence: listen %s (file), admin %s (env), path %s (flag)", o.cfg.Listen, o.cfg.Admin, o.cfg.Transport.Path)
	}
	o, err = parseFlags("serve", nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.Listen != "" || o.cfg.Admin != "127.0.0.1:3333" {
		t.Fatalf("defaults: listen %q (left to server defaults), admin %s (env)", o.cfg.Listen, o.cfg.Admin)
	}
}

func TestHandshakeAndDescriptorSettings(t *testing.T) {
	t.Setenv("WSGATE_HANDSHAKE_TIMEOUT", "2.5")
	t.Setenv("WSGATE_MAX_HANDSHAKES", "2048")
	t.Setenv("WSGATE_FD_RESERVE", "-1")
	o, err := parseFlags("serve", []string{"--max-handshakes-per-ip", "8", "--fd-reserve", "100"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	tc := o.cfg.Transport
	if tc.HandshakeTimeout != 2500*time.Millisecond || tc.MaxHandshakes != 2048 || tc.MaxHandshakesPerIP != 8 || tc.FDReserve != 100 {
		t.Fatalf("timeout %v (env), total %d (env), per IP %d (flag), reserve %d (flag over env)",
			tc.HandshakeTimeout, tc.MaxHandshakes, tc.MaxHandshakesPerIP, tc.FDReserve)
	}
	for _, args := range [][]string{{"--handshake-timeout", "soon"}, {"--max-handshakes", "many"}, {"--max-handshakes-per-ip", "-1"}} {
		if _, err := parseFlags("serve", args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

// QUEUE_TIMEOUT is read here, not in the library; the file's queue_timeout beats it. With no actions
// configured the command passes the demo list (the library would refuse an empty one).
func TestQueueTimeoutEnvironmentAndDemoActions(t *testing.T) {
	t.Setenv("QUEUE_TIMEOUT", "2.5")
	o, err := parseFlags("serve", nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.cfg.QueueTimeout != 2500*time.Millisecond || !o.demoActions || len(o.cfg.Actions) != len(server.DemoActions()) {
		t.Fatalf("queue timeout %v, demo actions %v (%d)", o.cfg.QueueTimeout, o.demoActions, len(o.cfg.Actions))
	}
	path := filepath.Join(t.TempDir(), "wsgate.yaml")
	os.WriteFile(path, []byte("queue_timeout: 7\nactions: [status]\n"), 0o644)
	if o, err = parseFlags("serve", []string{"--config", path}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if o.cfg.QueueTimeout != 7*time.Second || o.demoActions || len(o.cfg.Actions) != 1 {
		t.Fatalf("file: queue timeout %v, demo actions %v, actions %v", o.cfg.QueueTimeout, o.demoActions, o.cfg.Actions)
	}
	t.Setenv("QUEUE_TIMEOUT", "never")
	if _, err := parseFlags("serve", nil, io.Discard); err == nil || !strings.Contains(err.Error(), "QUEUE_TIMEOUT") {
		t.Fatalf("bad QUEUE_TIMEOUT: %v", err)
	}
}
