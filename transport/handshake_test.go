package transport

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/testutil"
)

// dialerFrom is a WebSocket dialer whose sockets leave from the loopback address src.
func dialerFrom(src string) ws.Dialer {
	return ws.Dialer{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		return nd.DialContext(ctx, network, addr)
	}}
}

// TestSlowHandshakesFromOneAddressDoNotLockOthersOut is issue 10 item 1: 1,100 clients on 127.0.0.2 send their
// upgrade request one byte per second; 12 clients on 127.0.0.3 must each complete the upgrade within 1 s.
func TestSlowHandshakesFromOneAddressDoNotLockOthersOut(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,100 sockets")
	}
	const attackers, clients = 1100, 12
	s, _, addr := startServer(t, Config{}) // the defaults are what is under test
	slow := make([]net.Conn, 0, attackers)
	t.Cleanup(func() {
		for _, c := range slow {
			c.Close()
		}
	})
	nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
	for i := 0; i < attackers; i++ {
		c, err := nd.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("attacker %d: %v", i, err)
		}
		slow = append(slow, c)
	}
	// The drip: one byte of the request per second on every attacking socket (write errors are sockets the
	// server closed).
	req := []byte("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for i := 0; ; i = (i + 1) % len(req) {
			for _, c := range slow {
				_ = c.SetWriteDeadline(time.Now().Add(10 * time.Millisecond))
				_, _ = c.Write(req[i : i+1])
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	defer wg.Wait()
	defer close(stop)
	// Every attacking socket has been accepted: it holds a handshake slot or was turned away.
	testutil.WaitFor(t, func() bool { return len(s.hsSlots)+int(s.stats.rejected.Load()) >= attackers })

	var ok atomic.Int64
	var cw sync.WaitGroup
	d := dialerFrom("127.0.0.3")
	for i := 0; i < clients; i++ {
		cw.Add(1)
		go func() {
			defer cw.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if conn, _, _, err := d.Dial(ctx, "ws://"+addr+"/ws"); err == nil {
				ok.Add(1)
				conn.Close()
			}
		}()
	}
	cw.Wait()
	t.Logf("%d of %d clients connected within 1 s during the attack (%+v)", ok.Load(), clients, s.Stats())
	if ok.Load() != clients {
		t.Fatalf("%d of %d clients connected within 1 s, want all", ok.Load(), clients)
	}
}

func TestHandshakeKey(t *testing.T) {
	tests := []struct{ ip, want string }{
		{"127.0.0.2", "127.0.0.2"},
		{"::ffff:10.1.2.3", "10.1.2.3"},
		{"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::"},
		{"2001:db8:1:2::1", "2001:db8:1:2::"},
		{"2001:db8:1:3::1", "2001:db8:1:3::"},
	}
	for _, tt := range tests {
		if got := handshakeKey(netip.MustParseAddr(tt.ip)); got != netip.MustParseAddr(tt.want) {
			t.Errorf("handshakeKey(%s) = %s, want %s", tt.ip, got, tt.want)
		}
	}
}
