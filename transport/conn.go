package transport

import (
	"errors"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/gobwas/ws"
	"github.com/mailru/easygo/netpoll"
	"golang.org/x/sys/unix"
)

// Errors returned by Conn.Send.
var (
	ErrClosed       = errors.New("transport: connection is closed")
	ErrSlowConsumer = errors.New("transport: write queue is full (client does not read)")
)

const (
	stateOpen    uint8 = iota
	stateClosing       // a close frame is queued; the socket closes (or lingers) once it is written
	stateClosed
)

// Message is one complete client message.
type Message struct {
	// Binary is true for a binary message, false for text (always valid UTF-8).
	Binary bool
	// Data is the payload; valid only during the Handler call.
	Data []byte
	// InvalidUTF8 marks a text message that is not valid UTF-8, delivered only with Config.PassInvalidUTF8.
	InvalidUTF8 bool
}

// Conn is one WebSocket connection. After the upgrade it owns the socket's file descriptor directly (no
// net.Conn, no Go runtime poller entry): every system call on fd happens under mu and after a check that the
// connection is not closed, so a closed descriptor number can never be reused under it.
//
// An idle connection is this struct and nothing else, so its size is the transport's memory per connection:
// what only a busy connection needs hangs off pointers that are nil while it is idle (rs, wq), times are
// 32-bit unix seconds (enough until 2106), and the fields are ordered so that the small ones share words.
// TestConnSize keeps it within its allocation size class.
type Conn struct {
	srv *Server
	tls *tlsConn // nil for a plain connection (see tls.go)

	// rs is the read state: nil while the connection has no unfinished frame or message, so that an idle
	// connection holds no read buffer. Only the pool worker handling the connection's readiness touches it,
	// and epoll one-shot guarantees there is at most one at a time; teardown drops it, under mu, when no
	// worker holds the connection (armed), so that a closed connection's buffers do not wait for the last
	// reference to the Conn to go.
	rs *readState
	// wq is the write queue (under mu): nil while nothing is queued, so that an idle connection holds none.
	wq *writeQueue

	id    uint64 // order of acceptance, 1 for the first
	value any    // set in OnOpen, before the connection is registered with epoll
	// addr and port are the client's address (RemoteAddr): apart, because a netip.AddrPort pads its port to
	// a word of its own, and port fits among the small fields below.
	addr netip.Addr
	fd   int

	rbuf atomic.Int64 // bytes of rs charged to the server's budget; chargeClosed once torn down
	hbuf atomic.Int64 // bytes the handler charged (ChargeBuffer); chargeClosed once torn down

	mu sync.Mutex

	pendingSince atomic.Uint32 // unix seconds when the unfinished frame or message began, 0 if none
	lastRead     atomic.Uint32 // unix seconds of the last frame read
	blocked      atomic.Uint32 // unix seconds since the socket has refused writes, 0 if it has not
	evicted      atomic.Bool   // closed by the buffer budget or the message timeout
	pinged       atomic.Bool   // a keepalive ping is outstanding

	port    uint16
	opened  bool // OnOpen has returned (under srv.mu; see Server.Conns)
	deflate bool // permessage-deflate was negotiated (set before the connection is registered)

	// Under mu:
	state      uint8
	writeArmed bool // fd is registered with the write poller
	paused     bool // SetReadPaused: re-arm for hang-up only, not for reading
	armed      bool // a one-shot epoll registration is pending (it has not fired yet)
	watching   bool // the pending registration is for hang-up only (the connection is paused)
	hangup     bool // epoll reported a hang-up or an error
}

// unixSeconds is the clock of Conn's times: unix seconds in 32 bits, enough until 2106.
func unixSeconds() uint32 { return uint32(time.Now().Unix()) }

