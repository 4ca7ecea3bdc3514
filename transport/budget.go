package transport

import (
	"cmp"
	"errors"
	"slices"
	"time"
)

// The buffer budget (Config.BufferBudget) bounds the memory that all connections together hold for data in
// flight: read buffers of unfinished frames and messages, and write queues. One atomic counter on the Server
// is charged as those buffers grow and refunded as they shrink or their connection goes. Going over the
// budget wakes the keepalive goroutine, which closes the connections that hold the most until the total is
// back under it: a read-side holder with 1009 (its message is too big for what the server can hold now), a
// write-side holder with 1013 (try again later: the server is overloaded and it has not read its replies).

// rbufClosed marks a torn-down connection's read charge: later charges of its worker are ignored, so that
// the teardown's refund is the last word.
const rbufClosed = -1 << 62

// chargeRead adds delta bytes (negative: a refund) to the connection's read-side charge and to the server's
// total. Only the connection's read worker calls it (and teardown, through refundRead).
func (c *Conn) chargeRead(delta int64) {
	for {
		old := c.rbuf.Load()
		if old < 0 {
			return // torn down: the teardown refunded everything
		}
		if c.rbuf.CompareAndSwap(old, old+delta) {
			break
		}
	}
	c.srv.charge(delta)
}

// refundRead gives back the whole read-side charge of a torn-down connection.
func (c *Conn) refundRead() {
	if old := c.rbuf.Swap(rbufClosed); old > 0 {
		c.srv.charge(-old)
	}
}

// charge adds delta bytes to the server's buffered total and, going over the budget, asks for evictions.
func (s *Server) charge(delta int64) {
	if s.buffered.Add(delta) > int64(s.cfg.BufferBudget) && delta > 0 {
		select {
		case s.overBudget <- struct{}{}:
		default:
		}
	}
}

// enforceBudget closes the connections that hold the most buffered bytes until the total is under the
// budget. It runs on the keepalive goroutine only when the budget is exceeded, so the scan of every
// connection costs nothing in normal operation.
func (s *Server) enforceBudget(batch []*Conn) {
	over := s.buffered.Load() - int64(s.cfg.BufferBudget)
	if over <= 0 {
		return
	}
	type holder struct {
		c           *Conn
		read, write int64
	}
	holders := make([]holder, 0, len(batch))
	for _, c := range batch {
		c.mu.Lock()
		w := int64(c.outBytes)
		c.mu.Unlock()
		if r := max(c.rbuf.Load(), 0); r+w > 0 {
			holders = append(holders, holder{c, r, w})
		}
	}
	slices.SortFunc(holders, func(a, b holder) int { return cmp.Compare(b.read+b.write, a.read+a.write) })
	for _, h := range holders {
		if over <= 0 {
			break
		}
		over -= h.read + h.write
		s.stats.budgetEvictions.Add(1)
		code, reason := CloseMessageTooBig, "server buffer budget exceeded: message too big for now"
		if h.write > h.read {
			code, reason = CloseTryAgainLater, "server buffer budget exceeded: replies not read"
		}
		s.log.Warn("closing a connection over the buffer budget", "remote", h.c.remote,
			"read_bytes", h.read, "write_bytes", h.write, "code", code)
		h.c.evict(code, reason)
	}
}

var errEvicted = errors.New("transport: closed to stay within the buffer budget or the message timeout")

// evict sends a close frame if the socket takes it and tears the connection down at once, so that its
// buffers are released now rather than after a close handshake that a greedy client may never finish.
func (c *Conn) evict(code uint16, reason string) {
	_ = c.Close(code, reason)
	c.teardown(errEvicted)
}

// checkMessageDeadline closes a connection whose unfinished frame or message began MessageTimeout ago (1008):
// empty continuation frames must not keep a partial message, and its memory, alive forever.
func (s *Server) checkMessageDeadline(c *Conn, now int64) bool {
	since := c.pendingSince.Load()
	if since == 0 || now-since < max(int64(s.cfg.MessageTimeout/time.Second), 1) {
		return false
	}
	s.stats.messageTimeouts.Add(1)
	c.evict(ClosePolicyViolation, "message not completed in time")
	return true
}
