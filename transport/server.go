package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/mailru/easygo/netpoll"
	"golang.org/x/sys/unix"
)

var errWriteTimeout = errors.New("transport: client did not read for WriteTimeout")

// Handler receives the events of every connection. Calls for one connection never overlap; they must not block.
type Handler interface {
	// OnOpen is called once the connection is upgraded, before any OnMessage.
	OnOpen(c *Conn)
	// OnMessage is called for each complete message; msg.Data is valid only during the call.
	OnMessage(c *Conn, msg Message)
	// OnClose is called once when the connection is gone; err is nil for an orderly close.
	OnClose(c *Conn, err error)
}

// DefaultBufferBudget is Config.BufferBudget's default: 512 MiB, about 26 KiB a connection at 20,000.
const DefaultBufferBudget = 512 << 20

// DefaultPath is the WebSocket path when Config.Path is empty.
const DefaultPath = "/ws"

// Config configures a Server. Each field's zero value means the default named in its comment.
type Config struct {
	// Path is the WebSocket path; "" means DefaultPath. Other paths get 404.
	Path string
	// MaxFrameSize bounds one frame's payload; 0 means 256 KiB. Bigger: close 1009.
	MaxFrameSize int
	// MaxMessageSize bounds a reassembled message; 0 means 256 KiB (Mojolicious' max_websocket_size, which
	// the Perl proxy ran with). Bigger: close 1009.
	MaxMessageSize int
	// WriteQueueBytes bounds the bytes queued for one client; 0 means 1 MiB (three replies of the gateway's
	// largest, 320 KB). Over it: close 1008.
	WriteQueueBytes int
	// BufferBudget bounds the bytes that all connections together hold in read buffers (unfinished frames
	// and messages) and write queues; 0 means 512 MiB. The per-connection limits alone allow 20,000 × 1.25 MiB
	// = 25 GiB; 512 MiB is 26 KiB per connection at 20,000, far above what a well-behaved one holds (an idle
	// connection holds nothing), so only outliers are cut. Over it, the connections that hold the most are
	// closed until the total is back under it: 1009 if most of what one holds is an unfinished message, 1013
	// (try again later) if it is unread replies.
	BufferBudget int
	// MessageTimeout bounds the time from the first byte of a frame or fragmented message to its last; 0 means
	// 30 s (a 256 KiB message at under 10 KiB/s). Past it: close 1008. Checked on the keepalive tick, so it
	// fires up to a quarter of min(IdleTimeout, WriteTimeout) late.
	MessageTimeout time.Duration
	// WriteTimeout closes a connection whose socket has refused writes for this long; 0 means 10 s.
	WriteTimeout time.Duration
	// HandshakeTimeout bounds the upgrade, from accept to the 101; 0 means 5 s. The socket of a client that has
	// not sent its whole request by then is closed, which frees its handshake slots.
	HandshakeTimeout time.Duration
	// MaxHandshakes bounds upgrades in progress at once; 0 means 1024. Beyond it a new socket is closed at once.
	// A slot is held from accept to the 101, normally half a round trip, so 1,024 slots serve thousands of
	// upgrades a second; each costs a goroutine and a descriptor until then.
	MaxHandshakes int
	// MaxHandshakesPerIP bounds the upgrades in progress from one client address (IPv6: one /64); 0 means 64.
	// Beyond it a new socket from that address is closed at once, without taking one of MaxHandshakes, so a
	// few addresses that open sockets and send their request slowly cannot lock everyone else out.
	MaxHandshakesPerIP int
	// FDReserve is the number of file descriptors kept free for everything but WebSocket connections (the admin
	// listener, Redis, log files): an upgrade gets 503 while the process's open descriptors are within
	// FDReserve of its RLIMIT_NOFILE; 0 means 256, negative turns the check off. Whatever the reserve, an
	// upgrade for which no descriptor can be had gets 503, never a 101 and a dead socket.
	FDReserve int
	// MaxConnections bounds open connections; 0 means no limit. Beyond it the upgrade gets 503.
	MaxConnections int
	// MaxConnectionsPerIP bounds open connections from one client address; 0 means no limit. Beyond it the
	// upgrade gets 503.
	MaxConnectionsPerIP int
	// IdleTimeout closes a connection that sent nothing for this long (stream_timeout); 0 means 120 s.
	// A keepalive ping is sent after half of it.
	IdleTimeout time.Duration
	// ReadWorkers is the size of the pool that reads readable sockets; 0 means 4×GOMAXPROCS.
	ReadWorkers int
	// ReadBudget bounds the bytes read from one socket per readiness event, for fairness; 0 means 256 KiB.
	ReadBudget int
	// Compression enables permessage-deflate for clients that offer it (the Perl proxy had it on by default).
	// Messages are compressed one by one (no context takeover), so it costs CPU per message, no memory per
	// connection.
	Compression bool
	// CompressMinSize is the smallest outgoing message that is compressed; 0 means 512 bytes.
	CompressMinSize int
	// PassInvalidUTF8 hands text messages that are not valid UTF-8 to the handler (marked InvalidUTF8) instead
	// of closing the connection with 1007 as RFC 6455 says; the gateway uses it to answer BadRequest.
	PassInvalidUTF8 bool
	// AllowedOrigins, if not empty, is the list of Origin header values accepted; others get 403.
	AllowedOrigins []string
	// LingerTimeout bounds a lingering close: a plain connection that the server closes itself (close frame,
	// slow consumer, budget, timeouts, protocol errors, Shutdown's 1001) shuts down its writing side once
	// everything up to its close frame is written, then reads and discards what the client still sends until
	// the client closes its side, at most this long, and only then closes the socket. Closing at once would make
	// the kernel answer a late request with RST, which purges the replies and the close frame not yet delivered
	// (the client sees ECONNRESET, 1006). 0 means DefaultLingerTimeout (2 s); negative turns lingering off.
	// The connection is gone for the handler (OnClose) at once either way. Not for TLS connections.
	LingerTimeout time.Duration
	// MaxLingering bounds the sockets lingering at once (each holds a descriptor); 0 means DefaultMaxLingering
	// (4,096) or a quarter of RLIMIT_NOFILE if that is less. Beyond it a socket is closed at once.
	MaxLingering int
	// TLS, if set, makes the listener wss://: each connection's TLS handshake (within HandshakeTimeout) comes
	// before the upgrade, and a plain HTTP request gets 400. nil means plain ws://. A TLS connection costs a
	// goroutine and crypto/tls's buffers besides what a plain one costs (see tls.go); CertReloader.TLSConfig
	// gives one whose certificate can be reloaded.
	TLS *tls.Config
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if c.Path == "" {
		c.Path = DefaultPath
	}
	def(&c.MaxFrameSize, 256<<10)
	def(&c.MaxMessageSize, 256<<10)
	def(&c.WriteQueueBytes, 1<<20)
	def(&c.BufferBudget, DefaultBufferBudget)
	defDur(&c.MessageTimeout, 30*time.Second)
	def(&c.MaxHandshakes, 1024)
	def(&c.MaxHandshakesPerIP, 64)
	def(&c.FDReserve, 256)
	def(&c.ReadWorkers, 4*runtime.GOMAXPROCS(0))
	def(&c.ReadBudget, 256<<10)
	def(&c.CompressMinSize, 512)
	defDur(&c.WriteTimeout, 10*time.Second)
	defDur(&c.HandshakeTimeout, 5*time.Second)
	defDur(&c.IdleTimeout, 120*time.Second)
	defDur(&c.LingerTimeout, DefaultLingerTimeout)
	if c.MaxLingering == 0 {
		c.MaxLingering = defaultMaxLingering()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports a configuration error.
func (c *Config) Validate() error {
	for name, v := range map[string]int{"MaxFrameSize": c.MaxFrameSize, "MaxMessageSize": c.MaxMessageSize,
		"WriteQueueBytes": c.WriteQueueBytes, "MaxHandshakes": c.MaxHandshakes,
		"MaxHandshakesPerIP": c.MaxHandshakesPerIP, "MaxConnections": c.MaxConnections,
		"MaxConnectionsPerIP": c.MaxConnectionsPerIP, "CompressMinSize": c.CompressMinSize,
		"ReadWorkers": c.ReadWorkers, "ReadBudget": c.ReadBudget, "BufferBudget": c.BufferBudget,
		"MaxLingering": c.MaxLingering} {
		if v < 0 {
			return fmt.Errorf("transport: %s must not be negative", name)
		}
	}
	if c.WriteTimeout < 0 || c.HandshakeTimeout < 0 || c.IdleTimeout < 0 || c.MessageTimeout < 0 {
		return errors.New("transport: timeouts must not be negative")
	}
	if c.Path != "" && c.Path[0] != '/' {
		return fmt.Errorf("transport: Path %q must start with /", c.Path)
	}
	return nil
}

// Stats are counters of a Server.
type Stats struct {
	Connections    int64
	Accepted       uint64
	Rejected       uint64 // failed or refused upgrades
	NoFDs          uint64 // upgrades refused with 503 for want of file descriptors (also counted in Rejected)
	SlowConsumers  uint64 // closed because their write queue was full
	WriteTimeouts  uint64
	ProtocolErrors uint64
	ReadPauses     uint64 // times a handler paused reading from a connection (backpressure)
	// Buffered is the bytes held now in read buffers and write queues, against Config.BufferBudget.
	Buffered        int64
	BudgetEvictions uint64 // connections closed to bring Buffered under the budget
	MessageTimeouts uint64 // connections closed for not finishing a frame or message within MessageTimeout
	// TLSHandshakeErrors counts failed TLS handshakes (also counted in Rejected): plain HTTP on the TLS port,
	// untrusted or missing client certificates, scanners.
	TLSHandshakeErrors uint64
	// Lingering is the sockets closed by the server that wait now for their client to close its side (see
	// Config.LingerTimeout); they are no longer in Connections.
	Lingering int64
	// LingerTimeouts counts lingering sockets closed at LingerTimeout, their client not having closed its side.
	LingerTimeouts uint64
	// LingerOverflows counts sockets closed at once, without lingering, because MaxLingering were lingering.
	LingerOverflows uint64
}

type stats struct {
	accepted, rejected, slowConsumers, writeTimeouts, protocolErrors, pauses atomic.Uint64
	budgetEvictions, messageTimeouts, tlsHandshakeErrors                     atomic.Uint64
}

// readEvents is the epoll interest of an idle connection: readable, one-shot, level-triggered.
const readEvents = netpoll.EPOLLIN | netpoll.EPOLLRDHUP | netpoll.EPOLLONESHOT

// hangupEvents is the interest of a paused connection: only the peer's hang-up (EPOLLHUP and EPOLLERR are
// always reported).
const hangupEvents = netpoll.EPOLLRDHUP | netpoll.EPOLLONESHOT

// writeEvents is the interest of a backed-up connection on the write poller: writable, one-shot.
const writeEvents = netpoll.EPOLLOUT | netpoll.EPOLLONESHOT

// Server accepts WebSocket connections and serves them with epoll and a bounded read pool.
type Server struct {
	cfg      Config
	handler  Handler
	log      *slog.Logger
	poller   *poller   // read readiness of every connection (and hang-up of paused TLS ones)
	wpoller  *poller   // write readiness of backed-up connections only
	linger   *lingerer // lingering closes; nil when LingerTimeout is negative (or before run)
	ready    chan *Conn
	writable chan *Conn
	hsSlots  chan struct{}
	stats    stats

	buffered  atomic.Int64 // bytes held in read buffers and write queues (see budget.go)
	enforceMu sync.Mutex   // one budget enforcement at a time
	lastID    atomic.Uint64

	mu sync.Mutex
	// conns are the open connections by file descriptor, nil where there is none: 8 bytes a connection
	// where a map[*Conn]struct{} costs about 30, and a descriptor is at most RLIMIT_NOFILE, so the slice is
	// as long as the connections are many (at their peak). A connection leaves its slot in forget, after its
	// teardown closed the descriptor, and the kernel may give the number to a new connection first: register
	// then overwrites the slot, whose connection is torn down (its charges refunded, its queue gone), and
	// forget clears a slot only if it is still its own. nconns counts the connections registered and not
	// yet forgotten, wherever they sit.
	conns     []*Conn
	nconns    int
	perIP     map[netip.Addr]int
	listeners map[net.Listener]struct{}
	closing   bool
	running   bool                      // run has started the epoll loops, the read pool and the keepalive
	started   map[net.Listener]struct{} // listeners given to Start, so that a second Start does nothing
	drained   chan struct{}             // closed once closing and no connection is left
	isDrained bool

	wg       sync.WaitGroup // every goroutine the server starts
	workers  sync.WaitGroup // the read pool
	stop     chan struct{}
	stopOnce sync.Once

	hsMu   sync.Mutex
	hsByIP map[netip.Addr]int // handshakes in progress per client address (handshakeKey)

	fds      fdGauge
	noFDs    atomic.Uint64 // Stats.NoFDs
	fdWarned atomic.Int64  // when "out of file descriptors" was last logged, unix nanoseconds
	// evictWarned is when a buffer-budget eviction was last logged, unix nanoseconds.
	evictWarned atomic.Int64
}

// NewServer checks cfg and returns a server; nothing runs until Start (or Serve, which blocks) accepts
// connections on a listener and starts the epoll loops and the read pool. Shutdown stops everything.
func NewServer(cfg Config, h Handler) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("transport: a Handler is required")
	}
	cfg.setDefaults()
	s := &Server{
		cfg: cfg, handler: h, log: cfg.Logger.With("component", "transport"),
		ready:     make(chan *Conn, 4096),
		writable:  make(chan *Conn, 1024),
		hsSlots:   make(chan struct{}, cfg.MaxHandshakes),
		perIP:     make(map[netip.Addr]int),
		listeners: make(map[net.Listener]struct{}),
		stop:      make(chan struct{}),
		drained:   make(chan struct{}),
	}
	s.hsByIP = make(map[netip.Addr]int)
	s.fds.reserve = int64(max(cfg.FDReserve, -1))
	s.fds.sample(0)
	return s, nil
}

