package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/server"
)

// process is a running wsgate whose output the test reads.
type process struct {
	cmd  *exec.Cmd
	out  *testutil.Buffer
	done chan struct{}
}

// launch starts the binary; the test ends it with stop (or the cleanup kills it).
func launch(t *testing.T, bin string, env []string, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(bin, args...), out: &testutil.Buffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		p.cmd.Wait()
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// stop sends SIGTERM (as a deploy does) and waits for the exit.
func (p *process) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not stop on SIGTERM:\n%s", p.cmd.Args[1], p.out)
	}
	if !p.cmd.ProcessState.Success() {
		t.Errorf("%s exited with %v:\n%s", p.cmd.Args[1], p.cmd.ProcessState, p.out)
	}
}

// exitCode runs the binary to its end.
func exitCode(t *testing.T, bin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return code, o.String(), e.String()
}

const secret = "Pa55w0rdXyz"

// TestNoSecretsInLogsOrEndpoints: with a password in the Redis URL and an admin token, neither the logs of
// serve and worker (also their errors) nor /debug/pprof/cmdline show them; pprof is served only with --pprof.
func TestNoSecretsInLogsOrEndpoints(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	srv := redistest.Start(t)
	rdb := srv.Client()
	if err := rdb.ConfigSet(context.Background(), "requirepass", secret).Err(); err != nil {
		t.Fatal(err)
	}
	redisURL := "redis://:" + secret + "@" + srv.Addr
	port, admin := redistest.FreePort(t), fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t))
	token := "T0ken" + secret

	worker := launch(t, bin, nil, "worker", "--demo", "--redis", redisURL, "--concurrency", "4")
	serve := launch(t, bin, []string{"WSGATE_ADMIN_TOKEN=" + token}, "serve", "--redis", redisURL, "--pprof",
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--admin", admin)
	testutil.WaitFor(t, func() bool { return wsURL.MatchString(serve.out.String()) })
	pingOK(t, wsURL.FindString(serve.out.String()))

	get := func(path, auth string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+admin+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/debug/pprof/cmdline", ""); code != 401 {
		t.Errorf("cmdline without the token: %d, want 401", code)
	}
	code, cmdline := get("/debug/pprof/cmdline", token)
	if code != 200 || strings.Contains(cmdline, secret) || !strings.Contains(cmdline, "redis://:xxxxx@") {
		t.Errorf("cmdline: %d %q", code, cmdline)
	}
	serve.stop(t)
	worker.stop(t)

	// Errors too: an unreachable Redis, and a URL that does not parse (url.Parse quotes it whole).
	_, _, unreachable := exitCode(t, bin, nil, "serve", "--redis", "redis://u:"+secret+"@127.0.0.1:1", "--admin", "off",
		"--listen", "127.0.0.1:0")
	_, _, badURL := exitCode(t, bin, nil, "worker", "--demo", "--redis", "redis://u:"+secret+"@host:port/0")
	_, _, badServeURL := exitCode(t, bin, nil, "serve", "--redis", "redis://u:"+secret+"@host:port/0", "--admin", "off")

	for name, out := range map[string]string{"serve": serve.out.String(), "worker": worker.out.String(),
		"serve with Redis down": unreachable, "worker with a bad URL": badURL, "serve with a bad URL": badServeURL} {
		if strings.Contains(out, secret) {
			t.Errorf("%s shows the secret:\n%s", name, out)
		}
		if strings.Contains(out, "redis: 20") { // go-redis's own logger, bypassing slog and its masking
			t.Errorf("%s: a go-redis log line did not go through slog:\n%s", name, out)
		}
		if !strings.Contains(out, "redis") {
			t.Errorf("%s: its output does not say which Redis (did it log one?):\n%s", name, out)
		}
	}
}

