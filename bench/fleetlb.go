package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// haproxyConfig is the load balancer in front of the fleet: HTTP mode (HAProxy passes the WebSocket upgrade
// through and then tunnels the bytes), one server line per gateway, health checks on each gateway's /readyz
// (which fails as soon as a gateway begins to drain), and redispatch so that a connection attempt to a gateway
// that has just stopped listening is retried on another before the health check has noticed.
//
// Draining: no on-marked-down shutdown-sessions. A gateway that drains answers what it took and then closes
// its connections itself (1001); cutting them at the balancer would lose those answers.
func haproxyConfig(listen, stats string, maxconn int, checkInter time.Duration, gws []*fleetGateway) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# written by go run ./bench fleet
global
    maxconn %d
    # HAProxy sets its own fd limit from maxconn (2 per proxied connection, plus checks and listeners).
    log stderr format short local0 warning

defaults
    mode http
    log global
    option dontlognull
    timeout connect 2s
    timeout client 60s        # before the upgrade: the HTTP request
    timeout server 60s
    timeout tunnel 1h         # after the upgrade: an idle WebSocket (the gateway pings and closes idle ones itself)
    timeout client-fin 5s
    timeout http-request 5s
    retries 3
    option redispatch 1       # a refused connect (a gateway that just stopped) goes to another gateway

listen stats
    bind %s
    stats enable
    stats uri /stats

frontend ws
    bind %s
    maxconn %d
    default_backend gateways

backend gateways
    balance leastconn
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter %dms fastinter %dms fall 1 rise 2 maxconn %d
`, maxconn+100, stats, listen, maxconn, checkInter.Milliseconds(), checkInter.Milliseconds(), maxconn)
	for _, g := range gws {
		aport := g.admin[strings.LastIndexByte(g.admin, ':')+1:]
		fmt.Fprintf(&b, "    server %s %s:%d check port %s\n", g.name, gatewayHost, g.port, aport)
	}
	return b.String()
}

func (f *fleet) startHAProxy() error {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		return errNoHAProxy
	}
	if limit := fdLimit(); 2*f.cfg.lbMaxConn+200 > limit {
		return fmt.Errorf("fd limit: HAProxy with maxconn %d needs about %d open files, the limit is %d (RLIMIT_NOFILE); "+
			"lower the connections through the balancer or raise ulimit -n", f.cfg.lbMaxConn, 2*f.cfg.lbMaxConn+200, limit)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	sport, err := freePort()
	if err != nil {
		return err
	}
	f.lbStats = fmt.Sprintf("127.0.0.1:%d", sport)
	inter := f.cfg.checkInter
	if inter <= 0 {
		inter = 250 * time.Millisecond
	}
	cfgPath := filepath.Join(f.dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(haproxyConfig(listen, f.lbStats, f.cfg.lbMaxConn, inter, f.gws)), 0o644); err != nil {
		return err
	}
	if out, err := exec.Command(bin, "-c", "-f", cfgPath).CombinedOutput(); err != nil {
		return fmt.Errorf("haproxy rejects %s: %v\n%s", cfgPath, err, lastLines(out, 8))
	}
	f.lb, err = startFProc(f.dir, "haproxy", nil, bin, "-db", "-f", cfgPath)
	if err != nil {
		return fmt.Errorf("haproxy: %w", err)
	}
	if err := waitTCP(listen, 10*time.Second); err != nil {
		if f.lb.exited() {
			return fmt.Errorf("haproxy did not start: %s", f.lb.why())
		}
		return fmt.Errorf("haproxy: %w", err)
	}
	f.lbURL = "ws://" + listen + "/ws"
	for _, g := range f.gws {
		if err := f.waitLB(g.name, "UP", 10*time.Second); err != nil {
			return err
		}
	}
	return nil
}