// run starts the epoll loops, the read pool and the keepalive, the first time Start or Serve is called.
func (s *Server) run() error {
	s.mu.Lock() // against Shutdown: once it has begun, nothing starts
	defer s.mu.Unlock()
	if s.closing {
		return ErrServerClosed
	}
	if s.running {
		return nil
	}
	onErr := func(err error) { s.log.Error("epoll wait failed", "err", err) }
	rp, err := newPoller(s.onReadEvent, onErr)
	if err != nil {
		return fmt.Errorf("transport: epoll: %w", err)
	}
	wp, err := newPoller(func(c *Conn, _ netpoll.EpollEvent) { s.writable <- c }, onErr)
	if err != nil {
		rp.close(false)
		return fmt.Errorf("transport: epoll: %w", err)
	}
	if s.cfg.LingerTimeout > 0 {
		l, err := newLingerer(s.cfg.LingerTimeout, s.cfg.MaxLingering, func(err error) {
			s.log.Error("lingering close: epoll wait failed", "err", err)
		})
		if err != nil {
			rp.close(false)
			wp.close(false)
			return fmt.Errorf("transport: epoll: %w", err)
		}
		s.linger = l
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			l.run()
		}()
	}
	s.poller, s.wpoller, s.running = rp, wp, true
	for _, p := range []*poller{rp, wp} {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			p.run()
		}()
	}
	for i := 0; i < s.cfg.ReadWorkers; i++ {
		s.workers.Add(1)
		go s.readWorker()
	}
	s.wg.Add(1)
	go s.keepalive()
	return nil
}

