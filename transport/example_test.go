package transport_test

import (
	"context"
	"fmt"
	"net"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/wsgate/wsgate/transport"
)

// echo sends every text message back.
type echo struct{}

func (echo) OnOpen(*transport.Conn)         {}
func (echo) OnClose(*transport.Conn, error) {}
func (echo) OnMessage(c *transport.Conn, m transport.Message) {
	_ = c.Send(append([]byte("echo: "), m.Data...)) // m.Data is only valid during the call: copy it
}

// An echo server on the epoll transport.
func ExampleNewServer() {
	srv, _ := transport.NewServer(transport.Config{Path: "/ws"}, echo{})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	_ = srv.Start(context.Background(), ln) // accepts on a goroutine of its own
	defer srv.Shutdown(context.Background())

	conn, _, _, _ := ws.Dial(context.Background(), "ws://"+ln.Addr().String()+"/ws")
	defer conn.Close()
	wsutil.WriteClientText(conn, []byte("hi"))
	reply, _ := wsutil.ReadServerText(conn)
	fmt.Println(string(reply))
	// Output: echo: hi
}
