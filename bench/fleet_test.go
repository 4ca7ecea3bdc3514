package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the capacity scenario's client process (it runs os.Executable()).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "fleet-client" {
		if err := runFleetClient(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "fleet-client:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func needFleetTools(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a Redis Cluster, gateways, workers and HAProxy")
	}
	for _, bin := range []string{"redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (make redis-server installs it)", bin)
		}
	}
}

func buildOnce(t *testing.T) string {
	t.Helper()
	bin, err := buildWsgate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestFleetRollingDeploy runs a small fleet for real: a 3-master Redis Cluster, 2 gateways, a worker and
// HAProxy; 300 sessions each answer a ping; then 200 clients through HAProxy keep requests going while each
// gateway in turn is SIGTERMed and restarted. Every request sent must end in exactly one outcome (a result,
// ServiceUnavailable, or a 1001 close or reset during a drain, before the gateway took it), none lost or
// answered twice, and every client must be connected again within 2 s. It also fails on a request that got
// no answer at all (the drain's close race, see rollStats), unless WSGATE_FLEET_STRICT=0.
func TestFleetRollingDeploy(t *testing.T) {
	needFleetTools(t)
	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Skip("haproxy is not installed: the rolling deploy needs it (make haproxy installs the Debian package)")
	}
	out := t.TempDir()
	f, err := parseFleetFlags([]string{"--scenarios", "capacity,rolling", "--gateways", "2", "--workers", "1",
		"--sessions", "300", "--per-process", "150", "--settle", "0s", "--roll-clients", "200", "--think", "20ms",
		"--roll-settle", "500ms", "--out", out})
	if err != nil {
		t.Fatal(err)
	}
	f.bin = buildOnce(t)
	t0 := time.Now()
	res, err := fleetRun(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("fleet run took %v", time.Since(t0))
	c := res.Capacity
	if c.Sessions != 300 || c.PingOK != 300 || c.PingFailed != 0 {
		t.Fatalf("capacity: %d sessions, %d pongs, %d failed; want 300, 300, 0", c.Sessions, c.PingOK, c.PingFailed)
	}
	for _, g := range c.Gateways {
		if g.Sessions < 100 {
			t.Errorf("%s holds %d sessions: the clients do not spread over the gateways", g.Name, g.Sessions)
		}
	}
	r := res.Rolling
	t.Logf("rolling: %+v", r.RollOutcome)
	if len(r.Restarts) != 2 {
		t.Fatalf("%d restarts, want 2", len(r.Restarts))
	}
	// The books: every send has exactly one outcome.
	if r.Lost != 0 || r.Duplicates != 0 || r.Unaccounted != 0 {
		t.Fatalf("lost %d, duplicates %d, unaccounted %d: want 0", r.Lost, r.Duplicates, r.Unaccounted)
	}
	if got := r.Results + r.Refused + r.ClosedUnanswered + r.ResetInDrain + sum(r.OtherErrors); got != r.Sent {
		t.Fatalf("outcomes %d != sent %d", got, r.Sent)
	}
	if len(r.OtherErrors) != 0 {
		t.Fatalf("error replies other than ServiceUnavailable: %v", r.OtherErrors)
	}
	// The drain was exercised: clients were moved off each restarted gateway, each within the bound.
	if r.Refused+r.ClosedUnanswered+r.ResetInDrain == 0 || r.Reconnects < int64(r.Clients)/2 {
		t.Fatalf("%d refused, %d closed unanswered, %d reconnects: the restarts did not reach the clients",
			r.Refused, r.ClosedUnanswered, r.Reconnects)
	}
	if r.SlowReconnects != 0 || r.MaxReconnectMs > 2000 {
		t.Fatalf("%d reconnects over 2 s (longest %.0f ms)", r.SlowReconnects, r.MaxReconnectMs)
	}
	if _, err := os.Stat(filepath.Join(out, "fleet-rolling.png")); err != nil {
		t.Fatal(err)
	}
}

// TestFleetBadInput: what cannot work is said clearly, and every process started is stopped.
func TestFleetBadInput(t *testing.T) {
	needFleetTools(t)
	bin := buildOnce(t)
	fakeCLI := t.TempDir()
	if err := os.WriteFile(filepath.Join(fakeCLI, "redis-cli"),
		[]byte("#!/bin/sh\necho '[ERR] Node 127.0.0.1:1 is not empty.'\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	brokenGateway := filepath.Join(t.TempDir(), "wsgate")
	if err := os.WriteFile(brokenGateway, []byte("#!/bin/sh\n[ \"$1\" = serve ] && { echo 'boom: cannot start' >&2; exit 3; }\nexec "+
		bin+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, want string
		args       []string
		bin        string
		path       string
	}{
		{"fd limit", "fd limit: 1000000 sessions over 2 gateways", []string{"--sessions", "1000000", "--gateways", "2"}, bin, ""},
		{"gateway will not start", "gateway gw0 did not start: exit status 3", nil, brokenGateway, ""},
		{"cluster will not form", "redis cluster did not form", nil, bin, fakeCLI},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.path != "" {
				t.Setenv("PATH", tc.path+":"+os.Getenv("PATH"))
			}
			args := append([]string{"--scenarios", "capacity", "--sessions", "10", "--gateways", "1", "--workers", "1",
				"--settle", "0s", "--out", t.TempDir()}, tc.args...)
			f, err := parseFleetFlags(args)
			if err == nil {
				f.bin = tc.bin
				_, err = fleetRun(context.Background(), f)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v; want one containing %q", err, tc.want)
			}
			t.Logf("%v", err)
			if kids := children(); len(kids) > 0 {
				t.Fatalf("processes left running: %v", kids)
			}
		})
	}
}

// children lists this process's live child processes.
func children() []string {
	var out []string
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", os.Getpid()))
	for _, tf := range tasks {
		b, _ := os.ReadFile(tf)
		for _, pid := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(pid)
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", n))
			out = append(out, pid+" "+strings.TrimSpace(string(comm)))
		}
	}
	return out
}