// Stats returns the server's counters.
func (s *Server) Stats() Stats {
	st := Stats{Connections: int64(s.Len()), Accepted: s.stats.accepted.Load(), Rejected: s.stats.rejected.Load(),
		NoFDs:         s.noFDs.Load(),
		SlowConsumers: s.stats.slowConsumers.Load(), WriteTimeouts: s.stats.writeTimeouts.Load(),
		ProtocolErrors: s.stats.protocolErrors.Load(), ReadPauses: s.stats.pauses.Load(),
		Buffered: s.buffered.Load(), BudgetEvictions: s.stats.budgetEvictions.Load(),
		MessageTimeouts: s.stats.messageTimeouts.Load(), TLSHandshakeErrors: s.stats.tlsHandshakeErrors.Load()}
	if l := s.lingerer(); l != nil {
		st.Lingering, st.LingerTimeouts, st.LingerOverflows = l.lingering.Load(), l.timeouts.Load(), l.overflows.Load()
	}
	return st
}

// lingerer is the server's lingerer once run has made it, or nil.
func (s *Server) lingerer() *lingerer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.linger
}

// lingering is the number of sockets lingering now.
func (s *Server) lingering() int64 {
	if l := s.lingerer(); l != nil {
		return l.lingering.Load()
	}
	return 0
}