// writeQueue holds the frames queued for a connection's socket (under the connection's mu). A connection has
// one only while something is queued: it is taken from writeQueues when a frame is queued and goes back once
// the socket has taken everything, so that a reply costs no allocation for its queue.
type writeQueue struct {
	out     [][]byte // queued frames (header and payload slices)
	bytes   int      // bytes queued (the limit of WriteQueueBytes)
	charged int      // memory of the queued buffers (their capacity), charged to the server's budget
	headCut int      // bytes written of out[0], which slicing took off its capacity
	// small is out's first backing array: a reply (header and payload, or a TLS record or two) fits in it,
	// and it comes back with the queue from the pool.
	small [2][]byte
}

// push queues b. Once the queue outgrows small, small is cleared: its copies of the first frames must not
// keep them alive after they are written (and their memory refunded to the budget).
func (q *writeQueue) push(b []byte) {
	moves := len(q.out) == cap(q.out) // append moves the queue to a new array, with every frame it holds
	q.out = append(q.out, b)
	if moves {
		clear(q.small[:])
	}
}

// writeQueues are the write queues of connections that have nothing queued.
var writeQueues = sync.Pool{New: func() any { return new(writeQueue) }}

// queueForLocked returns the connection's write queue, taking one from the pool if it has none.
func (c *Conn) queueForLocked() *writeQueue {
	if c.wq == nil {
		q := writeQueues.Get().(*writeQueue)
		q.out = q.small[:0]
		c.wq = q
	}
	return c.wq
}

// dropQueueLocked gives back the connection's write queue, which holds nothing more (or whose charge the
// caller has refunded).
func (c *Conn) dropQueueLocked() {
	q := c.wq
	if q == nil {
		return
	}
	c.wq = nil
	*q = writeQueue{} // nothing in the pool holds a frame alive, nor a long queue's array
	writeQueues.Put(q)
}

// queuedBytesLocked is the number of bytes queued, against WriteQueueBytes.
func (c *Conn) queuedBytesLocked() int {
	if c.wq == nil {
		return 0
	}
	return c.wq.bytes
}

// queuedLocked is the memory of what the write queue holds, as charged to the budget.
func (c *Conn) queuedLocked() int {
	if c.wq == nil {
		return 0
	}
	return c.wq.charged
}

// readState holds what a connection has read of an unfinished frame or message.
type readState struct {
	hdr     [maxHeaderSize]byte // the bytes of an incomplete frame header
	hdrLen  int
	frame   frameHeader // the frame whose payload is being read, while inFrame
	inFrame bool
	left    int64  // payload bytes of frame still to come
	maskPos int    // payload bytes of frame read so far (the mask's offset)
	ctrl    []byte // payload of a control frame that came in pieces
	msg     []byte // the unfinished message: earlier fragments and what came of the current frame's payload
	msgOp   byte   // opcode of the unfinished message, 0 if none
	msgZ    bool   // the unfinished message is compressed
	utf8    utf8Stream
}

// readStateSize is what a read state costs besides its buffers, as charged to the budget.
const readStateSize = int64(unsafe.Sizeof(readState{}))

// SetValue stores the handler's per-connection value (the server keeps the session's PID here). Call it only
// from OnOpen: it is not synchronised with the other callbacks.
func (c *Conn) SetValue(v any) { c.value = v }

// Value returns what SetValue stored, or nil.
func (c *Conn) Value() any { return c.value }

// RemoteAddr is the client's address.
func (c *Conn) RemoteAddr() netip.AddrPort { return netip.AddrPortFrom(c.addr, c.port) }

// ID identifies the connection within the server (1, 2, ... in the order of their upgrades); logs show it as
// conn_id.
func (c *Conn) ID() uint64 { return c.id }

// Send queues a text message and returns at once. The connection owns msg from now on. If the queue is over
// its byte limit, the connection is closed (1008) and ErrSlowConsumer returned.
func (c *Conn) Send(msg []byte) error { return c.sendData(opText, msg) }

