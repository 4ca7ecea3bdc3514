package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// dialWS opens one WebSocket connection from the source address src (so that many client processes, each on
// its own 127.0.0.x, do not run out of ephemeral ports).
func dialWS(ctx context.Context, url string, src net.IP) (net.Conn, error) {
	d := ws.Dialer{
		Timeout: 30 * time.Second,
		NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}
			return nd.DialContext(ctx, network, addr)
		},
	}
	conn, br, _, err := d.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	if br != nil {
		ws.PutReader(br)
	}
	return conn, nil
}

// runIdleClient is the child process of the idle scenario: it opens n connections from src, sends one ping
// request on each and waits for its reply, reports "ready <ok> <failed>" on stdout, then holds the connections
// (with no goroutine per connection) until its stdin closes.
func runIdleClient(args []string) error {
	fs := flag.NewFlagSet("client", flag.ContinueOnError)
	url := fs.String("url", "", "gateway WebSocket URL")
	src := fs.String("src", "127.0.0.1", "source address")
	n := fs.Int("conns", 1000, "connections to open")
	par := fs.Int("parallel", 64, "connections opened at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ip := net.ParseIP(*src)
	conns := make([]net.Conn, 0, *n)
	var mu sync.Mutex
	var failed atomic.Int64
	var firstErr atomic.Value
	next := atomic.Int64{}
	var wg sync.WaitGroup
	for w := 0; w < *par; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for int(next.Add(1)) <= *n {
				c, err := openAndPing(*url, ip)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	fmt.Printf("ready %d %d\n", len(conns), failed.Load())
	if e := firstErr.Load(); e != nil {
		fmt.Fprintln(os.Stderr, "first error:", e)
	}
	io.Copy(io.Discard, bufio.NewReader(os.Stdin)) // hold until the harness closes our stdin
	for _, c := range conns {
		c.Close()
	}
	return nil
}

func openAndPing(url string, src net.IP) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := dialWS(ctx, url, src)
	if err != nil {
		return nil, err
	}
	if err := wsutil.WriteClientText(c, []byte(`{"ping":1}`)); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	if _, err := wsutil.ReadServerText(c); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, nil
}