// lingerFD hands a plain connection's descriptor over to the lingerer (teardown, under the connection's mu);
// false means the caller must close it at once, as it does when lingering is off.
func (s *Server) lingerFD(fd int) bool {
	return s.linger != nil && s.linger.take(fd) // set by run before any connection exists
}

// Len is the number of open connections.
func (s *Server) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nconns
}

// Conns appends every open connection whose OnOpen has returned to buf and returns it: a snapshot, for sweeps
// over the connections (what the caller then does with one runs concurrently with its Handler callbacks; its
// Value is safe to read).
func (s *Server) Conns(buf []*Conn) []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		if c != nil && c.opened {
			buf = append(buf, c)
		}
	}
	return buf
}

// connsLocked appends every registered connection, opened or not, to buf (s.mu held).
func (s *Server) connsLocked(buf []*Conn) []*Conn {
	for _, c := range s.conns {
		if c != nil {
			buf = append(buf, c)
		}
	}
	return buf
}

// Serve accepts connections on ln until StopAccepting or Shutdown; it then returns nil. It fails only when the
// server's epoll loops cannot start.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.run(); errors.Is(err, ErrServerClosed) {
		return nil
	} else if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	s.fds.sample(s.ownFDs()) // count the listener (and the runtime's poller, made with the first one)
	backoff := 5 * time.Millisecond
	for {
		nc, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			_, open := s.listeners[ln]
			s.mu.Unlock()
			if closing || !open {
				return nil
			}
			// Out of file descriptors and the like: wait and go on rather than spin or die.
			s.log.Warn("accept failed", "err", err)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		var ip netip.Addr
		if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
			ip = a.AddrPort().Addr()
		}
		key := handshakeKey(ip)
		if !s.startHandshake(key) {
			s.stats.rejected.Add(1)
			nc.Close()
			continue
		}
		s.wg.Add(1)
		go s.handshake(nc, ip, key)
	}
}