// SendBinary queues a binary message, as Send does.
func (c *Conn) SendBinary(msg []byte) error { return c.sendData(opBinary, msg) }

func (c *Conn) sendData(op byte, msg []byte) error {
	if c.deflate && len(msg) >= c.srv.cfg.CompressMinSize {
		msg = compress(msg)
		op |= rsv1 // marks a compressed message; appendHeader keeps the high bits of op
	}
	return c.enqueue(appendHeader(make([]byte, 0, 10), true, op, len(msg)), msg)
}

func (c *Conn) sendControl(op byte, payload []byte) error {
	f := appendHeader(make([]byte, 0, 2+len(payload)), true, op, len(payload))
	return c.enqueue(append(f, payload...), nil)
}

func (c *Conn) enqueue(hdr, payload []byte) error {
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return ErrClosed
	}
	size := len(hdr) + len(payload)
	if c.queuedBytesLocked()+size > c.srv.cfg.WriteQueueBytes {
		c.mu.Unlock()
		c.srv.stats.slowConsumers.Add(1)
		_ = c.Close(ClosePolicyViolation, "slow consumer: write queue full")
		return ErrSlowConsumer
	}
	over, err := c.queueLocked(hdr, payload)
	if err == nil {
		err = c.flushLocked()
	}
	c.mu.Unlock()
	if err != nil {
		c.teardown(err)
	}
	if over {
		c.srv.enforceBudget(c)
	}
	return nil
}

// Close sends a close frame with code and reason, then closes the socket once the queue is written. It never
// blocks and is safe to call more than once.
func (c *Conn) Close(code uint16, reason string) error {
	c.mu.Lock()
	if c.state != stateOpen {
		c.mu.Unlock()
		return nil
	}
	c.state = stateClosing
	payload := closePayload(code, reason)
	_, err := c.queueLocked(append(appendHeader(make([]byte, 0, 4+len(payload)), true, opClose, len(payload)), payload...), nil)
	if err == nil {
		err = c.flushLocked()
	}
	c.mu.Unlock()
	if err != nil {
		c.teardown(err)
	}
	return nil
}

var errClosedBySelf = errors.New("transport: closed after close frame")

// queueLocked appends a frame to the write queue (a TLS connection's: encrypted) and charges the budget; it
// reports whether the budget is exceeded.
func (c *Conn) queueLocked(hdr, payload []byte) (over bool, err error) {
	if c.tls != nil {
		return c.queueTLSLocked(hdr, payload)
	}
	q := c.queueForLocked()
	q.push(hdr)
	mem := cap(hdr)       // what the queue holds alive, as the caller may have over-allocated
	if len(payload) > 0 { // an empty payload is not queued, so its capacity is neither held nor charged
		q.push(payload)
		mem += cap(payload)
	}
	q.bytes += len(hdr) + len(payload)
	q.charged += mem
	return c.srv.charge(int64(mem)), nil
}

// flushLocked writes what the socket takes without blocking. When the socket is full it waits for the write
// poller (the frames stay queued and later Sends only append); a closing connection whose queue is written
// is torn down (the error says so).
func (c *Conn) flushLocked() error {
	if c.blocked.Load() != 0 {
		return nil // waiting for writability: onWritable flushes
	}
	drained, err := c.writeNonBlockingLocked()
	if err != nil {
		return err
	}
	if !drained {
		c.blocked.Store(unixSeconds())
		return c.armWriteLocked()
	}
	if c.state == stateClosing {
		return errClosedBySelf
	}
	return nil
}

// armWriteLocked asks the write poller for one writability event.
func (c *Conn) armWriteLocked() error {
	if c.writeArmed {
		return c.srv.wpoller.mod(c.fd, writeEvents)
	}
	c.writeArmed = true
	return c.srv.wpoller.add(c, writeEvents)
}

