package transport

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// A lingering close (Apache's lingering_close, nginx's lingering_timeout). Linux answers a socket closed with
// unread bytes in its receive queue, or bytes that arrive after the close, with RST, and an RST purges the
// socket's send queue: replies and the close frame the transport had already handed to the kernel, but that a
// slow client had not yet taken, would be lost, and the client would see ECONNRESET (1006) instead of the close
// code. A client often sends requests before it sees the close frame, so that case is routine.
//
// So a plain connection that the server closes itself, once everything up to its close frame is written, only
// shuts down its writing side (the kernel sends FIN after the queued data) and gives its descriptor to the
// server's lingerer, which reads and discards whatever still comes, and closes the descriptor at the client's
// EOF (normally right after it read the close frame), a socket error, or Config.LingerTimeout after the
// hand-off, whichever is first. The connection itself is torn down at once as before (OnClose, budget refunds,
// unregistration): from the hand-off the lingerer owns the descriptor alone, and as it is not closed until
// then, the kernel cannot give its number to a new connection meanwhile.
//
// One goroutine and one epoll instance of its own serve every lingering socket: no goroutine or timer per
// socket. The timeout is the same for all, so the hand-offs are already in deadline order and a FIFO is the
// whole timer wheel. At most Config.MaxLingering sockets linger; beyond it a socket is closed at once.

// DefaultLingerTimeout is Config.LingerTimeout's default.
const DefaultLingerTimeout = 2 * time.Second

// DefaultMaxLingering is Config.MaxLingering's default, unless a quarter of RLIMIT_NOFILE is less.
const DefaultMaxLingering = 4096

// lingerReadBudget bounds the bytes read from one lingering socket per readiness event, for fairness (its
// registration is level-triggered: what is left fires again).
const lingerReadBudget = 64 << 10

// lingerEntry is one hand-off, in the order of their deadlines.
type lingerEntry struct {
	fd       int
	seq      uint64        // the hand-off's number: the entry is stale once live[fd] says otherwise
	deadline time.Duration // since the lingerer's epoch: the monotonic clock, which no clock step moves
}

// lingerer owns the descriptors of lingering sockets. take is called by teardowns (any goroutine); run, on the
// one goroutine the server starts for it, reads them and is the only one that closes them.
type lingerer struct {
	epfd    int
	wakeFd  int // an eventfd: take and shutdown write to it to wake the loop
	timeout time.Duration
	max     int
	onErr   func(error)
	done    chan struct{} // closed when run has returned

	mu       sync.Mutex
	live     map[int]uint64 // lingering descriptors and their hand-off's seq
	queue    []lingerEntry  // hand-offs in deadline order, from head; stale entries are skipped
	head     int
	seq      uint64
	idle     bool // the loop waits with no deadline: a take must wake it
	stopping bool // shutdown has begun (or the loop failed): no more hand-offs, the loop ends once none is left
	abort    bool // shutdown's ctx is done: close everything now
	released bool // the epoll instance and the eventfd are closed

	epoch time.Time // deadlines are measured from it, on the monotonic clock

	lingering atomic.Int64  // len(live), for Stats
	timeouts  atomic.Uint64 // closed at the deadline, the client never having closed its side
	overflows atomic.Uint64 // closed at once, max sockets already lingering
}

// newLingerer creates the lingerer's epoll instance; run must then be called on a goroutine its caller owns.
func newLingerer(timeout time.Duration, max int, onErr func(error)) (*lingerer, error) {
	epfd, wake, err := newWakeableEpoll()
	if err != nil {
		return nil, err
	}
	return &lingerer{epfd: epfd, wakeFd: wake, timeout: timeout, max: max, onErr: onErr, done: make(chan struct{}), epoch: time.Now(),
		live: make(map[int]uint64)}, nil
}

// defaultMaxLingering is DefaultMaxLingering, or a quarter of the descriptor limit if that is less: lingering
// sockets hold descriptors that new connections may need (they count against FDReserve as connections do).
func defaultMaxLingering() int {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && rl.Cur/4 < DefaultMaxLingering {
		return max(int(rl.Cur/4), 1)
	}
	return DefaultMaxLingering
}

// take shuts down the writing side of fd, a connected socket whose last frame was written, and takes it
// over; it reports false, having taken nothing, when fd must be closed at once by the caller: max sockets
// linger already, the lingerer is stopping, or the socket cannot be shut down (the client reset it).
func (l *lingerer) take(fd int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopping {
		return false
	}
	if len(l.live) >= l.max {
		l.overflows.Add(1)
		return false
	}
	if unix.Shutdown(fd, unix.SHUT_WR) != nil {
		return false
	}
	// Level-triggered: a socket with unread bytes left after a read budget fires again.
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
	if unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &ev) != nil {
		return false
	}
	l.seq++
	l.live[fd] = l.seq
	l.queue = append(l.queue, lingerEntry{fd: fd, seq: l.seq, deadline: time.Since(l.epoch) + l.timeout})
	l.lingering.Store(int64(len(l.live)))
	if l.idle { // a later deadline than any pending needs no wake-up; the first one does
		l.idle = false
		l.wakeLocked()
	}
	return true
}