// handshakeKey is the address that MaxHandshakesPerIP counts: the IP itself, or for IPv6 its /64, since one
// host usually has a whole /64 to pick source addresses from.
func handshakeKey(ip netip.Addr) netip.Addr {
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip
}

// startHandshake takes a handshake slot for key, first its address's, then a global one; it reports false,
// taking nothing, when either bound is reached. A socket with no IP address (a Unix socket) has only the
// global bound.
func (s *Server) startHandshake(key netip.Addr) bool {
	s.hsMu.Lock()
	defer s.hsMu.Unlock()
	if key.IsValid() && s.hsByIP[key] >= s.cfg.MaxHandshakesPerIP {
		return false
	}
	select {
	case s.hsSlots <- struct{}{}:
	default:
		return false
	}
	s.hsByIP[key]++
	return true
}

// endHandshake gives back what startHandshake took.
func (s *Server) endHandshake(key netip.Addr) {
	s.hsMu.Lock()
	if s.hsByIP[key]--; s.hsByIP[key] <= 0 {
		delete(s.hsByIP, key)
	}
	s.hsMu.Unlock()
	<-s.hsSlots
}

// handshake upgrades one socket (with a deadline, so a slow client cannot hold the slot) and registers it.
func (s *Server) handshake(nc net.Conn, ip, key netip.Addr) {
	defer s.wg.Done()
	// The slot guards the reading of the upgrade request (what a slow client can drag out); it is given back
	// as soon as the request is read, before the 101 is written: a client that got its 101 and dials again
	// must not find its address's slots still held by the work that follows.
	release := sync.OnceFunc(func() { s.endHandshake(key) })
	defer release()
	nc = s.wrapTLS(nc)
	_ = nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	if err := s.handshakeTLS(nc); err != nil {
		s.stats.rejected.Add(1)
		nc.Close()
		return
	}
	fd := -1 // the connection's own descriptor, taken before the 101 (takeFD)
	u := ws.Upgrader{
		OnRequest: func(uri []byte) error {
			path := uri
			for i, b := range uri {
				if b == '?' {
					path = uri[:i]
					break
				}
			}
			if string(path) != s.cfg.Path {
				return ws.RejectConnectionError(ws.RejectionStatus(404), ws.RejectionReason("unknown path"))
			}
			if s.cfg.MaxConnections > 0 && s.Len() >= s.cfg.MaxConnections {
				return ws.RejectConnectionError(ws.RejectionStatus(503), ws.RejectionReason("too many connections"))
			}
			if s.cfg.MaxConnectionsPerIP > 0 && s.connsFrom(ip) >= s.cfg.MaxConnectionsPerIP {
				return ws.RejectConnectionError(ws.RejectionStatus(503),
					ws.RejectionReason("too many connections from this address"))
			}
			return nil
		},
		OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
			release() // the request is read in full
			var err error
			fd, err = s.takeFD(nc)
			return nil, err
		},
		OnHeader: func(key, value []byte) error {
			if len(s.cfg.AllowedOrigins) == 0 || !asciiEqualFold(key, "Origin") {
				return nil
			}
			for _, o := range s.cfg.AllowedOrigins {
				if string(value) == o {
					return nil
				}
			}
			return ws.RejectConnectionError(ws.RejectionStatus(403), ws.RejectionReason("origin not allowed"))
		},
	}
	var ext deflateNegotiator
	if s.cfg.Compression {
		u.Negotiate = ext.Negotiate
	}
	if _, err := u.Upgrade(nc); err != nil {
		s.stats.rejected.Add(1)
		nc.Close()
		if fd >= 0 {
			unix.Close(fd)
		}
		return
	}
	_ = nc.SetDeadline(time.Time{})
	if err := s.register(nc, fd, ext.accepted); err != nil {
		s.stats.rejected.Add(1)
		s.log.Warn("register connection failed", "err", err)
		nc.Close()
	}
}

