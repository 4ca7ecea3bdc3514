package transport

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"

	"github.com/mailru/easygo/netpoll"
	"golang.org/x/sys/unix"
)

// recorder is a Handler that records delivered messages.
type recorder struct{ msgs [][]byte }

func (r *recorder) OnOpen(*Conn)         {}
func (r *recorder) OnClose(*Conn, error) {}
func (r *recorder) OnMessage(_ *Conn, m Message) {
	prefix := byte('t')
	if m.Binary {
		prefix = 'b'
	}
	r.msgs = append(r.msgs, append([]byte{prefix}, m.Data...))
}

// parseConn returns a Conn over one end of a socketpair (so that pongs and close frames can be written), with
// no epoll registration: it exercises the frame reader alone.
func parseConn(t testing.TB, poller *poller) (*Conn, *recorder) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fds[1])
	unix.SetNonblock(fds[0], true)
	rec := &recorder{}
	cfg := Config{MaxFrameSize: 4096, MaxMessageSize: 8192, Logger: quiet}
	cfg.setDefaults()
	s := &Server{cfg: cfg, handler: rec, poller: poller, wpoller: poller,
		perIP: map[netip.Addr]int{}}
	c := &Conn{srv: s, fd: fds[0]}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.state != stateClosed {
			unix.Close(c.fd)
		}
	})
	return c, rec
}

// feed parses stream in the given chunks and returns the messages and the first error.
func feed(c *Conn, rec *recorder, chunks ...[]byte) ([][]byte, error) {
	for _, ch := range chunks {
		buf := append([]byte(nil), ch...) // consume may modify its input
		if err := c.consume(buf); err != nil {
			return rec.msgs, err
		}
	}
	return rec.msgs, nil
}

func closeCode(err error) uint16 {
	var ce *closeError
	if errors.As(err, &ce) {
		return ce.code
	}
	if err != nil {
		return 1
	}
	return 0
}

// FuzzFrameReader checks that the incremental frame reader gives the same messages and the same error however
// the byte stream is split across reads, and never panics on corrupt input.
func FuzzFrameReader(f *testing.F) {
	f.Add(rawFrame(0x81, true, []byte("hello")), uint16(3))
	f.Add(append(rawFrame(0x01, true, []byte("he")), rawFrame(0x80, true, []byte("llo"))...), uint16(5))
	f.Add(append(rawFrame(0x89, true, []byte("p")), rawFrame(0x82, true, make([]byte, 300))...), uint16(2))
	f.Add(rawFrame(0x81, true, make([]byte, 70000)), uint16(9))
	f.Add([]byte{0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint16(1))
	f.Add(rawFrame(0x88, true, []byte{0x03, 0xe8}), uint16(1))
	poller, err := newPoller(func(*Conn, netpoll.EpollEvent) {}, func(error) {}) // never run: nothing waits
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { poller.close(false) })
	f.Fuzz(func(t *testing.T, stream []byte, split uint16) {
		c1, r1 := parseConn(t, poller)
		whole, err1 := feed(c1, r1, stream)
		c2, r2 := parseConn(t, poller)
		at := int(split) % (len(stream) + 1)
		parts, err2 := feed(c2, r2, stream[:at], stream[at:])
		if closeCode(err1) != closeCode(err2) {
			t.Fatalf("whole: %v; split at %d: %v", err1, at, err2)
		}
		if len(whole) != len(parts) {
			t.Fatalf("whole gave %d messages, split at %d gave %d", len(whole), at, len(parts))
		}
		for i := range whole {
			if !bytes.Equal(whole[i], parts[i]) {
				t.Fatalf("message %d differs when split at %d", i, at)
			}
		}
		if rs := c1.rs; err1 == nil && rs != nil && cap(rs.msg) > c1.srv.cfg.MaxMessageSize {
			t.Fatalf("holds %d bytes, over the message size limit", cap(rs.msg))
		}
		if rs := c1.rs; err1 == nil && rs != nil && !rs.inFrame && rs.hdrLen == 0 && rs.msgOp == 0 {
			t.Fatal("read state kept although nothing is unfinished")
		}
		if err1 == nil && c1.rs == nil && c1.rbuf.Load() > 0 {
			t.Fatalf("no read state, but %d bytes charged to the budget", c1.rbuf.Load())
		}
	})
}
