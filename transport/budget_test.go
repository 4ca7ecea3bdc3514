package transport

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws/wsutil"

	"github.com/wsgate/wsgate/internal/testutil"
)

// holdMessage starts a binary message of n bytes (a first fragment without FIN) and leaves it unfinished.
func holdMessage(t *testing.T, conn net.Conn, n int) {
	t.Helper()
	if _, err := conn.Write(rawFrame(0x02, true, make([]byte, n))); err != nil {
		t.Fatal(err)
	}
}

// echoes checks that conn is served: a message comes back.
func echoes(t *testing.T, conn net.Conn) {
	t.Helper()
	if err := wsutil.WriteClientText(conn, []byte("still here?")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := wsutil.ReadServerText(conn)
	if err != nil || string(got) != "still here?" {
		t.Fatalf("no echo: %q, %v", got, err)
	}
}

func TestBuffersAreReleasedAfterABigMessage(t *testing.T) {
	s, _, addr := startServer(t, Config{})
	conn := dial(t, addr)
	big := bytes.Repeat([]byte("x"), 200<<10)
	// In fragments, and then in one frame: either way, nothing stays held once the echo is back.
	stream := append(rawFrame(0x01, true, big[:100<<10]), rawFrame(0x80, true, big[100<<10:])...)
	stream = append(stream, rawFrame(0x81, true, big)...)
	if _, err := conn.Write(stream); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if got, err := wsutil.ReadServerText(conn); err != nil || len(got) != len(big) {
			t.Fatalf("echo %d: %d bytes, %v", i, len(got), err)
		}
	}
	testutil.WaitFor(t, func() bool { return s.Stats().Buffered == 0 })
}

// TestMessageTimeoutClosesFragmentHolders: empty continuation frames do not keep an unfinished message alive.
func TestMessageTimeoutClosesFragmentHolders(t *testing.T) {
	s, _, addr := startServer(t, Config{MessageTimeout: time.Second, WriteTimeout: time.Second})
	conn := dial(t, addr)
	holdMessage(t, conn, 10<<10)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
				if _, err := conn.Write(rawFrame(0x00, true, nil)); err != nil {
					return
				}
			}
		}
	}()
	if got := readClose(t, conn); got != ClosePolicyViolation {
		t.Fatalf("close code %d, want %d", got, ClosePolicyViolation)
	}
	testutil.WaitFor(t, func() bool { st := s.Stats(); return st.Connections == 0 && st.Buffered == 0 })
	if st := s.Stats(); st.MessageTimeouts != 1 {
		t.Fatalf("message timeouts %d, want 1", st.MessageTimeouts)
	}
	// A client that finishes its messages in time is not affected.
	ok := dial(t, addr)
	for i := 0; i < 3; i++ {
		echoes(t, ok)
		time.Sleep(600 * time.Millisecond) // over the timeout in total, but never with a message unfinished
	}
}

// TestBufferBudgetClosesTheBiggestHolder: over the budget, the connection holding the most is closed (1009
// for an unfinished message) and the others go on.
func TestBufferBudgetClosesTheBiggestHolder(t *testing.T) {
	s, _, addr := startServer(t, Config{BufferBudget: 1 << 20, MaxMessageSize: 1 << 20, MaxFrameSize: 1 << 20})
	small, medium, big := dial(t, addr), dial(t, addr), dial(t, addr)
	holdMessage(t, small, 10<<10)
	holdMessage(t, medium, 300<<10)
	testutil.WaitFor(t, func() bool { return s.Stats().Buffered >= 310<<10 })
	holdMessage(t, big, 800<<10)
	if got := readClose(t, big); got != CloseMessageTooBig {
		t.Fatalf("close code %d, want %d", got, CloseMessageTooBig)
	}
	testutil.WaitFor(t, func() bool { return s.Len() == 2 })
	if st := s.Stats(); st.BudgetEvictions != 1 || st.Buffered > 1<<20 {
		t.Fatalf("after the eviction: %+v", st)
	}
	for _, c := range []net.Conn{small, medium} { // finish the held messages: both are still served
		if _, err := c.Write(rawFrame(0x80, true, nil)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := wsutil.ReadServerBinary(c); err != nil {
			t.Fatal(err)
		}
		echoes(t, c)
	}
}

// TestBufferBudgetClosesClientsThatDoNotRead: write queues count against the budget too (1013).
func TestBufferBudgetClosesClientsThatDoNotRead(t *testing.T) {
	s, _, addr := startServer(t, Config{BufferBudget: 2 << 20, WriteQueueBytes: 64 << 20})
	reader := dial(t, addr)
	greedy := dial(t, addr)
	if err := wsutil.WriteClientText(greedy, []byte("flood:256")); err != nil { // 16 MiB, never read
		t.Fatal(err)
	}
	testutil.WaitFor(t, func() bool { return s.Stats().BudgetEvictions == 1 && s.Len() == 1 })
	if st := s.Stats(); st.SlowConsumers != 0 || st.Buffered > 2<<20 {
		t.Fatalf("after the eviction: %+v", st)
	}
	echoes(t, reader)
}