// takeFD gets the descriptor the connection will own (dupFD) before the upgrade is answered, so that a
// connection that cannot have one gets 503 rather than a 101 and a dead socket; it refuses as well when that
// would eat into the FDReserve.
func (s *Server) takeFD(nc net.Conn) (int, error) {
	var err error
	fd := -1
	own := s.ownFDs()
	s.fds.sampleEvery(time.Second, own)
	if s.fds.full(own) {
		err = errNoFD
	} else if fd, err = dupFD(nc); err == nil {
		return fd, nil
	}
	if !errors.Is(err, errNoFD) {
		s.log.Warn("cannot take the connection's descriptor", "err", err)
		return -1, ws.RejectConnectionError(ws.RejectionStatus(500), ws.RejectionReason("internal error"))
	}
	s.noFDs.Add(1)
	if now, last := time.Now().UnixNano(), s.fdWarned.Load(); now-last >= int64(10*time.Second) &&
		s.fdWarned.CompareAndSwap(last, now) {
		s.log.Warn("out of file descriptors: refusing new connections with 503", "err", err,
			"open_estimate", s.fds.others.Load()+int64(s.ownFDs()), "limit", s.fds.limit.Load(),
			"reserve", s.fds.reserve, "refused", s.noFDs.Load())
	}
	return -1, ws.RejectConnectionError(ws.RejectionStatus(503), ws.RejectionReason("out of file descriptors"))
}

// ownFDs is the transport's count of its descriptors: one per connection, per handshake in progress and per
// lingering socket.
func (s *Server) ownFDs() int { return s.Len() + len(s.hsSlots) + int(s.lingering()) }

func (s *Server) connsFrom(ip netip.Addr) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.perIP[ip]
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i]|0x20, s[i]|0x20
		if x != y {
			return false
		}
	}
	return true
}

