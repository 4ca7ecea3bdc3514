package transport

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
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

// rawUpgrade sends an upgrade request with the given Sec-WebSocket-Extensions header lines and returns the
// response; the connection is left right after the response's headers.
func rawUpgrade(t *testing.T, addr string, extensions ...string) (*http.Response, net.Conn) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	req := "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	for _, e := range extensions {
		req += "Sec-WebSocket-Extensions: " + e + "\r\n"
	}
	if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
		t.Fatal(err)
	}
	// Read the head byte by byte so that no frame after it is consumed.
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var head []byte
	for !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		b := make([]byte, 1)
		if _, err := conn.Read(b); err != nil {
			t.Fatalf("response head %q: %v", head, err)
		}
		head = append(head, b[0])
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp, conn
}

func TestDeflateOffers(t *testing.T) {
	const (
		plain    = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
		window15 = plain + "; server_max_window_bits=15"
		declined = ""
	)
	tests := []struct {
		name   string
		offers []string // header lines
		want   string   // the answer's Sec-WebSocket-Extensions
	}{
		{"bare", []string{"permessage-deflate"}, plain},
		{"client_max_window_bits without value", []string{"permessage-deflate; client_max_window_bits"}, plain},
		{"client_max_window_bits=8", []string{"permessage-deflate; client_max_window_bits=8"}, plain},
		{"client_max_window_bits quoted", []string{`permessage-deflate; client_max_window_bits="10"`}, plain},
		{"server_max_window_bits=15", []string{"permessage-deflate; server_max_window_bits=15"}, window15},
		{"both no_context_takeover", []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover"}, plain},
		{"everything", []string{"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15; client_max_window_bits=15"}, window15},
		{"server_max_window_bits=3 (invalid)", []string{"permessage-deflate; server_max_window_bits=3"}, declined},
		{"server_max_window_bits=10 (cannot honour)", []string{"permessage-deflate; server_max_window_bits=10"}, declined},
		{"server_max_window_bits without value", []string{"permessage-deflate; server_max_window_bits"}, declined},
		{"client_max_window_bits=16", []string{"permessage-deflate; client_max_window_bits=16"}, declined},
		{"client_max_window_bits=08", []string{"permessage-deflate; client_max_window_bits=08"}, declined},
		{"unknown parameter", []string{"permessage-deflate; foo=bar"}, declined},
		{"flag with a value", []string{"permessage-deflate; client_no_context_takeover=1"}, declined},
		{"duplicate parameter", []string{"permessage-deflate; client_max_window_bits=10; client_max_window_bits=11"}, declined},
		{"first acceptable of a list", []string{"permessage-deflate; server_max_window_bits=10, permessage-deflate; foo, permessage-deflate; server_max_window_bits=15, permessage-deflate"}, window15},
		{"first acceptable across header lines", []string{"permessage-deflate; foo=bar", "permessage-deflate; client_max_window_bits", "permessage-deflate; server_max_window_bits=15"}, plain},
		{"other extensions ignored", []string{"x-webkit-deflate-frame, permessage-deflate"}, plain},
		{"only other extensions", []string{"x-webkit-deflate-frame"}, declined},
	}
	_, _, addr := startServer(t, Config{Compression: true, CompressMinSize: 1})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, conn := rawUpgrade(t, addr, tt.offers...)
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d, want 101", resp.StatusCode)
			}
			// Spaces around ";" are not significant (RFC 9110 5.6.6).
			got := strings.ReplaceAll(resp.Header.Get("Sec-WebSocket-Extensions"), " ", "")
			if got != strings.ReplaceAll(tt.want, " ", "") {
				t.Fatalf("answer %q, want %q", got, tt.want)
			}
			// The connection works, compressed exactly when compression was agreed.
			msg := []byte("hello, hello, hello, hello")
			if tt.want != declined {
				writeCompressed(t, conn, msg)
			} else {
				ws.WriteFrame(conn, ws.MaskFrameInPlace(ws.NewTextFrame(append([]byte(nil), msg...))))
			}
			echo, compressed := readMessage(t, conn)
			if string(echo) != string(msg) || compressed != (tt.want != declined) {
				t.Fatalf("echo %q (compressed %v)", echo, compressed)
			}
		})
	}
}

func TestDeflateOffersWithCompressionOff(t *testing.T) {
	_, _, addr := startServer(t, Config{})
	for _, offer := range []string{"permessage-deflate", "permessage-deflate; foo=bar"} {
		resp, _ := rawUpgrade(t, addr, offer)
		if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Extensions") != "" {
			t.Fatalf("offer %q: status %d, extensions %q", offer, resp.StatusCode, resp.Header.Get("Sec-WebSocket-Extensions"))
		}
	}
}

func TestMalformedExtensionsHeaderIs400(t *testing.T) {
	_, _, addr := startServer(t, Config{Compression: true})
	if resp, _ := rawUpgrade(t, addr, "permessage-deflate;;="); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
}