// TestServeLogs: serve warns that it serves the demo actions when none are configured, and logs its start,
// drain and stop, each with a duration in milliseconds.
func TestServeLogs(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	srv := redistest.Start(t)
	serve := launch(t, bin, nil, "serve", "--redis", srv.URL(), "--admin", "off",
		"--listen", fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t)))
	testutil.WaitFor(t, func() bool { return wsURL.MatchString(serve.out.String()) })
	serve.stop(t)
	out := serve.out.String()
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`level=WARN msg="no actions configured: serving the demo action list \(ping, echo, sleep, fail, whoami\); list your actions under .actions:. in a --config file`),
		regexp.MustCompile(`msg="wsgate listening" .* start_ms=\d+`),
		regexp.MustCompile(`msg="drain started" .*in_flight=0`),
		regexp.MustCompile(`msg="drain finished" .*drain_ms=\d+ .*unanswered=0`),
		regexp.MustCompile(`msg="wsgate stopped" .*stop_ms=\d+ shutdown_ms=\d+`),
	} {
		if !want.MatchString(out) {
			t.Errorf("the log lacks %s:\n%s", want, out)
		}
	}
	// With actions in a file, no warning.
	cfg := filepath.Join(t.TempDir(), "wsgate.yaml")
	os.WriteFile(cfg, []byte("actions: [ping]\n"), 0o644)
	serve = launch(t, bin, nil, "serve", "--config", cfg, "--redis", srv.URL(), "--admin", "off",
		"--listen", fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t)))
	testutil.WaitFor(t, func() bool { return wsURL.MatchString(serve.out.String()) })
	serve.stop(t)
	if strings.Contains(serve.out.String(), "no actions configured") {
		t.Errorf("warned although actions are configured:\n%s", serve.out)
	}
}

// TestBinaryExitCodes: help is not an error; mistakes are (exit 2), with a message that names them.
func TestBinaryExitCodes(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	dir := t.TempDir()
	unknownKey := filepath.Join(dir, "unknown.yaml")
	os.WriteFile(unknownKey, []byte("listen: x\nlimits:\n  max_conections: 5\n"), 0o644)
	tab := filepath.Join(dir, "tab.yaml")
	os.WriteFile(tab, []byte("limits:\n\tmax_in_flight: 5\n"), 0o644)
	tests := []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"serve", "--help"}, 0, "Usage: wsgate serve", ""},
		{[]string{"serve", "-h"}, 0, "-drain-timeout", ""},
		{[]string{"worker", "--help"}, 0, "Usage: wsgate worker", ""},
		{[]string{"dev", "--help"}, 0, "Usage: wsgate dev", ""},
		{[]string{"--help"}, 0, "wsgate serve", ""},
		{[]string{"version"}, 0, "wsgate ", ""},
		{[]string{"serve", "--bogus"}, 2, "", "flag provided but not defined: -bogus (see 'wsgate serve --help')"},
		{[]string{"worker", "--listen", ":1"}, 2, "", "not defined: -listen"},
		{[]string{"dev", "--redis", "redis://h"}, 2, "", "not defined: -redis"}, // dev runs its own
		{[]string{"serve", "--config", unknownKey, "--check-config"}, 2, "", `unknown.yaml:3: unknown key "limits.max_conections"`},
		{[]string{"serve", "--config", tab, "--check-config"}, 2, "", "tab.yaml:2: a tab in the indentation"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, stdout, stderr := exitCode(t, bin, nil, tt.args...)
			if code != tt.code || !strings.Contains(stdout, tt.stdout) || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, stdout, stderr)
			}
		})
	}
}

// helpOf returns a command's --help text.
func helpOf(t *testing.T, cmd string) string {
	t.Helper()
	var out strings.Builder
	if err := run([]string{cmd, "--help"}, &out, io.Discard); err != nil {
		t.Fatalf("%s --help: %v", cmd, err)
	}
	return out.String()
}

var helpFlag = regexp.MustCompile(`(?m)^  -([a-z0-9-]+)[^\n]*\n\s+([^\n]*)`)