// register takes the socket out of the net.Conn and hands it to epoll: fd is the socket's duplicate (dupFD),
// and the net.Conn is closed, which leaves one descriptor per connection (easygo's netpoll.Handle would keep
// both) and none of the Go runtime's per-connection structures.
func (s *Server) register(nc net.Conn, fd int, deflate bool) error {
	c := &Conn{srv: s, fd: fd, deflate: deflate}
	if a, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		ap := a.AddrPort()
		c.addr, c.port = ap.Addr(), ap.Port()
	}
	if tc, ok := nc.(*tls.Conn); ok {
		if err := c.adoptTLS(tc, fd); err != nil { // the net.Conn stays: its goroutine reads the records
			return err
		}
	} else {
		nc.Close() // the duplicate keeps the socket open
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			return fmt.Errorf("transport: set non-blocking: %w", err)
		}
	}
	c.lastRead.Store(unixSeconds())
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		if c.tls == nil {
			unix.Close(fd)
		} // a TLS connection's socket is closed by the caller, with its net.Conn
		return errors.New("transport: shutting down")
	}
	s.addLocked(c)
	s.mu.Unlock()
	s.stats.accepted.Add(1)
	s.handler.OnOpen(c)
	s.mu.Lock() // Conns hands out only opened connections, and its lock orders their SetValue before it
	c.opened = true
	s.mu.Unlock()
	// Hold mu so that a teardown racing with registration cannot close the fd before it is added.
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.state == stateClosed {
		return nil
	}
	if c.tls != nil {
		s.wg.Add(1) // the handshake goroutine holds s.wg, so this cannot race with Shutdown's Wait
		go c.readTLS()
		return nil
	}
	c.armed = true
	if err := s.poller.add(c, readEvents); err != nil {
		c.mu.Unlock()
		c.teardown(err)
		c.mu.Lock()
	}
	return nil
}

// onReadEvent handles the read poller's event for c: a plain connection goes to the read pool (at most one
// worker at a time: fired), a paused TLS connection's reader goroutine learns of the hang-up.
func (s *Server) onReadEvent(c *Conn, ev netpoll.EpollEvent) {
	if c.tls != nil {
		select {
		case c.tls.hup <- struct{}{}:
		default:
		}
		return
	}
	if c.fired(ev) {
		s.ready <- c
	}
}

// addLocked registers c (s.mu held): it gets its ID and its descriptor's slot in s.conns.
func (s *Server) addLocked(c *Conn) {
	c.id = s.lastID.Add(1)
	if n := c.fd + 1; n > len(s.conns) {
		s.conns = slices.Grow(s.conns, n-len(s.conns))[:n] // the new slots are nil
	}
	s.conns[c.fd] = c // a slot still taken is a torn-down connection's, which forget has not reached yet
	s.nconns++
	s.perIP[c.addr]++
}

// forget unregisters c once its teardown has closed its descriptor.
func (s *Server) forget(c *Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.id == 0 {
		return // never registered
	}
	if c.fd < len(s.conns) && s.conns[c.fd] == c { // else a new connection has its descriptor's slot
		s.conns[c.fd] = nil
	}
	s.nconns--
	ip := c.addr
	if s.perIP[ip]--; s.perIP[ip] <= 0 {
		delete(s.perIP, ip)
	}
	s.noteDrainedLocked()
}

// readWorker serves readable and writable connections; the pool is bounded, and no call here blocks.
func (s *Server) readWorker() {
	defer s.workers.Done()
	buf := make([]byte, 32<<10)
	ready, writable := s.ready, s.writable
	for ready != nil || writable != nil {
		select {
		case c, ok := <-ready:
			if !ok {
				ready = nil
				continue
			}
			c.onReadable(buf)
		case c, ok := <-writable:
			if !ok {
				writable = nil
				continue
			}
			c.onWritable()
		}
	}
}

