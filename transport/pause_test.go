package transport

import (
	"context"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"

	"github.com/wsgate/wsgate/internal/testutil"
)

// connRecorder echoes like echoHandler and hands each new connection to the test.
type connRecorder struct {
	echoHandler
	conns chan *Conn
}

func (h *connRecorder) OnOpen(c *Conn) { h.conns <- c }

func startRecorder(t *testing.T) (*Server, *connRecorder, string) {
	t.Helper()
	h := &connRecorder{conns: make(chan *Conn, 16)}
	s, err := NewServer(Config{Logger: quiet}, h)
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, s)
	return s, h, addr
}

// serve runs s (Start) on a loopback listener until the test ends.
func serve(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background(), ln); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // Shutdown waits for the accept loop too
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return ln.Addr().String()
}

// TestSetReadPausedFromManyGoroutines pauses and resumes a connection from many goroutines while its client
// sends; once the last call resumes it, the connection must be read again.
func TestSetReadPausedFromManyGoroutines(t *testing.T) {
	_, h, addr := startRecorder(t)
	for round := 0; round < 20; round++ {
		c := dial(t, addr)
		sc := <-h.conns
		stop := make(chan struct{})
		var writer sync.WaitGroup
		writer.Add(1)
		go func() { // keeps the connection readable while the pausers race
			defer writer.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if wsutil.WriteClientText(c, []byte("x")) != nil {
					return
				}
				time.Sleep(100 * time.Microsecond)
			}
		}()
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					sc.SetReadPaused(rand.IntN(2) == 0)
				}
			}()
		}
		wg.Wait()
		sc.SetReadPaused(false)
		close(stop)
		writer.Wait()
		// Everything the writer sent is echoed, then a last message proves the connection reads again.
		if err := wsutil.WriteClientText(c, []byte("last")); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			got, err := wsutil.ReadServerText(c)
			if err != nil {
				t.Fatalf("round %d: connection not read after resume: %v", round, err)
			}
			if string(got) == "last" {
				break
			}
		}
		c.Close()
	}
}

// TestPausedConnectionNoticesHangup: a client that leaves while its connection is paused is unregistered at
// once, not at the idle timeout.
func TestPausedConnectionNoticesHangup(t *testing.T) {
	s, h, addr := startRecorder(t)
	c := dial(t, addr)
	sc := <-h.conns
	// Make sure the connection is idle and armed before pausing it.
	if err := wsutil.WriteClientText(c, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, err := wsutil.ReadServerText(c); err != nil {
		t.Fatal(err)
	}
	sc.SetReadPaused(true)
	if err := wsutil.WriteClientText(c, []byte("unread")); err != nil { // fires the read registration once
		t.Fatal(err)
	}
	c.Close()
	testutil.WaitFor(t, func() bool { return s.Len() == 0 })
}
