package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/wstest"
)

// buildBinary builds wsgate once for the test.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wsgate")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
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
	bin := buildBinary(t)
	srv := redistest.Start(t)
	port := redistest.FreePort(t)
	startProcess(t, bin, nil, "worker", "--demo", "--redis", srv.URL(), "--concurrency", "4")
	lines := startProcess(t, bin, nil, "serve", "--redis", srv.URL(),
		"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--admin", "off")
	pingOK(t, waitURL(t, lines))
}

func TestDevAnswersWithNothingElseRunning(t *testing.T) {
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
		{[]string{"serve", "--log-format", "xml"}, "--log-format"},
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
