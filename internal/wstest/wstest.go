// Package wstest is a small WebSocket test client (gobwas/ws client side) for the gateway's tests.
//
// Goroutines: Dial, Send, ReadJSON and Call fail the test (t.Fatal) and so may be called only from the
// test's own goroutine. Other goroutines use Write and Read, which return their errors for the goroutine to
// hand back (over a channel, or with t.Error).
package wstest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// Client is one test connection.
type Client struct {
	tb   testing.TB
	Conn net.Conn
}

// Dial connects to url and closes the connection when the test ends.
func Dial(tb testing.TB, url string) *Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, _, err := ws.Dial(ctx, url)
	if err != nil {
		tb.Fatalf("dial %s: %v", url, err)
	}
	tb.Cleanup(func() { conn.Close() })
	return &Client{tb: tb, Conn: conn}
}

// DialTLS connects to a wss:// url with cfg (whose RootCAs trust the server) and returns the client with the
// server's certificate; it fails the test if the connection cannot be made.
func DialTLS(tb testing.TB, url string, cfg *tls.Config) (*Client, *x509.Certificate) {
	tb.Helper()
	c, cert, err := TryDialTLS(tb, url, cfg)
	if err != nil {
		tb.Fatalf("dial %s: %v", url, err)
	}
	return c, cert
}

// TryDialTLS is DialTLS returning the error rather than failing the test.
func TryDialTLS(tb testing.TB, url string, cfg *tls.Config) (*Client, *x509.Certificate, error) {
	tb.Helper()
	var peer *x509.Certificate
	d := ws.Dialer{TLSClient: func(conn net.Conn, host string) net.Conn {
		cfg := cfg.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = host
		}
		tc := tls.Client(conn, cfg)
		if err := tc.Handshake(); err == nil { // else the dialer's first write fails with the same error
			peer = tc.ConnectionState().PeerCertificates[0]
		}
		return tc
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, _, err := d.Dial(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	tb.Cleanup(func() { conn.Close() })
	return &Client{tb: tb, Conn: conn}, peer, nil
}

// Send writes one text message, failing the test if it cannot (the test's goroutine only).
func (c *Client) Send(msg string) {
	c.tb.Helper()
	if err := c.Write(msg); err != nil {
		c.tb.Fatal(err)
	}
}

// Write writes one text message; safe from any goroutine (one writer at a time).
func (c *Client) Write(msg string) error {
	if err := wsutil.WriteClientText(c.Conn, []byte(msg)); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	return nil
}

// Read reads the next data message (answering pings on the way), waiting up to timeout; safe from any
// goroutine (one reader at a time). A close frame ends it with a wsutil.ClosedError that carries the server's
// code, also when the server has already gone and the reply to its close frame cannot be written.
func (c *Client) Read(timeout time.Duration) ([]byte, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(timeout))
	defer c.Conn.SetReadDeadline(time.Time{})
	control := func(h ws.Header, r io.Reader) error {
		if h.OpCode != ws.OpClose {
			return wsutil.ControlFrameHandler(c.Conn, ws.StateClientSide)(h, r)
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(r, p); err != nil {
			return err
		}
		code, reason := ws.ParseCloseFrameData(p)
		_ = wsutil.WriteClientMessage(c.Conn, ws.OpClose, ws.NewCloseFrameBody(code, "")) // the server may be gone
		return wsutil.ClosedError{Code: code, Reason: reason}
	}
	rd := wsutil.Reader{Source: c.Conn, State: ws.StateClientSide, CheckUTF8: true, OnIntermediate: control}
	for {
		h, err := rd.NextFrame()
		if err != nil {
			return nil, err
		}
		if h.OpCode.IsControl() {
			if err := control(h, &rd); err != nil {
				return nil, err
			}
			continue
		}
		return io.ReadAll(&rd)
	}
}

// ReadJSON reads the next message as a JSON object, failing the test after timeout.
func (c *Client) ReadJSON(timeout time.Duration) map[string]any {
	c.tb.Helper()
	b, err := c.Read(timeout)
	if err != nil {
		c.tb.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		c.tb.Fatalf("reply %s is not a JSON object: %v", b, err)
	}
	return m
}

// Call sends msg and returns the next reply.
func (c *Client) Call(msg string) map[string]any {
	c.tb.Helper()
	c.Send(msg)
	return c.ReadJSON(10 * time.Second)
}
