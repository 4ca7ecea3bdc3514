package server_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/server"
)

// TestConsoleInChromium opens the admin console in a real headless Chromium, sends {"ping":1} through its
// request box and reads "pong" from the page. It saves a screenshot (to $WSGATE_ARTIFACTS when set).
func TestConsoleInChromium(t *testing.T) {
	t.Parallel()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (.ci/run installs Debian's chromium so CI runs this test)")
	}
	srv := redistest.Start(t)
	startWorker(t, srv)
	gw := startGateway(t, srv, server.Config{Admin: "127.0.0.1:0",
		QueueWatch: server.QueueWatch{Interval: 100 * time.Millisecond}})

	page := startChromium(t, chromium)
	page.call("Page.enable", nil)
	page.call("Page.navigate", map[string]any{"url": "http://" + gw.AdminAddr() + "/console/"})
	testutil.WaitFor(t, func() bool {
		return strings.HasPrefix(page.eval(`document.getElementById("ws-url").textContent`), "ws://")
	})
	testutil.WaitFor(t, func() bool { // the figures and the queue table fill in
		return page.eval(`document.getElementById("status").textContent`) == "ready" &&
			page.eval(`document.querySelectorAll("#queues tbody tr").length`) == "1"
	})
	page.eval(`document.getElementById("request").value = '{"ping":1}'; document.getElementById("send").click(); ""`)
	testutil.WaitFor(t, func() bool {
		return strings.Contains(page.eval(`document.getElementById("reply").textContent`), `"pong"`)
	})
	reply := page.eval(`document.getElementById("reply").textContent`)
	var m map[string]any
	if err := json.Unmarshal([]byte(reply), &m); err != nil || m["msg_type"] != "ping" || m["ping"] != "pong" {
		t.Fatalf("the console shows %q", reply)
	}
	testutil.WaitFor(t, func() bool { return page.eval(`document.getElementById("connections").textContent`) == "1" })

	dir := os.Getenv("WSGATE_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	var shot struct {
		Data string `json:"data"`
	}
	page.call("Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil || len(png) < 1000 {
		t.Fatalf("screenshot: %d bytes, %v", len(png), err)
	}
	path := filepath.Join(dir, "console.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("console screenshot: %s", path)
}

// cdpPage drives one Chromium tab over the DevTools protocol.
type cdpPage struct {
	t    *testing.T
	conn interface {
		Close() error
	}
	rw   *bufio.ReadWriter
	next int
}

func startChromium(t *testing.T, bin string) *cdpPage {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--remote-debugging-port=0", "--user-data-dir="+t.TempDir(), "--window-size=1100,800", "about:blank")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	found := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			if _, after, ok := strings.Cut(s.Text(), "DevTools listening on "); ok {
				found <- after
			}
		}
	}()
	var browserURL string
	select {
	case browserURL = <-found:
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not say where DevTools listens")
	}
	host := strings.SplitN(strings.TrimPrefix(browserURL, "ws://"), "/", 2)[0]
	var targets []struct {
		Type, WebSocketDebuggerURL string
	}
	testutil.WaitFor(t, func() bool {
		resp, err := http.Get("http://" + host + "/json/list")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return json.NewDecoder(resp.Body).Decode(&targets) == nil && len(targets) > 0
	})
	for _, tg := range targets {
		if tg.Type == "page" {
			conn, br, _, err := ws.Dial(context.Background(), tg.WebSocketDebuggerURL)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			r := bufio.NewReader(conn)
			if br != nil {
				r = br
			}
			return &cdpPage{t: t, conn: conn, rw: bufio.NewReadWriter(r, bufio.NewWriter(conn))}
		}
	}
	t.Fatalf("no page target in %+v", targets)
	return nil
}

// call sends one DevTools command and decodes its result into out (if given), skipping events.
func (p *cdpPage) call(method string, params map[string]any, out ...any) {
	p.t.Helper()
	p.next++
	id := p.next
	msg, _ := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err := wsutil.WriteClientText(p.rw, msg); err != nil {
		p.t.Fatal(err)
	}
	if err := p.rw.Flush(); err != nil {
		p.t.Fatal(err)
	}
	for {
		data, err := wsutil.ReadServerText(p.rw)
		if err != nil {
			p.t.Fatalf("%s: %v", method, err)
		}
		var resp struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct{ Message string }
		}
		if json.Unmarshal(data, &resp) != nil || resp.ID != id {
			continue // an event
		}
		if resp.Error != nil {
			p.t.Fatalf("%s: %s", method, resp.Error.Message)
		}
		if len(out) > 0 {
			if err := json.Unmarshal(resp.Result, out[0]); err != nil {
				p.t.Fatalf("%s: %v", method, err)
			}
		}
		return
	}
}

// eval evaluates a JavaScript expression in the page and returns its value as a string.
func (p *cdpPage) eval(expr string) string {
	p.t.Helper()
	var r struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
	}
	p.call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &r)
	return fmt.Sprint(r.Result.Value)
}
