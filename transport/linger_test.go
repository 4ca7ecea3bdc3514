package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"golang.org/x/sys/unix"

	"github.com/wsgate/wsgate/internal/testutil"
)

// closingHandler answers "burst:N:SIZE" with N binary replies of SIZE bytes (each starting with its number)
// and then closes the connection with 1000, and "close" with the close alone; it ignores anything else.
type closingHandler struct{}

func (closingHandler) OnOpen(*Conn)         {}
func (closingHandler) OnClose(*Conn, error) {}
func (closingHandler) OnMessage(c *Conn, m Message) {
	var n, size int
	if _, err := fmt.Sscanf(string(m.Data), "burst:%d:%d", &n, &size); err == nil {
		for i := 0; i < n; i++ {
			reply := make([]byte, size)
			binary.BigEndian.PutUint32(reply, uint32(i))
			if err := c.SendBinary(reply); err != nil {
				return
			}
		}
	}
	if string(m.Data) == "close" || n > 0 {
		_ = c.Close(CloseNormal, "done")
	}
}

func startClosing(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	cfg.Logger = quiet
	s, err := NewServer(cfg, closingHandler{})
	if err != nil {
		t.Fatal(err)
	}
	return s, serve(t, s)
}

// dialSmallWindow dials with a receive buffer of rcvbuf bytes, set before the connection so that the window
// the client advertises stays small: what the server writes beyond it waits in the server's kernel.
func dialSmallWindow(t *testing.T, addr string, rcvbuf int) net.Conn {
	t.Helper()
	nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
		}); err != nil {
			return err
		}
		return serr
	}}
	d := ws.Dialer{NetDial: nd.DialContext}
	conn, _, _, err := d.Dial(context.Background(), "ws://"+addr+"/ws")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// closePayloadCode reads the payload of a close frame whose header h was read.
func closePayloadCode(t *testing.T, conn net.Conn, h ws.Header) uint16 {
	t.Helper()
	p := make([]byte, h.Length)
	if _, err := io.ReadFull(conn, p); err != nil {
		t.Fatalf("close frame's payload: %v", err)
	}
	if len(p) < 2 {
		return CloseNoStatus
	}
	return binary.BigEndian.Uint16(p)
}

