package transport

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"

	"github.com/wsgate/wsgate/internal/testutil"
)

// fdLimitServerEnv makes TestFDLimitServer run a server (with that FDReserve) under a low descriptor limit.
const fdLimitServerEnv = "WSGATE_TEST_FD_LIMIT_SERVER"

// fdLimit is the child's RLIMIT_NOFILE: some 10 descriptors are the process's own, the rest are connections.
const fdLimit = 64

// TestFDLimitServer is the server of TestFDLimit in a child process, so that its lowered descriptor limit
// touches neither the test's clients nor the other tests. It prints its address and serves until stdin closes.
func TestFDLimitServer(t *testing.T) {
	v, ok := os.LookupEnv(fdLimitServerEnv)
	if !ok {
		t.Skip("the child process of TestFDLimit")
	}
	reserve, err := strconv.Atoi(v)
	if err != nil {
		t.Fatal(err)
	}
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	rl.Cur = fdLimit
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	// Warnings go to stderr, where the parent counts failed accepts.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := NewServer(Config{FDReserve: reserve, Logger: logger}, &echoHandler{})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Serve(ln)
	}()
	fmt.Printf("addr %s\n", ln.Addr())
	io.Copy(io.Discard, os.Stdin)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Shutdown(ctx)
	<-done
	fmt.Printf("stats %+v\n", s.Stats())
}

// startFDLimitServer starts TestFDLimitServer in a child process and returns its address and its stderr
// (the server's warnings).
func startFDLimitServer(t *testing.T, reserve int) (string, *testutil.Buffer) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFDLimitServer$", "-test.v")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%d", fdLimitServerEnv, reserve))
	stderr := &testutil.Buffer{}
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewScanner(stdout)
	t.Cleanup(func() {
		stdin.Close()
		for out.Scan() {
			if strings.HasPrefix(out.Text(), "stats ") || strings.HasPrefix(out.Text(), "--- ") {
				t.Log("child: " + out.Text())
			}
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("child: %v\n%s", err, stderr)
		}
	})
	for out.Scan() {
		if addr, ok := strings.CutPrefix(out.Text(), "addr "); ok {
			return addr, stderr
		}
	}
	t.Fatalf("child printed no address: %v", out.Err())
	return "", nil
}

// answersEcho checks that conn is a working WebSocket.
func answersEcho(t *testing.T, conn net.Conn) {
	t.Helper()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if err := wsutil.WriteClientText(conn, []byte("still there?")); err != nil {
		t.Fatalf("write: %v", err)
	}
	if got, err := wsutil.ReadServerText(conn); err != nil || string(got) != "still there?" {
		t.Fatalf("echo %q, %v", got, err)
	}
}

// TestFDLimit is issue 10 item 10: at the descriptor limit a client gets 503 before the upgrade, never a 101
// and a dead socket; open connections go on working; once some close, new ones are accepted again. With a
// reserve the estimate refuses first; without one, the failing dup does.
func TestFDLimit(t *testing.T) {
	for _, tt := range []struct {
		name    string
		reserve int
	}{{"reserve=8", 8}, {"reserve=off", -1}} {
		t.Run(tt.name, func(t *testing.T) {
			addr, childLog := startFDLimitServer(t, tt.reserve)
			var open []net.Conn
			for {
				resp, conn := rawUpgrade(t, addr)
				if resp.StatusCode == http.StatusServiceUnavailable {
					break
				}
				if resp.StatusCode != http.StatusSwitchingProtocols {
					t.Fatalf("connection %d: status %d", len(open)+1, resp.StatusCode)
				}
				answersEcho(t, conn) // a 101 is a working connection
				open = append(open, conn)
				if len(open) > fdLimit {
					t.Fatalf("%d connections under a limit of %d descriptors and none refused", len(open), fdLimit)
				}
			}
			t.Logf("%d connections, then 503", len(open))
			if len(open) < fdLimit/2 {
				t.Fatalf("only %d connections before the first 503", len(open))
			}
			if resp, _ := rawUpgrade(t, addr); resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("second refusal: status %d, want 503", resp.StatusCode)
			}
			for _, c := range open {
				answersEcho(t, c)
			}
			// Sockets that connect and say nothing: the first takes the last descriptor in a handshake, and
			// accept fails for the next with EMFILE. The accept loop backs off (5 ms doubling to 1 s), so it
			// logs a handful of failures, not thousands, until the silent sockets close.
			var silent []net.Conn
			for i := 0; i < 20; i++ {
				c, err := net.Dial("tcp", addr) // the kernel completes it without accept
				if err != nil {
					t.Fatal(err)
				}
				silent = append(silent, c)
			}
			testutil.WaitFor(t, func() bool { return strings.Contains(childLog.String(), "too many open files") })
			for _, c := range silent {
				c.Close()
			}
			for _, c := range open[:4] {
				c.Close()
			}
			testutil.WaitFor(t, func() bool {
				resp, conn := rawUpgrade(t, addr)
				if resp.StatusCode == http.StatusSwitchingProtocols {
					answersEcho(t, conn)
					return true
				}
				return false
			})
			if n := strings.Count(childLog.String(), "accept failed"); n > 20 {
				t.Fatalf("accept failed %d times: the accept loop spins at the descriptor limit", n)
			}
		})
	}
}