// TestWorkerHelpListsWorkerFlags: worker --help has exactly the worker's flags; serve's has the gateway's.
func TestWorkerHelpListsWorkerFlags(t *testing.T) {
	t.Parallel()
	const redisFlags = "redis-cluster-addrs redis-sentinel-addrs redis-sentinel-master redis-tls redis-tls-ca " +
		"redis-tls-cert redis-tls-insecure-skip-verify redis-tls-key redis-tls-server-name redis-username"
	tests := []struct {
		cmd  string
		want []string
	}{
		{"worker", []string{"admin", "concurrency", "config", "demo", "log-format", "log-level", "mode", "orphan-timeout",
			"prefix", "redis", redisFlags}},
		{"serve", []string{"admin", "admin-token", "allowed-origins", "buffer-budget", "check-config",
			"close-on-invalid-utf8", "compression", "config", "drain-timeout", "fd-reserve", "handshake-timeout", "linger-timeout", "listen",
			"log-format", "log-level", "max-connections", "max-connections-per-ip", "max-frame-size", "max-handshakes",
			"max-handshakes-per-ip", "max-in-flight", "max-message-size", "max-response-size", "memory-limit", "message-timeout", "mode",
			"no-worker-after", "passivate-after", "path", "pprof", "prefix", "queue-timeout", "queue-watch-interval", "redis", redisFlags,
			"require-result", "require-worker", "session-workers", "stream-timeout", "tls-cert", "tls-client-ca", "tls-key", "write-queue-bytes", "write-timeout"}},
	}
	for _, tt := range tests {
		var got []string
		for _, m := range helpFlag.FindAllStringSubmatch(helpOf(t, tt.cmd), -1) {
			got = append(got, m[1])
		}
		if strings.Join(got, " ") != strings.Join(tt.want, " ") {
			t.Errorf("%s --help lists %v, want %v", tt.cmd, got, tt.want)
		}
	}
}

