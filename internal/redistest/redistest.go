// Package redistest starts a private redis-server for one test, on a free port, so tests never depend on shared
// state and fault tests can kill and restart it.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Server is one redis-server process owned by a test.
type Server struct {
	tb   testing.TB
	Port int
	Addr string
	args []string
	dir  string
	cmd  *exec.Cmd
}

// Start runs redis-server on a free port (extra args are passed through) and stops it when the test ends.
func Start(tb testing.TB, args ...string) *Server {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		tb.Fatalf("redis-server is not installed: run `make test` (it installs the Debian package as root)")
	}
	s := &Server{tb: tb, Port: FreePort(tb), args: args, dir: tb.TempDir()}
	s.Addr = "127.0.0.1:" + strconv.Itoa(s.Port)
	s.start()
	tb.Cleanup(s.Kill)
	return s
}

// FreePort asks the kernel for a TCP port that is free right now.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func (s *Server) start() {
	s.tb.Helper()
	args := append([]string{
		"--port", strconv.Itoa(s.Port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--dir", s.dir, "--daemonize", "no", "--loglevel", "warning",
	}, s.args...)
	cmd := exec.Command("redis-server", args...)
	logf, err := os.OpenFile(filepath.Join(s.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.tb.Fatalf("redis log: %v", err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.tb.Fatalf("start redis-server: %v", err)
	}
	s.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1})
		err := c.Ping(context.Background()).Err()
		c.Close()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("redis-server on %s did not answer: %v", s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Restart starts the server again on the same port (after Kill).
func (s *Server) Restart() {
	s.tb.Helper()
	s.Kill()
	s.start()
}

// URL is the redis:// URL of the server.
func (s *Server) URL() string { return "redis://" + s.Addr }

// Client returns a go-redis client for the server, closed when the test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr})
	s.tb.Cleanup(func() { c.Close() })
	return c
}

// Monitored is one command seen by MONITOR: the sender's address and the quoted words, e.g.
// `"LPUSH" "jobs::pending" "id"`.
type Monitored struct {
	Addr  string
	Words string
}

// Monitor streams the commands the server receives (MONITOR) until the returned stop function is called,
// and returns them.
func (s *Server) Monitor() (stop func() []Monitored) {
	s.tb.Helper()
	conn, err := net.Dial("tcp", s.Addr)
	if err != nil {
		s.tb.Fatalf("monitor: %v", err)
	}
	fmt.Fprint(conn, "MONITOR\r\n")
	lines := make(chan Monitored, 1<<16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		var acc strings.Builder
		for {
			n, err := conn.Read(buf)
			acc.Write(buf[:n])
			for {
				str := acc.String()
				i := strings.Index(str, "\r\n")
				if i < 0 {
					break
				}
				line := str[:i]
				acc.Reset()
				acc.WriteString(str[i+2:])
				// +<time> [<db> <addr>] "CMD" "arg" ...
				if strings.HasPrefix(line, "+") && line != "+OK" {
					i, j := strings.Index(line, "["), strings.Index(line, "] ")
					if i >= 0 && j > i {
						if f := strings.Fields(line[i+1 : j]); len(f) == 2 {
							lines <- Monitored{Addr: f[1], Words: line[j+2:]}
						}
					}
				}
			}
			if err != nil {
				return
			}
		}
	}()
	return func() []Monitored {
		time.Sleep(50 * time.Millisecond) // let the last commands reach the monitor stream
		conn.Close()
		<-done
		close(lines)
		var out []Monitored
		for l := range lines {
			out = append(out, l)
		}
		return out
	}
}

// Cluster is a Redis Cluster of three masters, each a redis-server process owned by a test.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts three redis-server processes with cluster mode on, joins them with
// `redis-cli --cluster create`, and waits until the cluster is ready.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	c := &Cluster{}
	var addrs []string
	for i := 0; i < 3; i++ {
		n := Start(tb, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000")
		c.Nodes = append(c.Nodes, n)
		addrs = append(addrs, n.Addr)
	}
	// What `redis-cli --cluster create` does, without its one-second waits: each master takes a third of the
	// slots, and the others meet the first.
	ctx := context.Background()
	const slots = 16384
	for i, n := range c.Nodes {
		first, last := i*slots/3, (i+1)*slots/3-1
		if err := n.Client().ClusterAddSlotsRange(ctx, first, last).Err(); err != nil {
			tb.Fatalf("cluster addslotsrange on %s: %v", n.Addr, err)
		}
		if i > 0 {
			if err := n.Client().ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(c.Nodes[0].Port)).Err(); err != nil {
				tb.Fatalf("cluster meet from %s: %v", n.Addr, err)
			}
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range c.Nodes {
		for {
			info, err := n.Client().ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("cluster not ready: %v %s", err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// Addrs are the addresses of the cluster's nodes.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Addr)
	}
	return out
}
