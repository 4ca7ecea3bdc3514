package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wsgate/wsgate/internal/testutil"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// echoHandler echoes every message; the message "flood:N" makes it send N messages of 64 KiB.
type echoHandler struct {
	opened, closed atomic.Int64
}

func (h *echoHandler) OnOpen(c *Conn) { h.opened.Add(1) }
func (h *echoHandler) OnClose(c *Conn, err error) {
	h.closed.Add(1)
}
func (h *echoHandler) OnMessage(c *Conn, m Message) {
	var n int
	if _, err := fmt.Sscanf(string(m.Data), "flood:%d", &n); err == nil {
		for i := 0; i < n; i++ {
			if err := c.Send(make([]byte, 64<<10)); err != nil {
				return
			}
		}
		return
	}
	out := append([]byte(nil), m.Data...)
	if m.Binary {
		_ = c.SendBinary(out)
	} else {
		_ = c.Send(out)
	}
}

func startServer(t *testing.T, cfg Config) (*Server, *echoHandler, string) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	h := &echoHandler{}
	s, err := NewServer(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	return s, h, serve(t, s)
}

func dial(t testing.TB, addr string) net.Conn {
	t.Helper()
	conn, _, _, err := ws.Dial(context.Background(), "ws://"+addr+"/ws")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// rawFrame builds a client frame by hand: b0 is FIN|RSV|opcode, the payload is masked when masked is true.
func rawFrame(b0 byte, masked bool, payload []byte) []byte {
	var out []byte
	mb := byte(0)
	if masked {
		mb = 0x80
	}
	switch l := len(payload); {
	case l < 126:
		out = append(out, b0, mb|byte(l))
	case l <= 0xffff:
		out = append(out, b0, mb|126, byte(l>>8), byte(l))
	default:
		out = append(out, b0, mb|127)
		out = binary.BigEndian.AppendUint64(out, uint64(l))
	}
	p := append([]byte(nil), payload...)
	if masked {
		mask := [4]byte{1, 2, 3, 4}
		out = append(out, mask[:]...)
		ws.Cipher(p, mask, 0)
	}
	return append(out, p...)
}

// readClose reads frames until a close frame and returns its code.
func readClose(t *testing.T, conn net.Conn) uint16 {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		h, err := ws.ReadHeader(conn)
		if err != nil {
			t.Fatalf("no close frame: %v", err)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(conn, p); err != nil {
			t.Fatalf("read payload: %v", err)
		}
		if h.OpCode == ws.OpClose {
			if len(p) < 2 {
				return CloseNoStatus
			}
			return binary.BigEndian.Uint16(p)
		}
	}
}

func TestProtocolErrorsCloseWithTheRightCode(t *testing.T) {
	_, _, addr := startServer(t, Config{MaxFrameSize: 1000, MaxMessageSize: 1500})
	big := make([]byte, 1001)
	tests := []struct {
		name   string
		frames [][]byte
		want   uint16
	}{
		{"unmasked frame", [][]byte{rawFrame(0x81, false, []byte("hi"))}, CloseProtocolError},
		{"reserved bit", [][]byte{rawFrame(0x81|0x40, true, []byte("hi"))}, CloseProtocolError},
		{"unknown data opcode", [][]byte{rawFrame(0x83, true, nil)}, CloseProtocolError},
		{"unknown control opcode", [][]byte{rawFrame(0x8B, true, nil)}, CloseProtocolError},
		{"control frame over 125 bytes", [][]byte{rawFrame(0x89, true, make([]byte, 126))}, CloseProtocolError},
		{"fragmented ping", [][]byte{rawFrame(0x09, true, nil)}, CloseProtocolError},
		{"continuation without a message", [][]byte{rawFrame(0x80, true, []byte("x"))}, CloseProtocolError},
		{"new message inside a fragmented one", [][]byte{rawFrame(0x01, true, []byte("a")), rawFrame(0x81, true, []byte("b"))}, CloseProtocolError},
		{"invalid UTF-8 text", [][]byte{rawFrame(0x81, true, []byte{0xff, 0xfe})}, CloseInvalidPayload},
		{"frame too big", [][]byte{rawFrame(0x82, true, big)}, CloseMessageTooBig},
		{"message too big", [][]byte{rawFrame(0x01, true, make([]byte, 800)), rawFrame(0x80, true, make([]byte, 800))}, CloseMessageTooBig},
		{"close 1000 is echoed", [][]byte{rawFrame(0x88, true, []byte{0x03, 0xe8})}, CloseNormal},
		{"close 4001 is echoed", [][]byte{rawFrame(0x88, true, []byte{0x0f, 0xa1, 'b', 'y', 'e'})}, 4001},
		{"close without a code", [][]byte{rawFrame(0x88, true, nil)}, CloseNormal},
		{"close with a reserved code", [][]byte{rawFrame(0x88, true, []byte{0x03, 0xed})}, CloseProtocolError},
		{"close with a one-byte body", [][]byte{rawFrame(0x88, true, []byte{0x03})}, CloseProtocolError},
		{"close reason not UTF-8", [][]byte{rawFrame(0x88, true, []byte{0x03, 0xe8, 0xff})}, CloseInvalidPayload},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := dial(t, addr)
			for _, f := range tt.frames {
				if _, err := conn.Write(f); err != nil {
					t.Fatal(err)
				}
			}
			if got := readClose(t, conn); got != tt.want {
				t.Fatalf("close code %d, want %d", got, tt.want)
			}
			// The server closes the socket after its close frame.
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Read(make([]byte, 1)); err == nil {
				t.Fatal("socket still open after close frame")
			}
		})
	}
}

