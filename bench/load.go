package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/gobwas/ws/wsutil"
	"github.com/mailru/easygo/netpoll"
	"golang.org/x/sys/unix"
)

// The load generator holds its connections as raw non-blocking file descriptors on epoll, read by a few
// goroutines: no goroutine per connection, so one process drives thousands of connections without the
// client's own scheduling dominating the figures. Each request carries its send time (µs since the run
// started) as req_id, which the gateway echoes: latency needs no per-request bookkeeping, and in open loop the
// time is the *intended* send time, which corrects for coordinated omission.

type loadConn struct {
	fd      int
	mu      sync.Mutex // guards writes and fd
	partial []byte     // bytes of an unfinished server frame
	closed  bool
}

// loadProto is how the load generator talks to a target: wsgate's JSON API (the zero value), or a peer's
// protocol such as Centrifugo's (peers.go). Every protocol's reply must echo `"req_id":<n>` from its request.
type loadProto struct {
	// hello, if set, is sent on every new connection, and its reply awaited, before any request.
	hello []byte
	// request, if set, appends the request that carries req_id sentMicros; nil means {"<action>":1,"req_id":n}.
	request func(buf []byte, action string, sentMicros int64) []byte
	// ping, if set, is a server's application-level ping (a whole message), answered with pong.
	ping, pong []byte
	// lines: a frame may hold several messages, one a line (Centrifugo's JSON protocol batches replies).
	lines bool
}

type loader struct {
	proto       loadProto
	conns       []*loadConn
	poller      *netpoll.Epoll
	ready       chan *loadConn
	start       time.Time
	action      string
	closed      bool // closed loop: each reply sends the next request on its connection
	record      atomic.Bool
	gen         atomic.Int64 // measurement window: workers reset their histograms when it changes
	stop        atomic.Bool
	workers     []*loadWorker
	wg          sync.WaitGroup
	sent        atomic.Int64
	writeEAGAIN atomic.Int64
	// atStart and atEnd, if set, run at the edges of the measured window (CPU sampling).
	atStart, atEnd func()
	// onError, if set, receives every error reply with its send time and arrival time (µs).
	onError func(payload []byte, sentMicros, nowMicros int64)
}

// loadWorker owns a histogram (merged at the end, so recording takes no lock); a new measurement window
// (gen) makes it start over.
type loadWorker struct {
	mu      sync.Mutex // guards hist and gen against the merge in result (uncontended otherwise)
	hist    *hdrhistogram.Histogram
	gen     int64
	ok, err atomic.Int64
	buf     []byte
}

// dialLoad opens n WebSocket connections to url, spreading them over source addresses 127.0.0.2, 127.0.0.3,
// ... (perSrc each), and returns them registered with epoll.
func dialLoad(url string, n, perSrc int, action string, closedLoop bool) (*loader, error) {
	return dialLoadTargets([]string{url}, n, perSrc, action, closedLoop, loadProto{})
}

// dialLoadURLs is dialLoad over several gateways: connection i goes to urls[i%len(urls)].
func dialLoadURLs(urls []string, n, perSrc int, action string, closedLoop bool) (*loader, error) {
	return dialLoadTargets(urls, n, perSrc, action, closedLoop, loadProto{})
}

// dialLoadProto is dialLoad for a target that speaks proto.
func dialLoadProto(url string, n, perSrc int, action string, closedLoop bool, proto loadProto) (*loader, error) {
	return dialLoadTargets([]string{url}, n, perSrc, action, closedLoop, proto)
}