// onWritable runs on a pool worker when a backed-up socket accepts writes again.
func (c *Conn) onWritable() {
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		return
	}
	c.blocked.Store(0)
	err := c.flushLocked()
	c.mu.Unlock()
	if err != nil {
		c.teardown(err)
	}
}

// maxIovec bounds the buffers of one writev (the kernel's IOV_MAX is 1024).
const maxIovec = 1024

func (c *Conn) writeNonBlockingLocked() (drained bool, err error) {
	for c.wq != nil && len(c.wq.out) > 0 {
		iov := c.wq.out
		if len(iov) > maxIovec {
			iov = iov[:maxIovec]
		}
		n, werr := unix.Writev(c.fd, iov)
		if n > 0 {
			c.consumeOut(n)
		}
		switch werr {
		case nil, unix.EINTR:
		case unix.EAGAIN:
			return false, nil
		default:
			return false, werr
		}
	}
	c.dropQueueLocked() // written: an idle connection holds no queue (and a long queue's array goes)
	return true, nil
}

func (c *Conn) consumeOut(n int) {
	q := c.wq
	q.bytes -= n
	freed := 0
	for n > 0 {
		if n < len(q.out[0]) {
			q.out[0] = q.out[0][n:]
			q.headCut += n
			break
		}
		n -= len(q.out[0])
		freed += cap(q.out[0]) + q.headCut
		q.headCut = 0
		q.out[0] = nil
		q.out = q.out[1:]
	}
	q.charged -= freed
	c.srv.charge(-int64(freed))
}

// teardown closes the socket and reports the end of the connection to the handler, once. A plain socket that
// the server closed itself after writing its close frame, and whose client has not hung up, lingers instead
// (linger.go): its writing side is shut down and the lingerer owns the descriptor from here on, so that the
// client's late requests cannot make the kernel reset what it has not yet delivered. Everything else of the
// teardown happens at once, and the connection never touches fd again either way.
func (c *Conn) teardown(cause error) {
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		return
	}
	c.state = stateClosed
	c.srv.charge(-int64(c.queuedLocked()))
	c.dropQueueLocked()
	c.refundAll()
	if c.armed { // no worker holds the connection, and none will: its read buffers can go now
		c.armed = false
		c.rs = nil
	}
	_ = c.srv.poller.del(c.fd)
	if c.writeArmed {
		_ = c.srv.wpoller.del(c.fd)
	}
	switch {
	case c.tls != nil:
		c.closeTLS()
	case cause == errClosedBySelf && !c.hangup && c.srv.lingerFD(c.fd): // after the poller's del, above
	default:
		_ = unix.Close(c.fd)
	}
	c.mu.Unlock()
	c.srv.forget(c)
	if cause == errClosedBySelf || cause == io.EOF {
		cause = nil
	}
	c.srv.handler.OnClose(c, cause)
}

// read reads what the socket holds without blocking.
func (c *Conn) read(buf []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateClosed {
		return 0, ErrClosed
	}
	n, err := unix.Read(c.fd, buf)
	if n < 0 {
		n = 0
	}
	return n, err
}

// rearm asks epoll for the next readiness event (one-shot), unless the connection is closed. A paused
// connection is armed for hang-up only, so that a client that leaves while paused is noticed at once.
func (c *Conn) rearm() {
	c.mu.Lock()
	c.armReadLocked()
}

// armReadLocked re-arms read (or, paused, hang-up) interest and unlocks mu.
func (c *Conn) armReadLocked() { c.armReadLockedThen(c.teardown) }

// armReadLockedThen is armReadLocked, handing a poller failure to fail (after unlocking mu).
func (c *Conn) armReadLockedThen(fail func(error)) {
	if c.state == stateClosed {
		c.mu.Unlock()
		return
	}
	var events netpoll.EpollEvent = readEvents
	if c.paused {
		events = hangupEvents
	}
	c.armed, c.watching = true, c.paused
	if err := c.srv.poller.mod(c.fd, events); err != nil {
		c.mu.Unlock()
		fail(err)
		return
	}
	c.mu.Unlock()
}

