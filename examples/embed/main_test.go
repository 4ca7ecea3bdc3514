package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/wstest"
)

// TestEmbedProgram builds the example, runs it against a real redis-server and talks to it.
func TestEmbedProgram(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "embed")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	srv := redistest.Start(t)
	port := redistest.FreePort(t)
	cmd := exec.Command(bin, "-redis", srv.URL(), "-listen", fmt.Sprintf("127.0.0.1:%d", port))
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stdout)
	url := ""
	for url == "" && sc.Scan() {
		url = regexp.MustCompile(`ws://\S+`).FindString(sc.Text())
	}
	if url == "" {
		t.Fatal("the program never said where it listens")
	}
	c := wstest.Dial(t, url)
	checks := []struct {
		req  string
		want func(map[string]any) bool
	}{
		{`{"ping":1}`, func(m map[string]any) bool { return m["ping"] == "pong" && m["served_by"] == "embed" }},
		{`{"echo":1}`, func(m map[string]any) bool { return m["error"].(map[string]any)["code"] == "AuthorizationRequired" }},
		{`{"hello":"ann"}`, func(m map[string]any) bool { return m["hello"] == "welcome" }},
		{`{"echo":1}`, func(m map[string]any) bool { return m["msg_type"] == "echo" && m["error"] == nil }},
		{`{"time":1}`, func(m map[string]any) bool { v, _ := m["time"].(float64); return v > 1e9 }},
	}
	for _, ch := range checks {
		if got := c.Call(ch.req); !ch.want(got) {
			t.Fatalf("%s: %v", ch.req, got)
		}
	}
	cmd.Process.Signal(os.Interrupt)
	done := make(chan error)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the program did not stop cleanly: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the program did not stop on SIGINT")
	}
}
