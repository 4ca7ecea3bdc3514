package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// runFleetClient is the child process of the capacity scenario. It opens n connections from src, spread
// round robin over the gateways' URLs, each answering one ping request, and reports "ready <ok> <failed>
// <seconds>". It then obeys its stdin, one command a line: "ping" sends a ping request on every connection and
// reports "pinged <ok> <failed> <seconds>"; EOF closes everything. While it holds them it sends a WebSocket
// ping frame on every connection every 30 s, so the gateways' idle timeout (120 s) does not close them.
func runFleetClient(args []string) error {
	fs := flag.NewFlagSet("fleet-client", flag.ContinueOnError)
	urls := fs.String("urls", "", "gateway WebSocket URLs, comma-separated")
	src := fs.String("src", "127.0.0.2", "source address")
	n := fs.Int("conns", 1000, "connections to open")
	par := fs.Int("parallel", 32, "connections opened at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if limit := fdLimit(); *n+64 > limit {
		return fmt.Errorf("fd limit: %d connections need %d open files, the limit is %d", *n, *n+64, limit)
	}
	targets := strings.Split(*urls, ",")
	ip := net.ParseIP(*src)
	conns := make([]net.Conn, *n)
	var mu sync.Mutex // guards writes on conns (keepalive against the ping round)
	var failed atomic.Int64
	var firstErr atomic.Value
	t0 := time.Now()
	parallel(*n, *par, func(i int) {
		c, err := openAndPing(targets[i%len(targets)], ip)
		if err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			return
		}
		conns[i] = c
	})
	fmt.Printf("ready %d %d %.3f\n", int64(*n)-failed.Load(), failed.Load(), time.Since(t0).Seconds())
	if e := firstErr.Load(); e != nil {
		fmt.Fprintln(os.Stderr, "fleet-client: first error:", e)
	}
	stopKeepalive := make(chan struct{})
	go func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		ping := ws.MustCompileFrame(ws.MaskFrameInPlace(ws.NewPingFrame(nil)))
		for {
			select {
			case <-stopKeepalive:
				return
			case <-t.C:
				mu.Lock()
				for _, c := range conns {
					if c != nil {
						_ = c.SetWriteDeadline(time.Now().Add(time.Second))
						_, _ = c.Write(ping)
					}
				}
				mu.Unlock()
			}
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() != "ping" {
			continue
		}
		var ok, bad atomic.Int64
		t1 := time.Now()
		mu.Lock()
		parallel(len(conns), 256, func(i int) {
			c := conns[i]
			if c == nil {
				return
			}
			if err := pingOnce(c); err != nil {
				bad.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			ok.Add(1)
		})
		mu.Unlock()
		fmt.Printf("pinged %d %d %.3f\n", ok.Load(), bad.Load(), time.Since(t1).Seconds())
	}
	close(stopKeepalive)
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
	return nil
}

// pingOnce sends a ping request on an open connection and waits for its answer (pongs to our keepalive pings
// are skipped by the reader).
func pingOnce(c net.Conn) error {
	_ = c.SetWriteDeadline(time.Now().Add(60 * time.Second))
	if err := wsutil.WriteClientText(c, []byte(`{"ping":1}`)); err != nil {
		return err
	}
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	msg, err := wsutil.ReadServerText(c)
	if err != nil {
		return err
	}
	if !strings.Contains(string(msg), `"ping":"pong"`) {
		return fmt.Errorf("not a pong: %.200s", msg)
	}
	return nil
}

// parallel runs f(0..n-1) on k goroutines.
func parallel(n, k int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < k; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		}()
	}
	wg.Wait()
}
