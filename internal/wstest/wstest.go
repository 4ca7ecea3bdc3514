// Package wstest is a small WebSocket test client (gobwas/ws client side) for the gateway's tests.
//
// Goroutines: Dial, Send, ReadJSON and Call fail the test (t.Fatal) and so may be called only from the
// test's own goroutine. Other goroutines use Write and Read, which return their errors for the goroutine to
// hand back (over a channel, or with t.Error).
package wstest

import (
	"context"
	"encoding/json"
	"fmt"
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
// goroutine (one reader at a time).
func (c *Client) Read(timeout time.Duration) ([]byte, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(timeout))
	defer c.Conn.SetReadDeadline(time.Time{})
	b, _, err := wsutil.ReadServerData(c.Conn)
	return b, err
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