// wakeLocked makes the loop's epoll_wait return (l.mu held, so that it cannot race with release).
func (l *lingerer) wakeLocked() {
	if !l.released {
		_, _ = unix.Write(l.wakeFd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}

// run serves the lingering sockets until shutdown: it discards what they receive, closes each at its EOF,
// error or deadline, and at the end closes whatever is left.
func (l *lingerer) run() {
	defer close(l.done)
	events := make([]unix.EpollEvent, 128)
	buf := make([]byte, 16<<10)
	for {
		wait, stop := l.sweep(time.Now())
		if stop {
			l.closeAll()
			return
		}
		n, err := unix.EpollWait(l.epfd, events, wait)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			l.onErr(err)
			l.closeAll()
			return
		}
		for i := 0; i < n; i++ {
			fd := int(events[i].Fd)
			if fd == l.wakeFd {
				var b [8]byte
				_, _ = unix.Read(l.wakeFd, b[:])
				continue
			}
			if discard(fd, buf) {
				l.close(fd)
			}
		}
	}
}

// discard reads what fd holds, up to lingerReadBudget bytes, and throws it away; it reports whether the
// socket is done with: the client closed its side (EOF) or the socket failed (a reset).
func discard(fd int, buf []byte) bool {
	for read := 0; read < lingerReadBudget; {
		n, err := unix.Read(fd, buf)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return false
		case err != nil || n <= 0:
			return true
		}
		read += n
	}
	return false
}

// close closes a lingering descriptor (the loop only): it leaves live first, so that once the kernel reuses
// its number a new hand-off of that number is not mistaken for this one.
func (l *lingerer) close(fd int) {
	l.mu.Lock()
	if _, ok := l.live[fd]; ok {
		delete(l.live, fd)
		l.lingering.Store(int64(len(l.live)))
		_ = unix.Close(fd)
	}
	l.mu.Unlock()
}

// sweep closes the sockets whose deadline has passed and returns epoll_wait's timeout until the next deadline
// (-1: none), or stop once the loop must end.
func (l *lingerer) sweep(now time.Time) (wait int, stop bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.abort || (l.stopping && len(l.live) == 0) {
		return 0, true
	}
	t := now.Sub(l.epoch)
	for l.head < len(l.queue) {
		e := l.queue[l.head]
		if seq, ok := l.live[e.fd]; ok && seq == e.seq {
			if e.deadline > t {
				break
			}
			delete(l.live, e.fd)
			_ = unix.Close(e.fd)
			l.timeouts.Add(1)
		}
		l.head++
	}
	l.lingering.Store(int64(len(l.live)))
	if l.head == len(l.queue) {
		l.queue, l.head = l.queue[:0], 0
		if l.stopping {
			return 0, true
		}
		l.idle = true
		return -1, false
	}
	if l.head >= 1024 && 2*l.head >= len(l.queue) { // let the array's front go, at most once per its length
		n := copy(l.queue, l.queue[l.head:])
		clear(l.queue[n:])
		l.queue, l.head = l.queue[:n], 0
	}
	ms := (l.queue[l.head].deadline - t + time.Millisecond - 1) / time.Millisecond // rounded up
	return int(min(ms, 1<<30)), false
}

// closeAll closes every lingering socket and refuses further hand-offs (the loop, as it ends).
func (l *lingerer) closeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.stopping = true
	for fd := range l.live {
		_ = unix.Close(fd)
	}
	clear(l.live)
	l.queue, l.head = nil, 0
	l.lingering.Store(0)
}

// shutdown refuses new hand-offs and lets the lingering sockets finish (each within its deadline, so at most
// LingerTimeout from now); once ctx is done it closes what is left at once. Then it stops the loop and releases
// the epoll instance. run must have been started. Safe to call twice.
func (l *lingerer) shutdown(ctx context.Context) error {
	l.mu.Lock()
	l.stopping = true
	l.wakeLocked()
	l.mu.Unlock()
	select {
	case <-l.done:
	case <-ctx.Done():
		// Not an error of Shutdown: everything was written. A client that sends more from now on may get a
		// reset instead of the rest of its replies, as without lingering.
		l.mu.Lock()
		l.abort = true
		l.wakeLocked()
		l.mu.Unlock()
		<-l.done
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.released {
		return nil
	}
	l.released = true
	return errors.Join(unix.Close(l.wakeFd), unix.Close(l.epfd))
}