// TestLingeringCloseDeliversEverything is the case lingering is for: the server queues more replies than the
// client's window takes, closes with 1000, and the client, which has not read yet, sends more requests that
// the server will never read. Closing the socket at once, the kernel answers those requests with RST and
// drops what it had not delivered: the client got part of its replies and ECONNRESET. Lingering, it gets every
// reply, the close frame and then EOF.
func TestLingeringCloseDeliversEverything(t *testing.T) {
	const replies, size = 40, 8 << 10 // 320 KiB: many times the client's window, within the server's socket buffer
	s, addr := startClosing(t, Config{LingerTimeout: 10 * time.Second})
	conn := dialSmallWindow(t, addr, 4096)
	if err := wsutil.WriteClientText(conn, []byte(fmt.Sprintf("burst:%d:%d", replies, size))); err != nil {
		t.Fatal(err)
	}
	// The server has written everything to its kernel and closed the connection: it is gone for the handler.
	testutil.WaitWithin(t, 10*time.Second, func() bool { st := s.Stats(); return st.Accepted == 1 && st.Connections == 0 },
		func() string { return fmt.Sprintf("the server did not close the connection: %+v", s.Stats()) })
	// Requests the client sent before it saw the close frame, in one write (the kernel may answer the first
	// segment with RST).
	late := rawFrame(0x81, true, []byte("a late request"))
	if _, err := conn.Write(append(append(late, late...), late...)); err != nil {
		t.Fatalf("late requests: %v", err)
	}
	if st := s.Stats(); st.Lingering != 1 {
		t.Fatalf("the closed socket does not linger: %+v", st)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for i := 0; ; i++ {
		h, err := ws.ReadHeader(conn)
		if err != nil {
			t.Fatalf("after %d of %d replies: %v", i, replies, err)
		}
		if h.OpCode == ws.OpClose {
			if i != replies {
				t.Fatalf("close frame after %d replies, want %d", i, replies)
			}
			if code := closePayloadCode(t, conn, h); code != CloseNormal {
				t.Fatalf("close code %d, want %d", code, CloseNormal)
			}
			break
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(conn, p); err != nil {
			t.Fatalf("reply %d of %d: %v", i, replies, err)
		}
		if len(p) != size || binary.BigEndian.Uint32(p) != uint32(i) {
			t.Fatalf("reply %d: %d bytes numbered %d", i, len(p), binary.BigEndian.Uint32(p))
		}
	}
	if n, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the close frame: %d bytes, %v; want EOF (the server's FIN), not a reset", n, err)
	}
	conn.Close()
	testutil.WaitWithin(t, 5*time.Second, func() bool { return s.Stats().Lingering == 0 },
		func() string { return fmt.Sprintf("the socket still lingers after the client closed: %+v", s.Stats()) })
	if st := s.Stats(); st.LingerTimeouts != 0 || st.LingerOverflows != 0 {
		t.Fatalf("closed by the deadline or the bound, not by the client's EOF: %+v", st)
	}
}

// TestLingerDeadline: a client that never closes its side is cut off LingerTimeout after the hand-off; until
// then what it sends is read and discarded, after it the server's kernel resets the connection.
func TestLingerDeadline(t *testing.T) {
	const timeout = 300 * time.Millisecond
	s, addr := startClosing(t, Config{LingerTimeout: timeout})
	conn := dial(t, addr)
	asked := time.Now()
	if err := wsutil.WriteClientText(conn, []byte("close")); err != nil {
		t.Fatal(err)
	}
	if code := readClose(t, conn); code != CloseNormal {
		t.Fatalf("close code %d, want %d", code, CloseNormal)
	}
	if n, err := conn.Read(make([]byte, 1)); err != io.EOF { // the FIN of the shutdown of the writing side
		t.Fatalf("after the close frame: %d bytes, %v; want EOF", n, err)
	}
	testutil.WaitWithin(t, 5*time.Second, func() bool { return s.Stats().Lingering == 1 },
		func() string { return fmt.Sprintf("no lingering socket: %+v", s.Stats()) })
	late := rawFrame(0x81, true, []byte("still here"))
	if _, err := conn.Write(late); err != nil { // read and discarded: the socket lingers on
		t.Fatal(err)
	}
	testutil.WaitWithin(t, 5*time.Second, func() bool { return s.Stats().Lingering == 0 },
		func() string { return fmt.Sprintf("the socket lingers past its deadline: %+v", s.Stats()) })
	if took := time.Since(asked); took < timeout {
		t.Fatalf("closed %v after the request, before the %v deadline", took, timeout)
	}
	if st := s.Stats(); st.LingerTimeouts != 1 {
		t.Fatalf("LingerTimeouts = %d, want 1: %+v", st.LingerTimeouts, st)
	}
	// The descriptor is closed: the next bytes the client sends are answered with RST.
	var err error
	testutil.WaitWithin(t, 5*time.Second, func() bool { _, err = conn.Write(late); return err != nil },
		func() string { return "the server's socket still takes data after the deadline" })
	if !errors.Is(err, unix.ECONNRESET) && !errors.Is(err, unix.EPIPE) {
		t.Fatalf("write after the deadline: %v, want a reset", err)
	}
}

// TestLingerBound: beyond MaxLingering sockets, a socket is closed at once, as without lingering; one whose
// client closes its side stops lingering at once.
func TestLingerBound(t *testing.T) {
	s, addr := startClosing(t, Config{LingerTimeout: time.Minute, MaxLingering: 1})
	first := dial(t, addr)
	wsutil.WriteClientText(first, []byte("close"))
	readClose(t, first)
	testutil.WaitWithin(t, 5*time.Second, func() bool { return s.Stats().Lingering == 1 },
		func() string { return fmt.Sprintf("no lingering socket: %+v", s.Stats()) })
	second := dial(t, addr)
	wsutil.WriteClientText(second, []byte("close"))
	if code := readClose(t, second); code != CloseNormal {
		t.Fatalf("close code %d, want %d", code, CloseNormal)
	}
	testutil.WaitWithin(t, 5*time.Second, func() bool { return s.Stats().LingerOverflows == 1 },
		func() string { return fmt.Sprintf("the socket over the bound was not closed at once: %+v", s.Stats()) })
	if st := s.Stats(); st.Lingering != 1 {
		t.Fatalf("Lingering = %d, want 1 (the bound): %+v", st.Lingering, st)
	}
	if n, err := second.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("over the bound, after the close frame: %d bytes, %v; want EOF", n, err)
	}
	first.Close()
	testutil.WaitWithin(t, 5*time.Second, func() bool { return s.Stats().Lingering == 0 },
		func() string { return fmt.Sprintf("the socket lingers after its client closed: %+v", s.Stats()) })
	if st := s.Stats(); st.LingerTimeouts != 0 {
		t.Fatalf("closed by the deadline, not by the client's EOF: %+v", st)
	}
}

// TestLingerOff: a negative LingerTimeout closes at once, as before lingering existed.
func TestLingerOff(t *testing.T) {
	s, addr := startClosing(t, Config{LingerTimeout: -1})
	conn := dial(t, addr)
	wsutil.WriteClientText(conn, []byte("close"))
	if code := readClose(t, conn); code != CloseNormal {
		t.Fatalf("close code %d, want %d", code, CloseNormal)
	}
	if n, err := conn.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the close frame: %d bytes, %v; want EOF", n, err)
	}
	if st := s.Stats(); st.Lingering != 0 || s.lingerer() != nil {
		t.Fatalf("lingering although off: %+v", st)
	}
}

