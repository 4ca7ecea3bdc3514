package transport

import (
	"cmp"
	"errors"
	"slices"
	"sync/atomic"
	"time"
)

// The buffer budget (Config.BufferBudget) bounds the memory that all connections together hold for data in
// flight: read buffers of unfinished frames and messages, write queues, and what the handler declares with
// Conn.ChargeBuffer. One atomic counter on the Server is charged as those buffers grow and refunded as they
// shrink or their connection goes. The charge that goes over the budget closes, there and then (outside any
// connection's lock), the connections that hold the most until the total is back under it: a read-side holder with 1009 (its message is too big for what the server can hold now), a
// write-side (or handler-side) holder with 1013 (try again later: the server is overloaded, and the
// client's replies or requests wait).

// chargeClosed marks a torn-down connection's charges: later charges (of its read worker, of the handler)
// are ignored, so that the teardown's refund is the last word.
const chargeClosed = -1 << 62

// chargeTo adds delta bytes (negative: a refund) to one of the connection's charges and to the server's
// total, and reports whether the total is now over the budget.
func (c *Conn) chargeTo(ctr *atomic.Int64, delta int64) bool {
	for {
		old := ctr.Load()
		if old < 0 {
			return false // torn down: the teardown refunded everything
		}
		if ctr.CompareAndSwap(old, old+delta) {
			return c.srv.charge(delta)
		}
	}
}

// chargeRead charges the read state's buffers; over the budget, it closes the biggest holders at once (the
// read worker holds no lock here), this connection perhaps among them.
func (c *Conn) chargeRead(delta int64) {
	if c.chargeTo(&c.rbuf, delta) {
		c.srv.enforceBudget(c)
	}
}

// ChargeBuffer counts delta bytes (negative: released) that the handler holds for this connection, such as
// copies of messages waiting to be handled, against Config.BufferBudget and in the connection's share when
// the budget picks whom to close. Charges after the connection is closed are ignored: its whole charge was
// released then. Safe from any goroutine that holds no lock the handler's OnClose takes: over the budget, it
// closes the biggest holders at once.
func (c *Conn) ChargeBuffer(delta int) {
	if c.chargeTo(&c.hbuf, int64(delta)) {
		c.srv.enforceBudget(c)
	}
}

// refundAll gives back the read-side and handler charges of a torn-down connection (the write queue's is
// refunded with the queue).
func (c *Conn) refundAll() {
	for _, ctr := range []*atomic.Int64{&c.rbuf, &c.hbuf} {
		if old := ctr.Swap(chargeClosed); old > 0 {
			c.srv.charge(-old)
		}
	}
}

// charge adds delta bytes to the server's buffered total and reports whether it grew over the budget.
func (s *Server) charge(delta int64) bool {
	return s.buffered.Add(delta) > int64(s.cfg.BufferBudget) && delta > 0
}

// enforceBudget closes the connections that hold the most buffered bytes until the total is back under the
// budget. It scans every connection, but only when the budget is exceeded, so it costs nothing in normal
// operation. Callers hold no connection's lock. Between holders of the same size, the one that is growing
// (grower, may be nil) goes first, then the newest: a newcomer is refused rather than an older holder closed
// for it, which would only churn memory (the growth is charged before it is allocated).
func (s *Server) enforceBudget(grower *Conn) {
	budget := int64(s.cfg.BufferBudget)
	if s.buffered.Load() <= budget {
		return
	}
	s.enforceMu.Lock()
	defer s.enforceMu.Unlock()
	over := s.buffered.Load() - budget
	if over <= 0 {
		return // another caller made room meanwhile
	}
	type holder struct {
		c                  *Conn
		read, queued, held int64
	}
	s.mu.Lock()
	holders := make([]holder, 0, s.nconns)
	for _, c := range s.conns {
		if c != nil {
			holders = append(holders, holder{c: c, read: max(c.rbuf.Load(), 0), held: max(c.hbuf.Load(), 0)})
		}
	}
	s.mu.Unlock()
	for i := range holders {
		h := &holders[i]
		h.c.mu.Lock()
		h.queued = int64(h.c.queuedLocked())
		h.c.mu.Unlock()
	}
	total := func(h holder) int64 { return h.read + h.queued + h.held }
	slices.SortFunc(holders, func(a, b holder) int {
		if n := cmp.Compare(total(b), total(a)); n != 0 {
			return n
		}
		switch grower {
		case a.c:
			return -1
		case b.c:
			return 1
		}
		return cmp.Compare(b.c.id, a.c.id)
	})
	for _, h := range holders {
		if over <= 0 || total(h) == 0 {
			break
		}
		over -= total(h)
		s.stats.budgetEvictions.Add(1)
		code, reason := CloseTryAgainLater, "server buffer budget exceeded: try again later"
		if h.read >= h.queued && h.read >= h.held {
			code, reason = CloseMessageTooBig, "server buffer budget exceeded: message too big for now"
		}
		// Under an attack this runs for many connections a second: one line a second says enough (the
		// metric counts them all).
		if now, last := time.Now().UnixNano(), s.evictWarned.Load(); now-last >= int64(time.Second) &&
			s.evictWarned.CompareAndSwap(last, now) {
			s.log.Warn("closing a connection over the buffer budget", "conn_id", h.c.id, "remote", h.c.RemoteAddr(),
				"unfinished_bytes", h.read, "queued_bytes", h.queued, "handler_bytes", h.held, "code", code,
				"evictions_total", s.stats.budgetEvictions.Load())
		}
		h.c.evict(code, reason)
	}
}

var errEvicted = errors.New("transport: closed to stay within the buffer budget or the message timeout")

// evict sends a close frame if the socket takes it and tears the connection down at once, so that its
// buffers are released now rather than after a close handshake that a greedy client may never finish.
func (c *Conn) evict(code uint16, reason string) {
	c.evicted.Store(true)
	_ = c.Close(code, reason)
	c.teardown(errEvicted)
}

// checkMessageDeadline closes a connection whose unfinished frame or message began MessageTimeout ago (1008):
// empty continuation frames must not keep a partial message, and its memory, alive forever.
func (s *Server) checkMessageDeadline(c *Conn, now int64) bool {
	since := int64(c.pendingSince.Load())
	if since == 0 || now-since < max(int64(s.cfg.MessageTimeout/time.Second), 1) {
		return false
	}
	s.stats.messageTimeouts.Add(1)
	c.evict(ClosePolicyViolation, "message not completed in time")
	return true
}
