package transport

import (
	"context"
	"fmt"
	"net"
	"testing"
)

type nopHandler struct{ messages int }

func (h *nopHandler) OnOpen(*Conn)             {}
func (h *nopHandler) OnMessage(*Conn, Message) { h.messages++ }
func (h *nopHandler) OnClose(*Conn, error)     {}

// benchConn is a connection with no socket, for feeding the parser directly.
func benchConn(b *testing.B) (*Conn, *nopHandler) {
	cfg := Config{MaxFrameSize: 64 << 20, MaxMessageSize: 64 << 20, Logger: quiet}
	cfg.setDefaults()
	h := &nopHandler{}
	return &Conn{srv: &Server{cfg: cfg, handler: h}, fd: -1}, h
}

// feedChunks hands stream to c in chunks of the read pool's buffer size, as onReadable does.
func feedChunks(b *testing.B, c *Conn, buf, stream []byte) {
	for len(stream) > 0 {
		n := copy(buf, stream)
		stream = stream[n:]
		if err := c.consume(buf[:n]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLargeFrame parses one binary frame of each size arriving in 32 KiB reads.
func BenchmarkLargeFrame(b *testing.B) {
	for _, size := range []int{1 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("size=%dMiB", size>>20), func(b *testing.B) {
			c, h := benchConn(b)
			frame := rawFrame(0x82, true, make([]byte, size))
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				feedChunks(b, c, buf, frame)
			}
			if h.messages != b.N {
				b.Fatalf("%d messages, want %d", h.messages, b.N)
			}
		})
	}
}

// BenchmarkSmallFrames parses 64-byte text frames, many to a read, as a busy connection sends them.
func BenchmarkSmallFrames(b *testing.B) {
	c, h := benchConn(b)
	var stream []byte
	const perRead = 400
	for i := 0; i < perRead; i++ {
		stream = append(stream, rawFrame(0x81, true, []byte(fmt.Sprintf("%064d", i)))...)
	}
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		feedChunks(b, c, buf, stream)
	}
	if h.messages != b.N*perRead {
		b.Fatalf("%d messages, want %d", h.messages, b.N*perRead)
	}
}

// signalHandler tells a channel about every message.
type signalHandler struct{ got chan int }

func (h *signalHandler) OnOpen(*Conn)                 {}
func (h *signalHandler) OnMessage(_ *Conn, m Message) { h.got <- len(m.Data) }
func (h *signalHandler) OnClose(*Conn, error)         {}

// BenchmarkLargeFrameOverSocket sends one binary frame over loopback to a running server and waits for its
// delivery: socket reads, parsing and delivery together, as a client sees them.
func BenchmarkLargeFrameOverSocket(b *testing.B) {
	for _, size := range []int{1 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("size=%dMiB", size>>20), func(b *testing.B) {
			h := &signalHandler{got: make(chan int, 1)}
			s, err := NewServer(Config{MaxFrameSize: 64 << 20, MaxMessageSize: 64 << 20, Logger: quiet}, h)
			if err != nil {
				b.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				s.Serve(ln)
			}()
			defer func() {
				// Not measured: Shutdown waits for the client, still open, to close its lingering socket
				// (up to LingerTimeout).
				b.StopTimer()
				s.Shutdown(context.Background())
				<-done
			}()
			conn := dial(b, ln.Addr().String())
			frame := rawFrame(0x82, true, make([]byte, size))
			b.SetBytes(int64(size))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := conn.Write(frame); err != nil {
					b.Fatal(err)
				}
				if n := <-h.got; n != size {
					b.Fatalf("got %d bytes", n)
				}
			}
		})
	}
}
