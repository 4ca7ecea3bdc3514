package transport

import (
	"errors"
	"sync"

	"github.com/mailru/easygo/netpoll"
	"golang.org/x/sys/unix"
)

// poller is an epoll instance whose registrations are the connections themselves, in a slice indexed by file
// descriptor, with one handler for all of them: no callback closure and no map entry per connection, where
// easygo's netpoll.Epoll (which this replaces, keeping its event constants) keeps both. A descriptor is at most
// the process's RLIMIT_NOFILE, so the slice stays as small as the connections are many.
type poller struct {
	fd     int
	wakeFd int // an eventfd: close writes to it to end the wait loop
	on     func(c *Conn, ev netpoll.EpollEvent)
	onErr  func(error)
	done   chan struct{} // closed when the wait loop has returned

	mu     sync.RWMutex
	conns  []*Conn // by descriptor; nil where none is registered
	closed bool
}

var errPollerClosed = errors.New("transport: poller closed")

// newPoller creates an epoll instance; run must then be called (on a goroutine its caller owns) to serve it.
func newPoller(on func(c *Conn, ev netpoll.EpollEvent), onErr func(error)) (*poller, error) {
	fd, wake, err := newWakeableEpoll()
	if err != nil {
		return nil, err
	}
	return &poller{fd: fd, wakeFd: wake, on: on, onErr: onErr, done: make(chan struct{})}, nil
}

// newWakeableEpoll creates an epoll instance with an eventfd registered for reading: writing 8 bytes to wake
// makes the instance's epoll_wait return.
func newWakeableEpoll() (epfd, wake int, err error) {
	epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return -1, -1, err
	}
	wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return -1, -1, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return -1, -1, err
	}
	return epfd, wake, nil
}

// add registers c's descriptor for events.
func (p *poller) add(c *Conn, events netpoll.EpollEvent) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errPollerClosed
	}
	if c.fd >= len(p.conns) {
		grown := make([]*Conn, max(c.fd+1, 2*len(p.conns), 1024))
		copy(grown, p.conns)
		p.conns = grown
	}
	if err := unix.EpollCtl(p.fd, unix.EPOLL_CTL_ADD, c.fd, &unix.EpollEvent{Events: uint32(events), Fd: int32(c.fd)}); err != nil {
		return err
	}
	p.conns[c.fd] = c
	return nil
}

// mod changes the events of a registered descriptor.
func (p *poller) mod(fd int, events netpoll.EpollEvent) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return errPollerClosed
	}
	return unix.EpollCtl(p.fd, unix.EPOLL_CTL_MOD, fd, &unix.EpollEvent{Events: uint32(events), Fd: int32(fd)})
}

// del unregisters a descriptor.
func (p *poller) del(fd int) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errPollerClosed
	}
	if fd < len(p.conns) {
		p.conns[fd] = nil
	}
	return unix.EpollCtl(p.fd, unix.EPOLL_CTL_DEL, fd, nil)
}

// run waits for events and hands each to on, until close.
func (p *poller) run() {
	defer close(p.done)
	events := make([]unix.EpollEvent, 128)
	var ready []*Conn
	for {
		n, err := unix.EpollWait(p.fd, events, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			p.onErr(err)
			return
		}
		ready = ready[:0]
		p.mu.RLock()
		for i := 0; i < n; i++ {
			fd := int(events[i].Fd)
			if fd == p.wakeFd {
				p.mu.RUnlock()
				return
			}
			var c *Conn
			if fd < len(p.conns) {
				c = p.conns[fd]
			}
			ready = append(ready, c)
		}
		p.mu.RUnlock()
		for i, c := range ready {
			if c != nil {
				p.on(c, netpoll.EpollEvent(events[i].Events))
			}
		}
		clear(ready)
		if n == len(events) && n < 4096 {
			events = make([]unix.EpollEvent, 2*n)
		}
	}
}

// close ends the wait loop, waits for it (if run was started: started says so) and releases the descriptors.
// Registered connections are not told; they are closed by their owner. Safe to call twice.
func (p *poller) close(started bool) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.conns = nil
	_, err := unix.Write(p.wakeFd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	p.mu.Unlock()
	if started && err == nil {
		<-p.done
	}
	unix.Close(p.wakeFd)
	return errors.Join(err, unix.Close(p.fd))
}
