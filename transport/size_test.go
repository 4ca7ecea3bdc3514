package transport

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
	"unsafe"

	"github.com/wsgate/wsgate/internal/testutil"
)

// TestConnSize keeps Conn within the allocator's 144-byte size class. An idle connection's heap is its Conn
// and little else, the target is 1 KB of RSS per idle session at 19,000 connections, and RSS is about
// twice the live heap: a field that pushes Conn into the next class (160) costs 32 bytes of RSS per
// connection. Before adding one, move something that only a busy connection needs behind a pointer.
func TestConnSize(t *testing.T) {
	const sizeClass = 144
	if got := unsafe.Sizeof(Conn{}); got > sizeClass {
		t.Fatalf("unsafe.Sizeof(Conn{}) = %d bytes, over the %d-byte size class (idle memory per connection)",
			got, sizeClass)
	}
}

// TestIdleConnectionHoldsNoWriteQueue checks that a connection gives its write queue back once its reply is
// written, and that its address (kept apart from its port) survives, IPv6 zone included.
func TestIdleConnectionHoldsNoWriteQueue(t *testing.T) {
	_, h, addr := startRecorder(t)
	conn := dial(t, addr)
	c := <-h.conns
	echoes(t, conn)
	testutil.WaitFor(t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.wq == nil
	})
	if got, want := c.RemoteAddr().String(), conn.LocalAddr().String(); got != want {
		t.Fatalf("RemoteAddr() = %s, want %s", got, want)
	}
	zoned := netip.MustParseAddrPort("[fe80::1%eth0]:4242")
	z := Conn{addr: zoned.Addr(), port: zoned.Port()}
	if z.RemoteAddr() != zoned {
		t.Fatalf("RemoteAddr() = %s, want %s", z.RemoteAddr(), zoned)
	}
}

// TestReusedDescriptorKeepsItsNewConnection covers the slot of a descriptor that the kernel gave to a new
// connection before the old one's teardown reached forget: the old one's forget must leave the new one
// registered, and the count must stay right.
func TestReusedDescriptorKeepsItsNewConnection(t *testing.T) {
	s := &Server{perIP: map[netip.Addr]int{}}
	ip := netip.MustParseAddr("192.0.2.1")
	old := &Conn{srv: s, fd: 7, addr: ip, opened: true}
	s.mu.Lock()
	s.addLocked(old)
	s.mu.Unlock()
	reused := &Conn{srv: s, fd: 7, addr: ip, opened: true} // old's descriptor was closed, and handed out again
	s.mu.Lock()
	s.addLocked(reused)
	s.mu.Unlock()
	s.forget(old)
	if got := s.Conns(nil); len(got) != 1 || got[0] != reused || s.Len() != 1 || s.connsFrom(ip) != 1 {
		t.Fatalf("after the old connection's forget: Conns = %v, Len = %d, from %s: %d; want the new one alone",
			got, s.Len(), ip, s.connsFrom(ip))
	}
	s.forget(reused)
	if got := s.Conns(nil); len(got) != 0 || s.Len() != 0 || s.connsFrom(ip) != 0 {
		t.Fatalf("after both forgets: Conns = %v, Len = %d, from %s: %d", got, s.Len(), ip, s.connsFrom(ip))
	}
}

// TestWriteQueueLetsWrittenFramesGo checks that a queue that outgrew its first, pooled array keeps no copy of
// a frame there: once written, a frame's memory is refunded to the budget, and must be free to go.
func TestWriteQueueLetsWrittenFramesGo(t *testing.T) {
	q := &writeQueue{}
	q.out = q.small[:0]
	for _, f := range []string{"header", "payload", "next frame"} {
		q.push([]byte(f))
	}
	for i, b := range q.small {
		if b != nil {
			t.Fatalf("small[%d] still holds %q after the queue moved to its own array", i, b)
		}
	}
	if len(q.out) != 3 || string(q.out[2]) != "next frame" {
		t.Fatalf("queue = %q", q.out)
	}
}

// TestEmptyMessagesLeaveNoCharge: an empty message sent from a buffer with spare capacity (a pooled buffer's
// buf[:0]) queues only its header, so the capacity is not charged either: the budget is back to 0 once the
// connection is gone.
func TestEmptyMessagesLeaveNoCharge(t *testing.T) {
	s, h, addr := startRecorder(t)
	conn := dial(t, addr)
	c := <-h.conns
	for range 10 {
		if err := c.Send(make([]byte, 0, 64<<10)); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	testutil.WaitWithin(t, 10*time.Second, func() bool { st := s.Stats(); return st.Connections == 0 && st.Buffered == 0 },
		func() string { return fmt.Sprintf("buffered %d bytes with no connection left", s.Stats().Buffered) })
}