func TestMessagesFragmentsAndPing(t *testing.T) {
	_, _, addr := startServer(t, Config{})
	conn := dial(t, addr)
	// A text message in three fragments with a ping in the middle, all in one write.
	var stream []byte
	stream = append(stream, rawFrame(0x01, true, []byte("hel"))...)
	stream = append(stream, rawFrame(0x89, true, []byte("are you there"))...)
	stream = append(stream, rawFrame(0x00, true, []byte("lo "))...)
	stream = append(stream, rawFrame(0x80, true, []byte("world"))...)
	stream = append(stream, rawFrame(0x82, true, []byte{0, 1, 2})...)
	// And byte by byte, so that every header and payload is split.
	if _, err := conn.Write(stream[:len(stream)-5]); err != nil {
		t.Fatal(err)
	}
	for _, b := range stream[len(stream)-5:] {
		time.Sleep(2 * time.Millisecond)
		conn.Write([]byte{b})
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	want := []struct {
		op   ws.OpCode
		data string
	}{{ws.OpPong, "are you there"}, {ws.OpText, "hello world"}, {ws.OpBinary, "\x00\x01\x02"}}
	for _, w := range want {
		h, err := ws.ReadHeader(conn)
		if err != nil {
			t.Fatal(err)
		}
		p := make([]byte, h.Length)
		io.ReadFull(conn, p)
		if h.OpCode != w.op || string(p) != w.data || h.Masked {
			t.Fatalf("got op %v %q (masked %v), want op %v %q", h.OpCode, p, h.Masked, w.op, w.data)
		}
	}
}

func TestUpgradeRefusals(t *testing.T) {
	_, _, addr := startServer(t, Config{MaxConnections: 1, AllowedOrigins: []string{"https://ok.example"}})
	get := func(path, origin string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		req.Header.Set("Connection", "Upgrade")
		req.Header.Set("Upgrade", "websocket")
		req.Header.Set("Sec-WebSocket-Version", "13")
		req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("/other", ""); got != 404 {
		t.Fatalf("wrong path: %d, want 404", got)
	}
	if got := get("/ws", "https://evil.example"); got != 403 {
		t.Fatalf("bad origin: %d, want 403", got)
	}
	dial(t, addr) // the one allowed connection
	testutil.WaitWithin(t, 5*time.Second, func() bool { return get("/ws", "https://ok.example") == 503 },
		func() string { return "connection over MaxConnections was not refused with 503" })
}

func TestHalfFrameClientsDoNotPinTheReadPool(t *testing.T) {
	const workers = 2
	_, _, addr := startServer(t, Config{ReadWorkers: workers})
	// Twice as many clients as pool workers each send half a frame and stop.
	half := rawFrame(0x81, true, []byte("hello, this frame never ends"))
	for i := 0; i < 2*workers; i++ {
		c := dial(t, addr)
		if _, err := c.Write(half[:len(half)/2]); err != nil {
			t.Fatal(err)
		}
	}
	c := dial(t, addr)
	for i := 0; i < 20; i++ {
		msg := fmt.Sprintf("msg %d", i)
		if err := wsutil.WriteClientText(c, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, err := wsutil.ReadServerText(c)
		if err != nil || string(got) != msg {
			t.Fatalf("normal client: %q, %v", got, err)
		}
	}
}

func TestSlowReaderIsDisconnected(t *testing.T) {
	s, _, addr := startServer(t, Config{WriteQueueBytes: 1 << 20, WriteTimeout: time.Second})
	c := dial(t, addr)
	// Ask for 64 MiB and never read: the kernel buffers fill, then the 1 MiB queue, then the server closes.
	if err := wsutil.WriteClientText(c, []byte("flood:1024")); err != nil {
		t.Fatal(err)
	}
	testutil.WaitWithin(t, 10*time.Second, func() bool { return s.Stats().SlowConsumers > 0 && s.Len() == 0 },
		func() string { return fmt.Sprintf("slow reader not disconnected: %+v", s.Stats()) })
}

func TestIdleConnectionsArePingedThenClosed(t *testing.T) {
	s, _, addr := startServer(t, Config{IdleTimeout: 2 * time.Second})
	c := dial(t, addr)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	h, err := ws.ReadHeader(c)
	if err != nil || h.OpCode != ws.OpPing {
		t.Fatalf("expected a keepalive ping, got %v %v", h.OpCode, err)
	}
	// Not answering it: the connection is closed with 1001 after the idle timeout.
	if code := readClose(t, c); code != CloseGoingAway {
		t.Fatalf("close code %d, want %d", code, CloseGoingAway)
	}
	testutil.WaitWithin(t, 5*time.Second, func() bool { return s.Len() == 0 },
		func() string { return "idle connection still registered" })
}

func TestGoroutinesDoNotGrowWithConnections(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 5,000 connections")
	}
	s, _, addr := startServer(t, Config{})
	c0 := dial(t, addr)
	wsutil.WriteClientText(c0, []byte("x"))
	wsutil.ReadServerText(c0)
	testutil.WaitFor(t, func() bool { return len(s.hsSlots) == 0 }) // no handshake goroutine left
	before := runtime.NumGoroutine()
	const n = 5000
	conns := make([]net.Conn, 0, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := 0; w < 50; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/50; i++ {
				conn, _, _, err := ws.Dial(context.Background(), "ws://"+addr+"/ws")
				if err != nil {
					errs <- err
					return
				}
				if err := wsutil.WriteClientText(conn, []byte("ping")); err != nil {
					errs <- err
					return
				}
				if _, err := wsutil.ReadServerText(conn); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				conns = append(conns, conn)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	if s.Len() != n+1 {
		t.Fatalf("server holds %d connections, want %d", s.Len(), n+1)
	}
	// The handshakes' goroutines end just after the upgrades: wait for them, not for a fixed time.
	testutil.WaitWithin(t, 10*time.Second, func() bool { return runtime.NumGoroutine()-before <= 20 }, func() string {
		return fmt.Sprintf("goroutines grew from %d to %d with %d idle connections", before, runtime.NumGoroutine(), n)
	})
}

func TestShutdownSendsGoingAway(t *testing.T) {
	s, h, addr := startServer(t, Config{})
	c := dial(t, addr)
	wsutil.WriteClientText(c, []byte("x"))
	wsutil.ReadServerText(c)
	done := make(chan error)
	go func() { done <- s.Shutdown(context.Background()) }()
	if code := readClose(t, c); code != CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if h.closed.Load() != 1 {
		t.Fatalf("OnClose called %d times", h.closed.Load())
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
	if err := s.Shutdown(context.Background()); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("second Shutdown: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{MaxFrameSize: -1}, {IdleTimeout: -1}, {Path: "ws"}, {MessageTimeout: -1},
		{BufferBudget: -1}} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate accepted %+v", c)
		}
	}
	if strings.Contains(fmt.Sprint((&Config{}).Validate()), "negative") {
		t.Error("zero Config rejected")
	}
}

func TestClientThatStopsReadingTimesOut(t *testing.T) {
	// The queue could take it all, but the client reads nothing: after WriteTimeout it is cut off.
	s, _, addr := startServer(t, Config{WriteQueueBytes: 64 << 20, WriteTimeout: time.Second})
	c := dial(t, addr)
	if err := wsutil.WriteClientText(c, []byte("flood:256")); err != nil { // 16 MiB
		t.Fatal(err)
	}
	testutil.WaitWithin(t, 15*time.Second, func() bool { return s.Stats().WriteTimeouts > 0 && s.Len() == 0 },
		func() string { return fmt.Sprintf("blocked client not cut off: %+v", s.Stats()) })
	if st := s.Stats(); st.SlowConsumers != 0 {
		t.Fatalf("closed as a slow consumer, not by the write timeout: %+v", st)
	}
}

func TestBackedUpClientGetsEverythingOnceItReads(t *testing.T) {
	s, _, addr := startServer(t, Config{WriteQueueBytes: 64 << 20})
	c := dial(t, addr)
	const flood = 128 * 64 << 10
	if err := wsutil.WriteClientText(c, []byte("flood:128")); err != nil { // 8 MiB: more than the socket buffers
		t.Fatal(err)
	}
	// Backed up: the socket took what it could and the rest waits in the queue for writability.
	testutil.WaitFor(t, func() bool { b := s.Stats().Buffered; return b > 0 && b < flood })
	for i := 0; i < 128; i++ {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got, err := wsutil.ReadServerText(c)
		if err != nil || len(got) != 64<<10 {
			t.Fatalf("message %d: %d bytes, %v", i, len(got), err)
		}
	}
}

func TestMaxConnectionsPerIP(t *testing.T) {
	_, _, addr := startServer(t, Config{MaxConnectionsPerIP: 2})
	dialFrom := func(src string) error {
		d := ws.Dialer{NetDial: func(ctx context.Context, network, a string) (net.Conn, error) {
			nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
			return nd.DialContext(ctx, network, a)
		}}
		conn, _, _, err := d.Dial(context.Background(), "ws://"+addr+"/ws")
		if err == nil {
			t.Cleanup(func() { conn.Close() })
		}
		return err
	}
	for i := 0; i < 2; i++ {
		if err := dialFrom("127.0.0.1"); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
	}
	if err := dialFrom("127.0.0.1"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("third connection from one address: %v, want 503", err)
	}
	if err := dialFrom("127.0.0.2"); err != nil {
		t.Fatalf("connection from another address: %v", err)
	}
}

func TestSlowHandshakeIsCutOff(t *testing.T) {
	s, _, addr := startServer(t, Config{HandshakeTimeout: 300 * time.Millisecond, MaxHandshakes: 2})
	// Two clients hold every handshake slot by sending half a request line and stopping.
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("GET /ws HTTP/1.1\r\nHost: x\r\n"))
	}
	// Once the deadline passes their slots free up and a real client gets in.
	var err error
	testutil.WaitWithin(t, 5*time.Second, func() bool {
		var conn net.Conn
		if conn, _, _, err = ws.Dial(context.Background(), "ws://"+addr+"/ws"); err == nil {
			conn.Close()
		}
		return err == nil
	}, func() string { return fmt.Sprintf("slow handshakes still block new clients: %v (%+v)", err, s.Stats()) })
	if s.Stats().Rejected < 2 {
		t.Fatalf("slow handshakes not counted as rejected: %+v", s.Stats())
	}
}