// keepalive pings connections that have been quiet for half the idle timeout and closes those quiet for all
// of it, and those that did not finish a message within MessageTimeout.
func (s *Server) keepalive() {
	defer s.wg.Done()
	every := max(min(s.cfg.IdleTimeout, s.cfg.WriteTimeout)/4, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	idle := max(int64(s.cfg.IdleTimeout/time.Second), 1)
	writeTimeout := max(int64(s.cfg.WriteTimeout/time.Second), 1)
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		now := time.Now().Unix()
		// A snapshot of exactly the connections of now, dropped after the sweep: kept between sweeps it would
		// hold 8 bytes per connection of the peak for good (one allocation every few seconds is cheaper).
		s.mu.Lock()
		batch := s.connsLocked(make([]*Conn, 0, s.nconns))
		s.mu.Unlock()
		for _, c := range batch {
			if s.checkMessageDeadline(c, now) {
				continue
			}
			quiet := now - int64(c.lastRead.Load())
			if b := int64(c.blocked.Load()); b != 0 && now-b >= writeTimeout {
				s.stats.writeTimeouts.Add(1)
				c.teardown(errWriteTimeout)
				continue
			}
			switch {
			case quiet >= idle:
				_ = c.Close(CloseGoingAway, "idle timeout")
			case quiet*2 >= idle && c.pinged.CompareAndSwap(false, true):
				_ = c.sendControl(opPing, nil)
			}
		}
	}
}

// noteDrainedLocked closes s.drained when the server is closing and has no connection left (s.mu held).
func (s *Server) noteDrainedLocked() {
	if s.closing && s.nconns == 0 && !s.isDrained {
		s.isDrained = true
		close(s.drained)
	}
}

// ErrServerClosed is Start's error once Shutdown has begun.
var ErrServerClosed = errors.New("transport: server is shut down")

// Start starts the server's loops and accepts connections on ln on a goroutine the server owns (Serve),
// until StopAccepting or Shutdown; it returns at once. Starting the same listener twice does nothing; after
// Shutdown it fails.
func (s *Server) Start(_ context.Context, ln net.Listener) error {
	if err := s.run(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return ErrServerClosed
	}
	if _, ok := s.started[ln]; ok {
		return nil
	}
	if s.started == nil {
		s.started = map[net.Listener]struct{}{}
	}
	s.started[ln] = struct{}{}
	s.wg.Add(1) // under mu, before Shutdown (which sets closing under mu) can wait for wg
	go func() {
		defer s.wg.Done()
		if err := s.Serve(ln); err != nil {
			s.log.Error("websocket listener failed", "err", err)
		}
	}()
	return nil
}

// StopAccepting closes the listeners; open connections go on.
func (s *Server) StopAccepting() {
	s.mu.Lock()
	lns := s.listeners
	s.listeners = map[net.Listener]struct{}{}
	s.mu.Unlock()
	for ln := range lns {
		ln.Close()
	}
}

// Shutdown stops accepting, closes every connection with 1001 (going away), waits until their queues are
// written or ctx ends (then closes what is left at once), waits for the lingering sockets to be closed by their
// clients, at most LingerTimeout more and within ctx (then closes them), and stops the server's goroutines.
// Safe to call twice.
func (s *Server) Shutdown(ctx context.Context) error {
	s.StopAccepting()
	s.mu.Lock()
	s.closing = true
	s.noteDrainedLocked()
	conns := s.connsLocked(make([]*Conn, 0, s.nconns))
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close(CloseGoingAway, "server shutting down")
	}
	var err error
	select {
	case <-s.drained:
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.mu.Lock()
	conns = s.connsLocked(conns)
	s.mu.Unlock()
	for _, c := range conns {
		c.teardown(errors.New("transport: shutdown"))
	}
	// The lingering sockets, the last of them handed over just now, get up to LingerTimeout more (within ctx)
	// to be closed by their clients.
	if l := s.lingerer(); l != nil {
		if lerr := l.shutdown(ctx); lerr != nil {
			s.log.Warn("lingering close: release", "err", lerr)
		}
	}
	s.stopOnce.Do(func() {
		close(s.stop)
		if s.running { // closing is set: run cannot start them now
			_ = s.poller.close(true)
			_ = s.wpoller.close(true)
		}
		s.wg.Wait() // handshakes and keepalive end before the pool's channels close
		close(s.ready)
		close(s.writable)
	})
	s.workers.Wait()
	return err
}