// dialLoadTargets dials n connections over urls (connection i to urls[i%len(urls)]) speaking proto.
func dialLoadTargets(urls []string, n, perSrc int, action string, closedLoop bool, proto loadProto) (*loader, error) {
	l := &loader{proto: proto, action: action, closed: closedLoop, ready: make(chan *loadConn, 4096)}
	var err error
	if l.poller, err = netpoll.EpollCreate(nil); err != nil {
		return nil, err
	}
	conns := make([]*loadConn, n)
	var firstErr error
	var errMu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	// 32 dialers: the gateway's default --max-handshakes-per-ip is 64, and a handshake still counts there for a
	// moment after our dial has returned; at 64 the next upgrade from the same address gets its socket closed.
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				src := net.IPv4(127, 0, 0, byte(2+i/perSrc))
				c, err := dialRaw(urls[i%len(urls)], src, proto.hello)
				if err != nil {
					errMu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("connection %d: %w", i, err)
					}
					errMu.Unlock()
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		for _, c := range conns {
			if c != nil {
				unix.Close(c.fd)
			}
		}
		l.poller.Close()
		return nil, firstErr
	}
	l.conns = conns
	for _, c := range conns {
		c := c
		if err := l.poller.Add(c.fd, netpoll.EPOLLIN|netpoll.EPOLLRDHUP|netpoll.EPOLLONESHOT, func(ev netpoll.EpollEvent) {
			if ev&0x20 == 0 { // not the poller closing
				l.ready <- c
			}
		}); err != nil {
			return nil, err
		}
	}
	for i := 0; i < max(2, runtime.GOMAXPROCS(0)); i++ {
		w := &loadWorker{hist: hdrhistogram.New(1, 60_000_000, 3), buf: make([]byte, 64<<10)}
		l.workers = append(l.workers, w)
		l.wg.Add(1)
		go l.readLoop(w)
	}
	return l, nil
}

// dialRaw upgrades one connection, sends hello (if any) and reads its reply, and takes the connection's
// descriptor out of the net.Conn (dup, then close).
func dialRaw(url string, src net.IP, hello []byte) (*loadConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc, err := dialWS(ctx, url, src)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	if hello != nil {
		if err := wsutil.WriteClientText(nc, hello); err != nil {
			return nil, err
		}
		_ = nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		reply, err := wsutil.ReadServerText(nc)
		if err != nil {
			return nil, fmt.Errorf("reply to %s: %w", hello, err)
		}
		if bytes.Contains(reply, []byte(`"error"`)) {
			return nil, fmt.Errorf("reply to %s: %s", hello, reply)
		}
		_ = nc.SetReadDeadline(time.Time{})
	}
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var derr error
	rc.Control(func(orig uintptr) { fd, derr = unix.FcntlInt(orig, unix.F_DUPFD_CLOEXEC, 0) })
	if derr != nil {
		return nil, derr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &loadConn{fd: fd}, nil
}

// micros is the time since the run started, in µs: what req_id carries.
func (l *loader) micros(t time.Time) int64 { return t.Sub(l.start).Microseconds() }

// send writes one request, masked with a zero key (valid, and the payload needs no XOR).
func (l *loader) send(c *loadConn, sentMicros int64) {
	var p [256]byte
	var payload []byte
	if l.proto.request != nil {
		payload = l.proto.request(p[:0], l.action, sentMicros)
	} else {
		payload = fmt.Appendf(p[:0], `{"%s":1,"req_id":%d}`, l.action, sentMicros)
	}
	if l.sendFrame(c, payload) {
		l.sent.Add(1)
	}
}

// sendFrame writes one masked client text frame; it reports whether the whole frame was written.
func (l *loader) sendFrame(c *loadConn, payload []byte) bool {
	frame := make([]byte, 0, 8+len(payload))
	if len(payload) < 126 {
		frame = append(frame, 0x81, 0x80|byte(len(payload)))
	} else { // requests stay far below 64 KiB
		frame = append(frame, 0x81, 0x80|126, byte(len(payload)>>8), byte(len(payload)))
	}
	frame = append(frame, 0, 0, 0, 0)
	frame = append(frame, payload...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	for len(frame) > 0 {
		n, err := unix.Write(c.fd, frame)
		if n > 0 {
			frame = frame[n:]
		}
		if err == unix.EAGAIN {
			l.writeEAGAIN.Add(1)
			c.mu.Unlock()
			time.Sleep(100 * time.Microsecond)
			c.mu.Lock()
			if c.closed {
				return false
			}
			continue
		}
		if err != nil && err != unix.EINTR {
			return false
		}
	}
	return true
}

func (l *loader) readLoop(w *loadWorker) {
	defer l.wg.Done()
	for c := range l.ready {
		l.readConn(w, c)
	}
}

func (l *loader) readConn(w *loadWorker, c *loadConn) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		n, err := unix.Read(c.fd, w.buf)
		c.mu.Unlock()
		if err == unix.EAGAIN {
			break
		}
		if n <= 0 || (err != nil && err != unix.EINTR) {
			return // closed by the server: counted by the missing replies
		}
		data := w.buf[:n]
		if len(c.partial) > 0 {
			c.partial = append(c.partial, data...)
			data = c.partial
		}
		rest := l.frames(w, c, data)
		c.partial = append(c.partial[:0:0], rest...)
	}
	c.mu.Lock()
	if !c.closed {
		l.poller.Mod(c.fd, netpoll.EPOLLIN|netpoll.EPOLLRDHUP|netpoll.EPOLLONESHOT)
	}
	c.mu.Unlock()
}

