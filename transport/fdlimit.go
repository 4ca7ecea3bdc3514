package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fdGauge estimates the process's open file descriptors without a system call per connection: the transport
// knows its own (one per connection and one per handshake in progress), and the others (listeners, Redis,
// the admin listener, log files) are measured from /proc/self/fd when sample is called, at most once a second.
type fdGauge struct {
	reserve int64        // descriptors to keep free; negative: no check
	limit   atomic.Int64 // soft RLIMIT_NOFILE at the last sample; 0 if unknown
	others  atomic.Int64 // descriptors that are not the transport's, at the last sample
	sampled atomic.Int64 // time of the last sample, unix nanoseconds
}

// sample measures the descriptors that are not the transport's; own is the transport's count. At the limit
// /proc/self/fd cannot be opened: the last figures stay.
func (g *fdGauge) sample(own int) {
	g.sampled.Store(time.Now().UnixNano())
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return
	}
	n, err := countOpenFDs()
	if err != nil {
		return
	}
	g.limit.Store(int64(min(rl.Cur, 1<<40)))
	g.others.Store(int64(max(n-own, 0)))
}

// sampleEvery calls sample if the last one is older than d.
func (g *fdGauge) sampleEvery(d time.Duration, own int) {
	if time.Now().UnixNano()-g.sampled.Load() >= int64(d) {
		g.sample(own)
	}
}

// full reports whether one more connection (own counts its socket already; it needs one more descriptor for
// a moment, see dupFD) would leave fewer than reserve descriptors free.
func (g *fdGauge) full(own int) bool {
	limit := g.limit.Load()
	if g.reserve < 0 || limit == 0 {
		return false
	}
	return g.others.Load()+int64(own)+1 > limit-g.reserve
}

// countOpenFDs counts the entries of /proc/self/fd with getdents, without a string per descriptor (there
// may be tens of thousands), leaving out the one it uses itself.
func countOpenFDs() (int, error) {
	dir, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(dir)
	buf := make([]byte, 16<<10)
	n := 0
	for {
		m, err := unix.Getdents(dir, buf)
		if err != nil {
			return 0, err
		}
		if m <= 0 {
			break
		}
		// struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name.
		for off := 0; off+19 <= m; {
			reclen := int(binary.NativeEndian.Uint16(buf[off+16:]))
			if reclen == 0 {
				break
			}
			if name := buf[off+19]; name != '.' { // skip "." and ".."
				n++
			}
			off += reclen
		}
	}
	return n - 1, nil // minus dir
}

// errNoFD is a descriptor the system would not give.
var errNoFD = errors.New("transport: no file descriptor for the connection")

// dupFD duplicates the socket's descriptor, so that the connection can own it outside the net.Conn (see
// register). At the process's or the system's descriptor limit it fails with an error that wraps errNoFD.
func dupFD(nc net.Conn) (int, error) {
	sc, ok := socketOf(nc).(syscall.Conn)
	if !ok {
		return -1, errors.New("transport: connection has no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var dupErr error
	if err := rc.Control(func(orig uintptr) {
		fd, dupErr = unix.FcntlInt(orig, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return -1, err
	}
	if errors.Is(dupErr, unix.EMFILE) || errors.Is(dupErr, unix.ENFILE) {
		return -1, fmt.Errorf("%w: dup: %w", errNoFD, dupErr)
	}
	if dupErr != nil {
		return -1, fmt.Errorf("transport: dup: %w", dupErr)
	}
	return fd, nil
}
