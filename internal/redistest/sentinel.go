package redistest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelSet is a master, a replica of it and Sentinels watching it, every process owned by a test.
type SentinelSet struct {
	tb testing.TB
	// MasterName is the name the Sentinels know the master by.
	MasterName string
	// Nodes are the master (first, at the start) and its replica.
	Nodes []*Server
	// Addrs are the Sentinels' addresses.
	Addrs []string
}

// StartSentinel starts a master, one replica and n Sentinels (quorum 1, a master is down after 1 s) with the
// given extra redis-server args for the data nodes, and waits until every Sentinel sees the replica.
func StartSentinel(tb testing.TB, n int, args ...string) *SentinelSet {
	tb.Helper()
	master := Start(tb, args...)
	replica := Start(tb, append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(master.Port)}, args...)...)
	s := &SentinelSet{tb: tb, MasterName: "wsgate", Nodes: []*Server{master, replica}}
	for i := 0; i < n; i++ {
		s.Addrs = append(s.Addrs, startSentinel(tb, s.MasterName, master.Port))
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, addr := range s.Addrs {
		sc := redis.NewSentinelClient(&redis.Options{Addr: addr})
		for {
			reps, err := sc.Replicas(context.Background(), s.MasterName).Result()
			if err == nil && len(reps) == 1 && reps[0]["flags"] == "slave" {
				break
			}
			if time.Now().After(deadline) {
				tb.Fatalf("sentinel %s does not see the replica: %v %v", addr, reps, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		sc.Close()
	}
	return s
}

// startSentinel runs one Sentinel (redis-server --sentinel with a generated config) until the test ends.
func startSentinel(tb testing.TB, master string, masterPort int) string {
	tb.Helper()
	dir := tb.TempDir()
	port := FreePort(tb)
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf("port %d\nbind 127.0.0.1\ndaemonize no\ndir %s\nloglevel warning\n"+
		"sentinel monitor %s 127.0.0.1 %d 1\nsentinel down-after-milliseconds %[3]s 1000\n"+
		"sentinel failover-timeout %[3]s 5000\nsentinel parallel-syncs %[3]s 1\n", port, dir, master, masterPort)
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		tb.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "sentinel.log"))
	if err != nil {
		tb.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command("redis-server", conf, "--sentinel")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start sentinel: %v", err)
	}
	tb.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := "127.0.0.1:" + strconv.Itoa(port)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
		err := c.Ping(context.Background()).Err()
		c.Close()
		if err == nil {
			return addr
		}
		if time.Now().After(deadline) {
			tb.Fatalf("sentinel on %s did not answer: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// MasterAddr is the master's address according to the first Sentinel.
func (s *SentinelSet) MasterAddr() string {
	s.tb.Helper()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addrs[0]})
	defer sc.Close()
	a, err := sc.GetMasterAddrByName(context.Background(), s.MasterName).Result()
	if err != nil {
		s.tb.Fatalf("sentinel: master address: %v", err)
	}
	return a[0] + ":" + a[1]
}

// Failover makes the Sentinels promote the replica (SENTINEL FAILOVER) and waits until the new master takes
// writes and the Sentinels announce it. It returns the new master's address.
func (s *SentinelSet) Failover() string {
	s.tb.Helper()
	old := s.MasterAddr()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.Addrs[0]})
	defer sc.Close()
	if err := sc.Failover(context.Background(), s.MasterName).Err(); err != nil {
		s.tb.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		addr := s.MasterAddr()
		if addr != old {
			c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
			role, err := c.Do(context.Background(), "ROLE").Slice()
			c.Close()
			if err == nil && len(role) > 0 && role[0] == "master" {
				return addr
			}
		}
		if time.Now().After(deadline) {
			s.tb.Fatalf("failover: master still %s after 20 s", old)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
