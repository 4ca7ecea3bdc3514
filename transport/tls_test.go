package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
)

// startTLS runs an echo server (connRecorder) with the certificate of certs (and ClientCA when mtls).
func startTLS(t *testing.T, cfg Config, certs *redistest.Certs, mtls bool) (*Server, *connRecorder, *CertReloader, string) {
	t.Helper()
	h := &connRecorder{conns: make(chan *Conn, 64)}
	s, r, addr := startTLSWith(t, cfg, certs, mtls, h)
	return s, h, r, addr
}

// startTLSWith runs a TLS server with handler h.
func startTLSWith(t *testing.T, cfg Config, certs *redistest.Certs, mtls bool, h Handler) (*Server, *CertReloader, string) {
	t.Helper()
	files := TLSFiles{Cert: certs.ServerCert, Key: certs.ServerKey}
	if mtls {
		files.ClientCA = certs.CA
	}
	r, err := NewCertReloader(files)
	if err != nil {
		t.Fatal(err)
	}
	cfg.TLS = r.TLSConfig()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	s, err := NewServer(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	return s, r, serve(t, s)
}

// dialWSS connects to a TLS server with tc; it returns the connection and the server's certificate.
func dialWSS(t testing.TB, addr string, tc *tls.Config) (net.Conn, *x509.Certificate, error) {
	t.Helper()
	var state *tls.ConnectionState
	d := ws.Dialer{TLSClient: func(conn net.Conn, host string) net.Conn {
		cfg := tc.Clone()
		cfg.ServerName = host
		c := tls.Client(conn, cfg)
		if err := c.Handshake(); err == nil {
			st := c.ConnectionState()
			state = &st
		}
		return c
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, _, err := d.Dial(ctx, "wss://"+addr+"/ws")
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(func() { conn.Close() })
	if state == nil || len(state.PeerCertificates) == 0 {
		t.Fatal("no peer certificate")
	}
	return conn, state.PeerCertificates[0], nil
}

func mustDialWSS(t testing.TB, addr string, tc *tls.Config) (net.Conn, *x509.Certificate) {
	t.Helper()
	conn, cert, err := dialWSS(t, addr, tc)
	if err != nil {
		t.Fatalf("dial wss://%s: %v", addr, err)
	}
	return conn, cert
}

// serverCert reads the leaf of certs' server certificate.
func serverCert(t *testing.T, certs *redistest.Certs) *x509.Certificate {
	t.Helper()
	pair, err := tls.LoadX509KeyPair(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func TestTLSEchoAndPeerCertificate(t *testing.T) {
	certs := redistest.NewCerts(t)
	s, _, _, addr := startTLS(t, Config{}, certs, false)
	conn, peer := mustDialWSS(t, addr, &tls.Config{RootCAs: redistest.CAPool(t, certs)})
	if want := serverCert(t, certs); peer.SerialNumber.Cmp(want.SerialNumber) != 0 {
		t.Fatalf("served certificate %v, want %v", peer.SerialNumber, want.SerialNumber)
	}
	echoes(t, conn)
	// A message bigger than a TLS record, in both directions.
	big := strings.Repeat("x", 100<<10)
	if err := wsutil.WriteClientText(conn, []byte(big)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if got, err := wsutil.ReadServerText(conn); err != nil || string(got) != big {
		t.Fatalf("big echo: %d bytes, %v", len(got), err)
	}
	conn.Close()
	testutil.WaitFor(t, func() bool { return s.Len() == 0 && s.Stats().Buffered == 0 })
}

// TestTLSRefusesWhatIsNotTLS: a plain ws:// client fails its upgrade (a plain HTTP request gets 400, as from
// net/http), so does a client that does not trust the certificate, and the server counts both.
func TestTLSRefusesWhatIsNotTLS(t *testing.T) {
	certs, other := redistest.NewCerts(t), redistest.NewCerts(t)
	s, _, _, addr := startTLS(t, Config{}, certs, false)

	if _, _, _, err := ws.Dial(context.Background(), "ws://"+addr+"/ws"); err == nil ||
		!strings.Contains(err.Error(), "400") {
		t.Fatalf("plain client on the TLS port: %v, want a 400 status error", err)
	}
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	io.WriteString(raw, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(raw).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 400 ") {
		t.Fatalf("plain HTTP on the TLS port: %q, %v", line, err)
	}
	if _, _, err := dialWSS(t, addr, &tls.Config{RootCAs: redistest.CAPool(t, other)}); err == nil {
		t.Fatal("a client that does not trust the certificate connected")
	}
	testutil.WaitFor(t, func() bool { st := s.Stats(); return st.TLSHandshakeErrors == 3 && st.Rejected == 3 })
	if s.Len() != 0 {
		t.Fatalf("%d connections registered", s.Len())
	}
}

func TestMutualTLS(t *testing.T) {
	certs := redistest.NewCerts(t)
	_, _, _, addr := startTLS(t, Config{}, certs, true)
	roots := redistest.CAPool(t, certs)
	if _, _, err := dialWSS(t, addr, &tls.Config{RootCAs: roots}); err == nil {
		t.Fatal("a client without a certificate connected")
	}
	pair, err := tls.LoadX509KeyPair(certs.ClientCert, certs.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	conn, _ := mustDialWSS(t, addr, &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{pair}})
	echoes(t, conn)
}

// TestCertReload: after Reload, new handshakes get the new certificate and an existing connection goes on; a
// Reload from broken files fails and keeps the certificate in use.
func TestCertReload(t *testing.T) {
	certs, next := redistest.NewCerts(t), redistest.NewCerts(t)
	first, second := serverCert(t, certs), serverCert(t, next)
	_, _, r, addr := startTLS(t, Config{}, certs, false)
	tc := &tls.Config{RootCAs: redistest.CAPool(t, certs, next)}
	old, peer := mustDialWSS(t, addr, tc)
	if peer.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("before the reload: serial %v, want %v", peer.SerialNumber, first.SerialNumber)
	}
	certs.ReplaceServerCert(t, next)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if r.Leaf().SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Fatal("Leaf is not the new certificate")
	}
	conn, peer := mustDialWSS(t, addr, tc)
	if peer.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Fatalf("after the reload: serial %v, want %v", peer.SerialNumber, second.SerialNumber)
	}
	echoes(t, conn)
	echoes(t, old)

	tests := []struct {
		name       string
		cert, key  []byte
		wantErrSub string
	}{
		{"garbage certificate", []byte("not a certificate"), nil, "certificate"},
		{"key of another certificate", nil, mustRead(t, redistest.NewCerts(t).ServerKey), "private key does not match"},
		{"empty key", nil, []byte{}, "key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			certs.ReplaceServerCert(t, next) // good files first
			if tt.cert != nil {
				os.WriteFile(certs.ServerCert, tt.cert, 0o600)
			}
			if tt.key != nil {
				os.WriteFile(certs.ServerKey, tt.key, 0o600)
			}
			if err := r.Reload(); err == nil || !strings.Contains(err.Error(), tt.wantErrSub) {
				t.Fatalf("Reload: %v, want an error about %q", err, tt.wantErrSub)
			}
			_, peer := mustDialWSS(t, addr, tc)
			if peer.SerialNumber.Cmp(second.SerialNumber) != 0 {
				t.Fatalf("after a failed reload: serial %v, want the one in use before (%v)", peer.SerialNumber, second.SerialNumber)
			}
		})
	}
	echoes(t, old)
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLimitsOverPlainAndTLS runs the transport's limits over ws:// and wss://: the same close codes, counters
// and backpressure.
func TestLimitsOverPlainAndTLS(t *testing.T) {
	type env struct {
		s    *Server
		h    *connRecorder
		dial func() net.Conn
	}
	tests := []struct {
		name string
		cfg  Config
		run  func(t *testing.T, e env)
	}{
		{"frame too big: 1009", Config{MaxFrameSize: 1000}, func(t *testing.T, e env) {
			c := e.dial()
			c.Write(rawFrame(0x82, true, make([]byte, 1001)))
			if got := readClose(t, c); got != CloseMessageTooBig {
				t.Fatalf("close code %d, want %d", got, CloseMessageTooBig)
			}
			testutil.WaitFor(t, func() bool { return e.s.Len() == 0 })
		}},
		{"unmasked frame: 1002", Config{}, func(t *testing.T, e env) {
			c := e.dial()
			c.Write(rawFrame(0x81, false, []byte("hi")))
			if got := readClose(t, c); got != CloseProtocolError {
				t.Fatalf("close code %d, want %d", got, CloseProtocolError)
			}
		}},
		{"ping is answered", Config{}, func(t *testing.T, e env) {
			c := e.dial()
			c.Write(rawFrame(0x89, true, []byte("p")))
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if h, err := ws.ReadHeader(c); err != nil || h.OpCode != ws.OpPong {
				t.Fatalf("got %v, %v, want a pong", h.OpCode, err)
			}
		}},
		{"slow reader: queue full", Config{WriteQueueBytes: 1 << 20, WriteTimeout: time.Second}, func(t *testing.T, e env) {
			c := e.dial()
			wsutil.WriteClientText(c, []byte("flood:1024")) // 64 MiB, never read
			testutil.WaitFor(t, func() bool { return e.s.Stats().SlowConsumers == 1 && e.s.Len() == 0 })
		}},
		{"client that stops reading: write timeout", Config{WriteQueueBytes: 64 << 20, WriteTimeout: time.Second}, func(t *testing.T, e env) {
			c := e.dial()
			wsutil.WriteClientText(c, []byte("flood:256")) // 16 MiB
			testutil.WaitFor(t, func() bool { return e.s.Stats().WriteTimeouts == 1 && e.s.Len() == 0 })
			if st := e.s.Stats(); st.SlowConsumers != 0 || st.Buffered != 0 {
				t.Fatalf("%+v", st)
			}
		}},
		{"buffer budget: the client that does not read goes, others stay", Config{BufferBudget: 2 << 20, WriteQueueBytes: 64 << 20}, func(t *testing.T, e env) {
			reader, greedy := e.dial(), e.dial()
			wsutil.WriteClientText(greedy, []byte("flood:256"))
			testutil.WaitFor(t, func() bool { return e.s.Stats().BudgetEvictions == 1 && e.s.Len() == 1 })
			echoes(t, reader)
		}},
		{"unfinished message: 1008 after MessageTimeout", Config{MessageTimeout: time.Second, WriteTimeout: time.Second}, func(t *testing.T, e env) {
			c := e.dial()
			holdMessage(t, c, 10<<10)
			if got := readClose(t, c); got != ClosePolicyViolation {
				t.Fatalf("close code %d, want %d", got, ClosePolicyViolation)
			}
			testutil.WaitFor(t, func() bool { return e.s.Stats().Buffered == 0 })
		}},
		{"idle: ping, then 1001", Config{IdleTimeout: 2 * time.Second}, func(t *testing.T, e env) {
			c := e.dial()
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if h, err := ws.ReadHeader(c); err != nil || h.OpCode != ws.OpPing {
				t.Fatalf("expected a keepalive ping, got %v %v", h.OpCode, err)
			}
			if got := readClose(t, c); got != CloseGoingAway {
				t.Fatalf("close code %d, want %d", got, CloseGoingAway)
			}
			testutil.WaitFor(t, func() bool { return e.s.Len() == 0 })
		}},
		{"paused: not read until resumed", Config{}, func(t *testing.T, e env) {
			c := e.dial()
			sc := <-e.h.conns
			echoes(t, c)
			sc.SetReadPaused(true)
			wsutil.WriteClientText(c, []byte("later"))
			_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
			if got, err := wsutil.ReadServerText(c); err == nil {
				t.Fatalf("paused connection answered %q", got)
			}
			sc.SetReadPaused(false)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if got, err := wsutil.ReadServerText(c); err != nil || string(got) != "later" {
				t.Fatalf("after resume: %q, %v", got, err)
			}
		}},
		{"paused: a hang-up is noticed at once", Config{IdleTimeout: time.Minute}, func(t *testing.T, e env) {
			c := e.dial()
			sc := <-e.h.conns
			echoes(t, c)
			sc.SetReadPaused(true)
			wsutil.WriteClientText(c, []byte("unread"))
			c.Close()
			testutil.WaitFor(t, func() bool { return e.s.Len() == 0 })
		}},
		{"shutdown: 1001", Config{}, func(t *testing.T, e env) {
			c := e.dial()
			echoes(t, c)
			done := make(chan error, 1)
			go func() { done <- e.s.Shutdown(context.Background()) }()
			if got := readClose(t, c); got != CloseGoingAway {
				t.Fatalf("close code %d, want %d", got, CloseGoingAway)
			}
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		for _, secure := range []bool{false, true} {
			name := "ws/" + tt.name
			if secure {
				name = "wss/" + tt.name
			}
			t.Run(name, func(t *testing.T) {
				var e env
				cfg := tt.cfg
				if secure {
					certs := redistest.NewCerts(t)
					var addr string
					e.s, e.h, _, addr = startTLS(t, cfg, certs, false)
					tc := &tls.Config{RootCAs: redistest.CAPool(t, certs)}
					e.dial = func() net.Conn { c, _ := mustDialWSS(t, addr, tc); return c }
				} else {
					cfg.Logger = quiet
					e.h = &connRecorder{conns: make(chan *Conn, 64)}
					var err error
					if e.s, err = NewServer(cfg, e.h); err != nil {
						t.Fatal(err)
					}
					addr := serve(t, e.s)
					e.dial = func() net.Conn { return dial(t, addr) }
				}
				tt.run(t, e)
			})
		}
	}
}

// footprintClientEnv, when set (addr,n,secure,ca), makes TestConnectionFootprint the client process.
const footprintClientEnv = "WSGATE_TEST_FOOTPRINT_CLIENT"

// TestConnectionFootprint measures what an idle connection costs the server, ws:// and wss://: heap and stack
// in use after GC and goroutines, per connection, with the clients in a child process so that their memory is
// not counted. The figures are logged (go test -v); the test checks the goroutine count, which is exact.
func TestConnectionFootprint(t *testing.T) {
	if v := os.Getenv(footprintClientEnv); v != "" {
		footprintClients(t, v)
		return
	}
	if testing.Short() {
		t.Skip("opens 2 × 300 connections")
	}
	const n = 300
	certs := redistest.NewCerts(t)
	for _, tt := range []struct {
		name       string
		secure     bool
		minG, maxG float64 // goroutines per connection
	}{
		{"ws", false, 0, 0.02},
		{"wss", true, 0.98, 1.02},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var s *Server
			var addr string
			if tt.secure {
				s, _, addr = startTLSWith(t, Config{}, certs, false, &echoHandler{})
			} else {
				s, _, addr = startServer(t, Config{})
			}
			before := footprintSample()
			cmd := exec.Command(os.Args[0], "-test.run=^TestConnectionFootprint$", "-test.count=1")
			cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%d,%t,%s", footprintClientEnv, addr, n, tt.secure, certs.CA))
			stdin, _ := cmd.StdinPipe()
			out := &testutil.Buffer{}
			cmd.Stdout, cmd.Stderr = out, out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			defer stdin.Close() // the child closes its connections and exits
			testutil.WaitFor(t, func() bool { return strings.Contains(out.String(), "ready") })
			if s.Len() != n {
				t.Fatalf("%d connections, want %d; client said:\n%s", s.Len(), n, out.String())
			}
			after := footprintSample()
			per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / n }
			heap, stack := per(after.heap, before.heap), per(after.stack, before.stack)
			g := float64(after.goroutines-before.goroutines) / n
			t.Logf("%s: per idle connection: %.0f B heap, %.0f B stack, %.0f B total, %.2f goroutines",
				tt.name, heap, stack, heap+stack, g)
			if g < tt.minG || g > tt.maxG {
				t.Errorf("%.2f goroutines per connection, want %.2f to %.2f", g, tt.minG, tt.maxG)
			}
		})
	}
}

type footprint struct {
	heap, stack uint64
	goroutines  int
}

func footprintSample() footprint {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return footprint{heap: ms.HeapInuse, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

// footprintClients is the child process of TestConnectionFootprint: it opens the connections, has each
// answered once, says "ready" and holds them until its stdin closes.
func footprintClients(t *testing.T, spec string) {
	parts := strings.Split(spec, ",")
	addr, secure, ca := parts[0], parts[2] == "true", parts[3]
	n, _ := strconv.Atoi(parts[1])
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	d := ws.Dialer{TLSConfig: &tls.Config{RootCAs: pool}}
	url := "ws://" + addr + "/ws"
	if secure {
		url = "wss://" + addr + "/ws"
	}
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, _, _, err := d.Dial(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if err := wsutil.WriteClientText(c, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := wsutil.ReadServerText(c); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
}
