package transport

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
)

// replyHandler answers every message with a reply of the same size, as the gateway answers a request.
type replyHandler struct{}

func (replyHandler) OnOpen(*Conn) {}
func (replyHandler) OnMessage(c *Conn, m Message) {
	_ = c.Send(append([]byte(nil), m.Data...)) // Send owns its message; m.Data is the read buffer
}
func (replyHandler) OnClose(*Conn, error) {}

// BenchmarkReply sends a small message over loopback and reads the server's reply: the write path of an idle
// connection that answers one request (queue, write, drop the queue), whose allocations per reply this counts.
func BenchmarkReply(b *testing.B) {
	for _, size := range []int{64, 4096} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			s, err := NewServer(Config{Logger: quiet}, replyHandler{})
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
			hdr := 2
			if size > 125 {
				hdr = 4
			}
			reply := make([]byte, hdr+size)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := conn.Write(frame); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(conn, reply); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