// TestEveryFlagHasItsVariable: each flag of each command names its WSGATE_* variable (WSGATE_ and the flag's
// name in capitals), and each variable does what its flag does.
func TestEveryFlagHasItsVariable(t *testing.T) {
	covered := map[string]bool{}
	certs := redistest.NewCerts(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfgPath, []byte("path: /from-file\n"), 0o644)
	tests := []struct {
		cmd, env, value string
		ok              func(o *options) bool
	}{
		{"serve", "WSGATE_LISTEN", "127.0.0.1:1", func(o *options) bool { return o.cfg.Listen == "127.0.0.1:1" }},
		{"serve", "WSGATE_ADMIN", "off", func(o *options) bool { return o.cfg.Admin == "off" }},
		{"serve", "WSGATE_ADMIN_TOKEN", "tok", func(o *options) bool { return o.cfg.AdminToken == "tok" }},
		{"serve", "WSGATE_PATH", "/p", func(o *options) bool { return o.cfg.Transport.Path == "/p" }},
		{"serve", "WSGATE_REDIS", "redis://h:1", func(o *options) bool { return o.cfg.RedisURL == "redis://h:1" }},
		{"serve", "WSGATE_MODE", "simple", func(o *options) bool { return o.cfg.Mode == "simple" }},
		{"serve", "WSGATE_PREFIX", "q", func(o *options) bool { return o.cfg.Queues["default"].Prefix == "q" }},
		{"serve", "WSGATE_SESSION_WORKERS", "3", func(o *options) bool { return o.cfg.SessionWorkers == 3 }},
		{"serve", "WSGATE_PASSIVATE_AFTER", "off", func(o *options) bool { return o.cfg.PassivateAfter < 0 }},
		{"serve", "WSGATE_COMPRESSION", "false", func(o *options) bool { return !o.cfg.Transport.Compression }},
		{"serve", "WSGATE_DRAIN_TIMEOUT", "2.5", func(o *options) bool { return o.cfg.DrainTimeout == 2500*time.Millisecond }},
		{"serve", "WSGATE_PPROF", "true", func(o *options) bool { return o.cfg.Pprof }},
		{"serve", "WSGATE_FD_RESERVE", "99", func(o *options) bool { return o.cfg.Transport.FDReserve == 99 }},
		{"serve", "WSGATE_MEMORY_LIMIT", "off", func(o *options) bool { return o.memoryLimit == "off" }},
		{"serve", "WSGATE_ALLOWED_ORIGINS", "https://a, https://b", func(o *options) bool { return len(o.cfg.Transport.AllowedOrigins) == 2 }},
		{"serve", "WSGATE_CLOSE_ON_INVALID_UTF8", "true", func(o *options) bool { return o.cfg.CloseOnInvalidUTF8 }},
		{"serve", "WSGATE_MAX_CONNECTIONS", "5", func(o *options) bool { return o.cfg.Transport.MaxConnections == 5 }},
		{"serve", "WSGATE_MAX_CONNECTIONS_PER_IP", "6", func(o *options) bool { return o.cfg.Transport.MaxConnectionsPerIP == 6 }},
		{"serve", "WSGATE_MAX_FRAME_SIZE", "1000", func(o *options) bool { return o.cfg.Transport.MaxFrameSize == 1000 }},
		{"serve", "WSGATE_MAX_MESSAGE_SIZE", "2000", func(o *options) bool { return o.cfg.Transport.MaxMessageSize == 2000 }},
		{"serve", "WSGATE_MAX_IN_FLIGHT", "9", func(o *options) bool { return o.cfg.MaxInFlight == 9 }},
		{"serve", "WSGATE_MAX_RESPONSE_SIZE", "4096", func(o *options) bool { return o.cfg.MaxResponseSize == 4096 }},
		{"serve", "WSGATE_WRITE_QUEUE_BYTES", "65536", func(o *options) bool { return o.cfg.Transport.WriteQueueBytes == 65536 }},
		{"serve", "WSGATE_STREAM_TIMEOUT", "60", func(o *options) bool { return o.cfg.Transport.IdleTimeout == time.Minute }},
		{"serve", "WSGATE_WRITE_TIMEOUT", "3s", func(o *options) bool { return o.cfg.Transport.WriteTimeout == 3*time.Second }},
		{"serve", "WSGATE_QUEUE_TIMEOUT", "30", func(o *options) bool { return o.cfg.QueueTimeout == 30*time.Second }},
		{"serve", "WSGATE_QUEUE_WATCH_INTERVAL", "1s", func(o *options) bool { return o.cfg.QueueWatch.Interval == time.Second }},
		{"serve", "WSGATE_NO_WORKER_AFTER", "off", func(o *options) bool { return o.cfg.QueueWatch.NoWorkerAfter < 0 }},
		{"serve", "WSGATE_REQUIRE_WORKER", "true", func(o *options) bool { return o.cfg.QueueWatch.RequireWorker }},
		{"serve", "WSGATE_REQUIRE_RESULT", "true", func(o *options) bool { return o.cfg.RequireResult }},
		{"serve", "WSGATE_BUFFER_BUDGET", "1000000", func(o *options) bool { return o.cfg.Transport.BufferBudget == 1000000 }},
		{"serve", "WSGATE_LINGER_TIMEOUT", "off", func(o *options) bool { return o.cfg.Transport.LingerTimeout < 0 }},
		{"serve", "WSGATE_MESSAGE_TIMEOUT", "3s", func(o *options) bool { return o.cfg.Transport.MessageTimeout == 3*time.Second }},
		{"serve", "WSGATE_HANDSHAKE_TIMEOUT", "2s", func(o *options) bool { return o.cfg.Transport.HandshakeTimeout == 2*time.Second }},
		{"serve", "WSGATE_MAX_HANDSHAKES", "77", func(o *options) bool { return o.cfg.Transport.MaxHandshakes == 77 }},
		{"serve", "WSGATE_MAX_HANDSHAKES_PER_IP", "7", func(o *options) bool { return o.cfg.Transport.MaxHandshakesPerIP == 7 }},
		{"serve", "WSGATE_CONFIG", cfgPath, func(o *options) bool { return o.cfg.Transport.Path == "/from-file" }},
		{"serve", "WSGATE_TLS_CERT", certs.ServerCert, func(o *options) bool { return o.cfg.TLS.Cert == certs.ServerCert }},
		{"serve", "WSGATE_TLS_KEY", certs.ServerKey, func(o *options) bool { return o.cfg.TLS.Key == certs.ServerKey }},
		{"serve", "WSGATE_TLS_CLIENT_CA", certs.CA, func(o *options) bool { return o.cfg.TLS.ClientCA == certs.CA }},
		{"serve", "WSGATE_LOG_FORMAT", "json", isJSON},
		{"serve", "WSGATE_LOG_LEVEL", "error", func(o *options) bool { return !o.logger.Enabled(context.Background(), slog.LevelWarn) }},
		{"worker", "WSGATE_CONFIG", cfgPath, func(o *options) bool { return o.cfg.Transport.Path == "/from-file" }},
		{"worker", "WSGATE_LOG_FORMAT", "json", isJSON},
		{"worker", "WSGATE_LOG_LEVEL", "error", func(o *options) bool { return !o.logger.Enabled(context.Background(), slog.LevelWarn) }},
		{"worker", "WSGATE_DEMO", "true", func(o *options) bool { return o.demo }},
		{"worker", "WSGATE_CONCURRENCY", "7", func(o *options) bool { return o.concurrency == 7 }},
		{"worker", "WSGATE_REDIS", "redis://w:1", func(o *options) bool { return o.redisURL == "redis://w:1" }},
		{"worker", "WSGATE_MODE", "recoverable", func(o *options) bool { return o.mode == "recoverable" }},
		{"worker", "WSGATE_PREFIX", "wq", func(o *options) bool { return o.cfg.Queues["default"].Prefix == "wq" }},
		{"worker", "WSGATE_ADMIN", "127.0.0.1:2", func(o *options) bool { return o.cfg.Admin == "127.0.0.1:2" }},
		{"worker", "WSGATE_ORPHAN_TIMEOUT", "90", func(o *options) bool { return o.orphanTimeout == 90*time.Second }},
	}
	// The Redis settings, which serve and worker share.
	rc := func(o *options) server.RedisConfig { return o.cfg.RedisConfig }
	for _, cmd := range []string{"serve", "worker"} {
		tests = append(tests, []struct {
			cmd, env, value string
			ok              func(o *options) bool
		}{
			{cmd, "WSGATE_REDIS_USERNAME", "u", func(o *options) bool { return rc(o).Username == "u" }},
			{cmd, "WSGATE_REDIS_TLS", "true", func(o *options) bool { return rc(o).TLS.Enabled }},
			{cmd, "WSGATE_REDIS_TLS_CA", certs.CA, func(o *options) bool { return rc(o).TLS.CA == certs.CA }},
			{cmd, "WSGATE_REDIS_TLS_CERT", certs.ClientCert, func(o *options) bool { return rc(o).TLS.Cert == certs.ClientCert }},
			{cmd, "WSGATE_REDIS_TLS_KEY", certs.ClientKey, func(o *options) bool { return rc(o).TLS.Key == certs.ClientKey }},
			{cmd, "WSGATE_REDIS_TLS_SERVER_NAME", "r.internal", func(o *options) bool { return rc(o).TLS.ServerName == "r.internal" }},
			{cmd, "WSGATE_REDIS_TLS_INSECURE_SKIP_VERIFY", "true", func(o *options) bool { return rc(o).TLS.InsecureSkipVerify }},
			{cmd, "WSGATE_REDIS_SENTINEL_MASTER", "m", func(o *options) bool { return rc(o).Sentinel.Master == "m" }},
			{cmd, "WSGATE_REDIS_SENTINEL_ADDRS", "s:1,s:2", func(o *options) bool { return len(rc(o).Sentinel.Addrs) == 2 }},
			{cmd, "WSGATE_REDIS_CLUSTER_ADDRS", "c:1", func(o *options) bool { return len(rc(o).Cluster.Addrs) == 1 }},
		}...)
	}
	partner := map[string][2]string{ // a setting that is invalid alone comes with its partner
		"WSGATE_REDIS_SENTINEL_MASTER": {"WSGATE_REDIS_SENTINEL_ADDRS", "s:1"},
		"WSGATE_REDIS_SENTINEL_ADDRS":  {"WSGATE_REDIS_SENTINEL_MASTER", "m"},
		"WSGATE_REDIS_TLS_CERT":        {"WSGATE_REDIS_TLS_KEY", certs.ClientKey},
		"WSGATE_REDIS_TLS_KEY":         {"WSGATE_REDIS_TLS_CERT", certs.ClientCert},
		"WSGATE_REDIS_CLUSTER_ADDRS":   {"WSGATE_PREFIX", "{q}"},
		"WSGATE_TLS_CERT":              {"WSGATE_TLS_KEY", certs.ServerKey},
		"WSGATE_TLS_KEY":               {"WSGATE_TLS_CERT", certs.ServerCert},
		"WSGATE_TLS_CLIENT_CA":         {"WSGATE_TLS_CERT", certs.ServerCert},
	}
	for _, tt := range tests {
		t.Run(tt.cmd+"/"+tt.env, func(t *testing.T) {
			if p, ok := partner[tt.env]; ok {
				t.Setenv(p[0], p[1])
			}
			if tt.env == "WSGATE_TLS_CLIENT_CA" {
				t.Setenv("WSGATE_TLS_KEY", certs.ServerKey)
			}
			t.Setenv(tt.env, tt.value)
			o, err := parseFlags(tt.cmd, nil, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.ok(o) {
				t.Errorf("%s=%s had no effect", tt.env, tt.value)
			}
		})
		covered[tt.cmd+" "+tt.env] = true
	}
	for _, cmd := range []string{"serve", "worker"} {
		for _, m := range helpFlag.FindAllStringSubmatch(helpOf(t, cmd), -1) {
			name, usage := m[1], m[2]
			if name == "check-config" { // an action, not a setting
				continue
			}
			env := "WSGATE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
			if !strings.Contains(usage, "env "+env) {
				t.Errorf("%s --%s: its help does not name %s: %q", cmd, name, env, usage)
			}
			if !covered[cmd+" "+env] {
				t.Errorf("%s --%s: no test that %s works", cmd, name, env)
			}
		}
	}
}

func isJSON(o *options) bool { return fmt.Sprintf("%T", o.logger.Handler()) == "*slog.JSONHandler" }

func TestFormatVersion(t *testing.T) {
	t.Parallel()
	vcs := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.4.0"}, Settings: []debug.BuildSetting{
		{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"},
		{Key: "vcs.time", Value: "2026-12-02T03:01:50Z"}, {Key: "vcs.modified", Value: "true"}}}
	tests := []struct {
		name, override string
		bi             *debug.BuildInfo
		want           string
	}{
		{"no build info", "", nil, "wsgate (devel) (go1.x)"},
		{"source build without VCS", "", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "wsgate (devel) (go1.26.8)"},
		{"module version and revision", "", vcs, "wsgate v1.4.0 (revision 0123456789abcdef0123456789abcdef01234567, modified, 2026-12-02T03:01:50Z, go1.26.8)"},
		{"-ldflags -X main.version", "2.0.0", vcs, "wsgate 2.0.0 (revision 0123456789abcdef0123456789abcdef01234567, modified, 2026-12-02T03:01:50Z, go1.26.8)"},
	}
	for _, tt := range tests {
		if got := formatVersion(tt.override, tt.bi, "go1.x"); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