var reqIDKey = []byte(`"req_id":`)

// frames handles complete server frames in data and returns the unfinished rest.
func (l *loader) frames(w *loadWorker, c *loadConn, data []byte) []byte {
	for len(data) >= 2 {
		op, hl, length := data[0]&0x0f, 2, int(data[1]&0x7f)
		switch length {
		case 126:
			if len(data) < 4 {
				return data
			}
			length, hl = int(binary.BigEndian.Uint16(data[2:4])), 4
		case 127:
			if len(data) < 10 {
				return data
			}
			length, hl = int(binary.BigEndian.Uint64(data[2:10])), 10
		}
		if len(data) < hl+length {
			return data
		}
		payload := data[hl : hl+length]
		data = data[hl+length:]
		if op != 0x1 {
			continue // pings and the like
		}
		if !l.proto.lines {
			l.message(w, c, payload)
			continue
		}
		for len(payload) > 0 {
			line := payload
			if i := bytes.IndexByte(payload, '\n'); i >= 0 {
				line, payload = payload[:i], payload[i+1:]
			} else {
				payload = nil
			}
			if len(line) > 0 {
				l.message(w, c, line)
			}
		}
	}
	return data
}

// message handles one server message: a reply (its latency from the req_id it echoes, or an error), or the
// protocol's ping.
func (l *loader) message(w *loadWorker, c *loadConn, payload []byte) {
	if l.proto.ping != nil && bytes.Equal(payload, l.proto.ping) {
		l.sendFrame(c, l.proto.pong)
		return
	}
	now := time.Now()
	i := bytes.Index(payload, reqIDKey)
	if i < 0 {
		w.err.Add(1)
		return
	}
	j := i + len(reqIDKey)
	k := j
	for k < len(payload) && payload[k] >= '0' && payload[k] <= '9' {
		k++
	}
	sent, _ := strconv.ParseInt(string(payload[j:k]), 10, 64)
	w.mu.Lock()
	if g := l.gen.Load(); g != w.gen {
		w.hist.Reset()
		w.gen = g
	}
	if bytes.Contains(payload, []byte(`"error":`)) {
		w.err.Add(1)
		if l.onError != nil {
			l.onError(payload, sent, l.micros(now))
		}
	} else if l.record.Load() {
		w.ok.Add(1)
		_ = w.hist.RecordValue(max(1, l.micros(now)-sent))
	}
	w.mu.Unlock()
	if l.closed && !l.stop.Load() {
		l.send(c, l.micros(time.Now()))
	}
}

// closeAll closes the connections and stops the readers.
func (l *loader) closeAll() {
	l.stop.Store(true)
	for _, c := range l.conns {
		c.mu.Lock()
		if !c.closed {
			c.closed = true
			l.poller.Del(c.fd)
			unix.Close(c.fd)
		}
		c.mu.Unlock()
	}
	l.poller.Close()
	close(l.ready)
	l.wg.Wait()
}

