package transport

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsflate"
)

// dialDeflate connects offering permessage-deflate and reports whether the server accepted it.
func dialDeflate(t *testing.T, addr string) (net.Conn, bool) {
	t.Helper()
	d := ws.Dialer{Extensions: []httphead.Option{wsflate.DefaultParameters.Option()}}
	conn, _, hs, err := d.Dial(context.Background(), "ws://"+addr+"/ws")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	for _, e := range hs.Extensions {
		if string(e.Name) == "permessage-deflate" {
			return conn, true
		}
	}
	return conn, false
}

func writeCompressed(t *testing.T, conn net.Conn, msg []byte) {
	t.Helper()
	f, err := wsflate.CompressFrame(ws.NewTextFrame(msg))
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.WriteFrame(conn, ws.MaskFrameInPlace(f)); err != nil {
		t.Fatal(err)
	}
}

func readMessage(t *testing.T, conn net.Conn) (payload []byte, compressed bool) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	f, err := ws.ReadFrame(conn)
	if err != nil {
		t.Fatal(err)
	}
	compressed, _ = wsflate.IsCompressed(f.Header)
	f, err = wsflate.DecompressFrame(f)
	if err != nil {
		t.Fatal(err)
	}
	return f.Payload, compressed
}

func TestPermessageDeflate(t *testing.T) {
	_, _, addr := startServer(t, Config{Compression: true, CompressMinSize: 100, MaxMessageSize: 1 << 20})
	conn, ok := dialDeflate(t, addr)
	if !ok {
		t.Fatal("server did not accept permessage-deflate")
	}
	big := bytes.Repeat([]byte(`{"echo":"compress me"}`), 100)
	tests := []struct {
		name           string
		msg            []byte
		sendCompressed bool
		wantCompressed bool
	}{
		{"compressed in, big: compressed out", big, true, true},
		{"plain in, big: compressed out", big, false, true},
		{"compressed in, small: plain out", []byte(`{"ping":1}`), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.sendCompressed {
				writeCompressed(t, conn, tt.msg)
			} else {
				ws.WriteFrame(conn, ws.MaskFrameInPlace(ws.NewTextFrame(append([]byte(nil), tt.msg...))))
			}
			got, compressed := readMessage(t, conn)
			if !bytes.Equal(got, tt.msg) || compressed != tt.wantCompressed {
				t.Fatalf("echo %d bytes (compressed %v), want %d bytes (compressed %v)", len(got), compressed,
					len(tt.msg), tt.wantCompressed)
			}
		})
	}
}

func TestDeflateBombIsRefused(t *testing.T) {
	_, _, addr := startServer(t, Config{Compression: true, MaxMessageSize: 64 << 10})
	conn, _ := dialDeflate(t, addr)
	writeCompressed(t, conn, make([]byte, 10<<20)) // 10 MiB of zeros compresses to a few KiB
	if code := readClose(t, conn); code != CloseMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
}

func TestDeflateOffNoNegotiationAndRSV1Refused(t *testing.T) {
	_, _, addr := startServer(t, Config{})
	conn, ok := dialDeflate(t, addr)
	if ok {
		t.Fatal("compression negotiated although it is off")
	}
	writeCompressed(t, conn, []byte("hello"))
	if code := readClose(t, conn); code != CloseProtocolError {
		t.Fatalf("close code %d, want 1002", code)
	}
}