// fired takes the pending epoll registration when it reports ev, and says whether a worker should handle it.
// An event with no pending registration is stale (SetReadPaused(false) changed the interest of a registration that
// had just fired): dropping it keeps to at most one worker per connection.
func (c *Conn) fired(ev netpoll.EpollEvent) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.armed {
		return false
	}
	c.armed = false
	if ev&(netpoll.EPOLLRDHUP|netpoll.EPOLLHUP|netpoll.EPOLLERR) != 0 {
		c.hangup = true
	}
	return true
}

// SetReadPaused(true) stops reading from the connection after what is being read now, until
// SetReadPaused(false): the kernel's buffer fills and TCP pushes back on the client. The handler uses it when
// it cannot keep up. A paused connection still notices a hang-up (and is then closed). It works under the
// connection's lock: when several goroutines decide the state, the last call wins, whatever the order in
// which they reached it.
func (c *Conn) SetReadPaused(paused bool) {
	c.mu.Lock()
	if paused == c.paused {
		c.mu.Unlock()
		return
	}
	c.paused = paused
	if paused {
		c.srv.stats.pauses.Add(1)
	}
	if c.tls != nil { // its reader goroutine checks paused after each read, and waits while it is set
		c.mu.Unlock()
		if !paused {
			c.resumeTLS()
		}
		return
	}
	if !paused && c.armed && c.watching {
		// Widen the pending hang-up registration to reading. The handler calls SetReadPaused, often under its
		// own locks, and its OnClose may take them: should the poller refuse, the connection is torn down on a
		// goroutine of its own (short-lived: teardown does not block), never inside the handler's call.
		c.armReadLockedThen(func(err error) { go c.teardown(err) })
		return
	}
	c.mu.Unlock() // a worker holds or will hold the event, and re-arms by the new state
}

// pausedOnEntry handles a readiness event of a paused connection: a hang-up closes it, anything else
// re-arms it for hang-up only. It reports whether the connection was paused.
func (c *Conn) pausedOnEntry() bool {
	c.mu.Lock()
	if !c.paused {
		c.mu.Unlock()
		return false
	}
	if c.hangup {
		c.mu.Unlock()
		c.teardown(io.EOF)
		return true
	}
	c.armReadLocked()
	return true
}

// onReadable runs on a pool worker: it reads what the kernel holds without blocking, parses it, and re-arms.
func (c *Conn) onReadable(buf []byte) {
	if c.pausedOnEntry() {
		return
	}
	if !c.readAvailable(buf) {
		c.releaseRead() // the connection is closing or closed: no worker reads it again
		return
	}
	c.rearm() // level-triggered: if bytes remain (budget spent), epoll fires again at once
}

// readAvailable reads and parses what the kernel holds, up to ReadBudget bytes; it reports whether the
// connection is still open for reading.
func (c *Conn) readAvailable(buf []byte) bool {
	budget := c.srv.cfg.ReadBudget
	for budget > 0 {
		n, rerr := c.read(buf)
		if rerr == ErrClosed {
			return false
		}
		if rerr == unix.EAGAIN {
			break
		}
		if rerr == unix.EINTR {
			continue
		}
		if rerr != nil {
			c.teardown(rerr)
			return false
		}
		if n <= 0 {
			c.teardown(io.EOF)
			return false
		}
		budget -= n
		if err := c.consume(buf[:n]); err != nil {
			c.fail(err)
			return false
		}
		closing, paused := c.readStatus()
		if closing {
			return false
		}
		if paused {
			break // leave the rest in the kernel's buffer
		}
	}
	return true
}

// readStatus reports, under one lock, whether the connection is closing (or closed) and whether reading is
// paused.
func (c *Conn) readStatus() (closing, paused bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state != stateOpen, c.paused
}