// TestShutdownWaitsForLingeringSockets: Shutdown's 1001 lingers too, and Shutdown waits for the lingering
// sockets at most LingerTimeout (its client never closes here), and no longer than its ctx.
func TestShutdownWaitsForLingeringSockets(t *testing.T) {
	tests := []struct {
		name            string
		linger, ctx     time.Duration
		atLeast, within time.Duration
	}{
		{"linger timeout first", 400 * time.Millisecond, 10 * time.Second, 400 * time.Millisecond, 5 * time.Second},
		{"ctx first", time.Minute, 300 * time.Millisecond, 300 * time.Millisecond, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, addr := startServer(t, Config{LingerTimeout: tt.linger})
			conn := dial(t, addr)
			echoes(t, conn)
			ctx, cancel := context.WithTimeout(context.Background(), tt.ctx)
			defer cancel()
			began := time.Now()
			done := make(chan error, 1)
			go func() { done <- s.Shutdown(ctx) }()
			if code := readClose(t, conn); code != CloseGoingAway {
				t.Fatalf("close code %d, want %d", code, CloseGoingAway)
			}
			var err error
			select {
			case err = <-done:
			case <-time.After(tt.within):
				t.Fatalf("Shutdown still running after %v", tt.within)
			}
			if took := time.Since(began); err != nil || took < tt.atLeast {
				t.Fatalf("Shutdown: %v after %v, want nil after at least %v", err, took, tt.atLeast)
			}
			if st := s.Stats(); st.Lingering != 0 {
				t.Fatalf("sockets still lingering after Shutdown: %+v", st)
			}
			if n, err := conn.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("after the close frame: %d bytes, %v; want EOF", n, err)
			}
		})
	}
}

// TestLingererReusedDescriptor: a descriptor closed by the lingerer (its peer closed) may come back at once,
// with the same number, for another socket; the old hand-off's deadline, still queued, must not close it.
func TestLingererReusedDescriptor(t *testing.T) {
	const timeout = 400 * time.Millisecond
	l, err := newLingerer(timeout, 16, func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	go l.run()
	defer l.shutdown(context.Background())
	pair := func() (mine, peer int) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fds[0], fds[1]
	}
	first, peer := pair()
	if !l.take(first) {
		t.Fatal("take refused a socket")
	}
	unix.Close(peer) // EOF: the lingerer closes first at once, its deadline stays queued
	testutil.WaitFor(t, func() bool { return l.lingering.Load() == 0 })
	time.Sleep(timeout / 2) // the scenario, not a wait for a result: the stale deadline comes first
	second, peer2 := pair()
	defer unix.Close(peer2)
	if second != first {
		t.Logf("descriptor %d not reused (got %d): the test still checks the deadline", first, second)
	}
	took := time.Now()
	if !l.take(second) {
		t.Fatal("take refused a socket")
	}
	testutil.WaitWithin(t, 5*time.Second, func() bool { return l.lingering.Load() == 0 },
		func() string { return "the second socket lingers past its deadline" })
	if d := time.Since(took); d < timeout {
		t.Fatalf("the second socket was closed %v after its hand-off, before its own %v deadline", d, timeout)
	}
	if got := l.timeouts.Load(); got != 1 {
		t.Fatalf("timeouts = %d, want 1 (the first one ended by EOF)", got)
	}
}