// loadResult is what one load run measured.
type loadResult struct {
	Connections int     `json:"connections"`
	InFlight    int     `json:"inflight_per_conn,omitempty"`
	TargetRate  float64 `json:"target_rate,omitempty"`
	Seconds     float64 `json:"seconds"`
	Replies     int64   `json:"replies"`
	Errors      int64   `json:"errors"`
	RPS         float64 `json:"rps"`
	P50us       int64   `json:"p50_us"`
	P90us       int64   `json:"p90_us"`
	P99us       int64   `json:"p99_us"`
	P999us      int64   `json:"p999_us"`
	MaxUs       int64   `json:"max_us"`
}

func (l *loader) result(d time.Duration) loadResult {
	h := hdrhistogram.New(1, 60_000_000, 3)
	var ok, errs int64
	for _, w := range l.workers {
		w.mu.Lock()
		if w.gen == l.gen.Load() { // a worker that saw no reply in this window holds only older samples
			h.Merge(w.hist)
		}
		w.mu.Unlock()
		ok += w.ok.Load()
		errs += w.err.Load()
	}
	return loadResult{Connections: len(l.conns), Seconds: d.Seconds(), Replies: ok, Errors: errs,
		RPS: float64(ok) / d.Seconds(), P50us: h.ValueAtQuantile(50), P90us: h.ValueAtQuantile(90),
		P99us: h.ValueAtQuantile(99), P999us: h.ValueAtQuantile(99.9), MaxUs: h.Max()}
}

// runClosedLoop keeps inflight requests outstanding on every connection for warmup+d and measures the last d.
func (l *loader) runClosedLoop(inflight int, warmup, d time.Duration, progress func(string)) loadResult {
	l.start = time.Now()
	for k := 0; k < inflight; k++ {
		for _, c := range l.conns {
			l.send(c, l.micros(time.Now()))
		}
	}
	time.Sleep(warmup)
	l.resetCounters()
	l.record.Store(true)
	if l.atStart != nil {
		l.atStart()
	}
	t0 := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for time.Since(t0) < d {
		<-tick.C
		if progress != nil {
			progress(fmt.Sprintf("%5.1fs  %8.0f rps", time.Since(t0).Seconds(), float64(l.replies())/time.Since(t0).Seconds()))
		}
	}
	elapsed := time.Since(t0)
	l.record.Store(false)
	if l.atEnd != nil {
		l.atEnd()
	}
	l.stop.Store(true)
	res := l.result(elapsed)
	res.InFlight = inflight
	return res
}

// runOpenLoop sends at a fixed rate (round robin over the connections) for warmup+d; latency counts from each
// request's intended send time.
func (l *loader) runOpenLoop(rate float64, warmup, d time.Duration) loadResult {
	l.start = time.Now()
	interval := time.Duration(float64(time.Second) / rate)
	total := int64(float64(warmup+d) / float64(interval))
	recordFrom := int64(float64(warmup) / float64(interval))
	var t0 time.Time
	for i := int64(0); i < total; i++ {
		intended := l.start.Add(time.Duration(i) * interval)
		if i == recordFrom {
			l.resetCounters()
			l.record.Store(true)
			t0 = time.Now()
		}
		if wait := time.Until(intended); wait > 0 {
			time.Sleep(wait)
		}
		l.send(l.conns[int(i)%len(l.conns)], l.micros(intended))
	}
	time.Sleep(min(2*time.Second, d/2)) // let the last replies arrive
	l.record.Store(false)
	res := l.result(time.Since(t0))
	res.RPS = float64(res.Replies) / d.Seconds()
	res.TargetRate = rate
	return res
}

// resetCounters starts a fresh measurement window: each worker resets its own histogram on its next reply.
func (l *loader) resetCounters() {
	l.gen.Add(1)
	for _, w := range l.workers {
		w.ok.Store(0)
		w.err.Store(0)
	}
}

func (l *loader) replies() int64 {
	var n int64
	for _, w := range l.workers {
		n += w.ok.Load()
	}
	return n
}