// fail closes the connection for a protocol error, and lets go of what it was reading.
func (c *Conn) fail(err error) {
	c.releaseRead()
	var ce *closeError
	if errors.As(err, &ce) {
		c.srv.stats.protocolErrors.Add(1)
		_ = c.Close(ce.code, ce.reason)
		return
	}
	c.teardown(err)
}

// consume parses data (which it may modify) as a continuation of what it read before. Bytes are copied only
// into the buffer of an unfinished frame or message, once each, and that buffer grows geometrically up to the
// size the frame headers announce: parsing is linear in the bytes read, whatever the read sizes.
func (c *Conn) consume(data []byte) error {
	frames := false // a frame was completed: the client is alive (one clock read per read, not per frame)
	defer func() {
		if frames {
			c.lastRead.Store(unixSeconds())
			c.pinged.Store(false)
		}
	}()
	for len(data) > 0 {
		rs := c.rs
		if rs == nil || !rs.inFrame {
			var h frameHeader
			var err error
			if data, h, err = c.nextHeader(data); err != nil || data == nil {
				return err // data == nil: the header is not all here yet, and kept
			}
			if err := c.checkHeader(&h); err != nil {
				return err
			}
			// Fast path: a control frame or a whole message that is all in data is handled in place.
			if int64(len(data)) >= h.length && (h.op >= opClose || (h.fin && h.op != opContinuation)) {
				payload := data[:h.length]
				data = data[h.length:]
				ws.Cipher(payload, h.mask, 0)
				frames = true
				if err := c.wholeFrame(&h, payload); err != nil {
					return err
				}
				continue
			}
			if err := c.startFrame(&h); err != nil {
				return err
			}
			rs = c.rs
		}
		k := int(min(int64(len(data)), rs.left))
		if err := c.payload(data[:k]); err != nil {
			return err
		}
		data = data[k:]
		if rs.left == 0 {
			frames = true
			if err := c.endFrame(); err != nil {
				return err
			}
		}
	}
	c.dropIdleRead()
	return nil
}

// nextHeader parses the next frame header, from the bytes kept of an incomplete one and data. It returns the
// rest of data, or nil data once it kept an incomplete header.
func (c *Conn) nextHeader(data []byte) ([]byte, frameHeader, error) {
	rs := c.rs
	if rs == nil || rs.hdrLen == 0 {
		h, hn, err := parseHeader(data)
		if err == errShortHeader {
			rs = c.readState()
			rs.hdrLen = copy(rs.hdr[:], data)
			return nil, h, nil
		}
		if err != nil {
			return nil, h, err
		}
		return data[hn:], h, nil
	}
	k := copy(rs.hdr[rs.hdrLen:], data) // k < len(data) only when hdr is full, and then parses
	h, hn, err := parseHeader(rs.hdr[:rs.hdrLen+k])
	if err == errShortHeader {
		rs.hdrLen += k
		return nil, h, nil
	}
	if err != nil {
		return nil, h, err
	}
	used := hn - rs.hdrLen
	rs.hdrLen = 0
	return data[used:], h, nil
}

// readState returns the connection's read state, making it (and charging the budget for it) if need be. The
// first unfinished byte starts the clock of Config.MessageTimeout.
func (c *Conn) readState() *readState {
	if c.rs == nil {
		c.rs = &readState{}
		c.chargeRead(readStateSize)
		c.pendingSince.CompareAndSwap(0, unixSeconds())
	}
	return c.rs
}

// dropIdleRead lets the read state go when nothing is unfinished, so that an idle connection holds no read
// memory; the MessageTimeout clock stops.
func (c *Conn) dropIdleRead() {
	rs := c.rs
	if rs == nil || rs.inFrame || rs.hdrLen > 0 || rs.msgOp != 0 {
		return
	}
	c.releaseRead()
}

// releaseRead lets every read buffer go and refunds the budget.
func (c *Conn) releaseRead() {
	if rs := c.rs; rs != nil {
		c.chargeRead(-int64(cap(rs.msg)) - int64(cap(rs.ctrl)) - readStateSize)
		c.rs = nil
	}
	c.pendingSince.Store(0)
}

// startFrame begins reading the payload of a frame that did not arrive whole.
func (c *Conn) startFrame(h *frameHeader) error {
	rs := c.readState()
	switch h.op {
	case opText, opBinary:
		if rs.msgOp != 0 {
			return errProtocol("new message before the previous one finished")
		}
		rs.msgOp, rs.msgZ, rs.utf8 = h.op, h.compressed, utf8Stream{}
	case opContinuation:
		if rs.msgOp == 0 {
			return errProtocol("continuation frame without a message to continue")
		}
	default: // control frame: at most 125 bytes
		rs.ctrl = make([]byte, 0, h.length)
		c.chargeRead(h.length)
	}
	rs.frame, rs.inFrame, rs.left, rs.maskPos = *h, true, h.length, 0
	return nil
}

// payload takes the next bytes of the current frame's payload: into the message (or control frame) buffer,
// unmasked, and for an uncompressed text message checked as UTF-8 at once, so that invalid text fails on the
// fragment that brings it (the bytes of a rune cut between fragments wait for the rest).
func (c *Conn) payload(p []byte) error {
	rs := c.rs
	rs.left -= int64(len(p))
	if rs.frame.op >= opClose {
		rs.ctrl = append(rs.ctrl, p...)
		ws.Cipher(rs.ctrl[len(rs.ctrl)-len(p):], rs.frame.mask, rs.maskPos)
		rs.maskPos += len(p)
		return nil
	}
	if cap(rs.msg)-len(rs.msg) < len(p) {
		if rs.msg = c.growMsg(rs.msg, len(p), len(rs.msg)+len(p)+int(rs.left)); c.evicted.Load() {
			return errEvicted // the growth went over the budget, and this connection was the biggest holder
		}
	}
	start := len(rs.msg)
	rs.msg = append(rs.msg, p...)
	ws.Cipher(rs.msg[start:], rs.frame.mask, rs.maskPos)
	rs.maskPos += len(p)
	if rs.msgOp == opText && !rs.msgZ && !c.srv.cfg.PassInvalidUTF8 && !rs.utf8.write(rs.msg[start:]) {
		return &closeError{code: CloseInvalidPayload, reason: "text message is not valid UTF-8"}
	}
	return nil
}

// growMsg makes room for add more bytes in b, which must hold at least limit bytes by the end of the
// current frame: once a frame's header is known, its whole payload gets room in one allocation (so a big
// frame is copied once, and churns no intermediate buffers; the budget is charged before the allocation, so
// that a connection closed for the budget never allocates), and a message of many fragments at least
// doubles the buffer each time (linear copying overall), never beyond MaxMessageSize.
func (c *Conn) growMsg(b []byte, add, limit int) []byte {
	n := max(limit, min(2*cap(b), c.srv.cfg.MaxMessageSize), len(b)+add)
	c.chargeRead(int64(n - cap(b))) // before allocating: over the budget, the connection may be closed
	if c.evicted.Load() {
		return b // closed to stay within the budget: the caller stops (payload checks evicted)
	}
	nb := make([]byte, len(b), n)
	copy(nb, b)
	return nb
}

// endFrame handles a frame whose payload is complete.
func (c *Conn) endFrame() error {
	rs := c.rs
	rs.inFrame = false
	h := &rs.frame
	if h.op >= opClose {
		ctrl := rs.ctrl
		rs.ctrl = nil
		c.chargeRead(-int64(cap(ctrl)))
		c.dropIdleRead()
		return c.control(h.op, ctrl)
	}
	if !h.fin {
		return nil
	}
	op, data, z, checked := rs.msgOp, rs.msg, rs.msgZ, rs.utf8.n == 0
	rs.msgOp = 0
	err := c.deliver(op, data, z, checked)
	rs.msg = nil // a big message's buffer goes back to the allocator
	c.chargeRead(-int64(cap(data)))
	c.dropIdleRead()
	return err
}

// wholeFrame handles a control frame or a whole message that arrived in one read, in place.
func (c *Conn) wholeFrame(h *frameHeader, payload []byte) error {
	if h.op >= opClose {
		return c.control(h.op, payload)
	}
	if c.rs != nil && c.rs.msgOp != 0 {
		return errProtocol("new message before the previous one finished")
	}
	return c.deliver(h.op, payload, h.compressed, false)
}

func (c *Conn) checkHeader(h *frameHeader) error {
	cfg := &c.srv.cfg
	if h.rsv == rsv1 && c.deflate && (h.op == opText || h.op == opBinary) {
		h.rsv = 0 // the first frame of a compressed message; frame() sees h.compressed
		h.compressed = true
	}
	switch {
	case h.rsv != 0:
		return errProtocol("reserved bits set without a negotiated extension")
	case !h.masked:
		return errProtocol("client frames must be masked")
	case h.op >= opClose: // control frame
		if h.op > opPong {
			return errProtocol("unknown opcode")
		}
		if !h.fin || h.length > 125 {
			return errProtocol("control frames must be unfragmented and at most 125 bytes")
		}
	case h.op > opBinary:
		return errProtocol("unknown opcode")
	case h.length > int64(cfg.MaxFrameSize):
		return &closeError{code: CloseMessageTooBig, reason: "frame too big"}
	case c.pendingMessageLen()+h.length > int64(cfg.MaxMessageSize):
		return &closeError{code: CloseMessageTooBig, reason: "message too big"}
	}
	return nil
}

// pendingMessageLen is the size of the unfinished message.
func (c *Conn) pendingMessageLen() int64 {
	if c.rs == nil || c.rs.msgOp == 0 {
		return 0
	}
	return int64(len(c.rs.msg))
}

// control handles a complete control frame.
func (c *Conn) control(op byte, payload []byte) error {
	switch op {
	case opPing:
		return ignoreClosed(c.sendControl(opPong, payload))
	case opPong:
		return nil
	default:
		return c.closeFrame(payload)
	}
}

// deliver hands a complete message to the handler. checked says that its text was validated as it arrived.
func (c *Conn) deliver(op byte, data []byte, compressed, checked bool) error {
	if compressed {
		var err error
		if data, err = decompress(data, c.srv.cfg.MaxMessageSize); err != nil {
			return err
		}
		checked = false
	}
	invalid := op == opText && !(checked && !c.srv.cfg.PassInvalidUTF8) && !utf8.Valid(data)
	if invalid && !c.srv.cfg.PassInvalidUTF8 {
		return &closeError{code: CloseInvalidPayload, reason: "text message is not valid UTF-8"}
	}
	c.srv.handler.OnMessage(c, Message{Binary: op == opBinary, Data: data, InvalidUTF8: invalid})
	return nil
}

// closeFrame answers the client's close frame with the same code (RFC 6455 section 5.5.1).
func (c *Conn) closeFrame(payload []byte) error {
	switch {
	case len(payload) == 0:
		return ignoreClosed(c.Close(CloseNormal, ""))
	case len(payload) == 1:
		return errProtocol("close frame with a one-byte body")
	}
	code := uint16(payload[0])<<8 | uint16(payload[1])
	if !validCloseCode(code) {
		return errProtocol("invalid close code")
	}
	if !utf8.Valid(payload[2:]) {
		return &closeError{code: CloseInvalidPayload, reason: "close reason is not valid UTF-8"}
	}
	return ignoreClosed(c.Close(code, ""))
}

func ignoreClosed(err error) error {
	if errors.Is(err, ErrClosed) || errors.Is(err, ErrSlowConsumer) {
		return nil
	}
	return err
}
