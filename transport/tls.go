package transport

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// TLS (wss://) connections.
//
// crypto/tls wants a net.Conn to read records from and buffers on its own, so the epoll read path (raw,
// non-blocking reads of the descriptor, fed to the frame parser) cannot read TLS. A TLS connection therefore
// keeps its net.Conn and gets one goroutine that blocks in tls.Conn.Read (in the Go runtime's poller) and feeds
// the same frame parser; the handler is called from that goroutine, never concurrently for one connection.
//
// Writes keep the epoll path: tls.Conn writes its records into tlsSocket, which in queued mode does not touch
// the socket but hands the records (ciphertext) to the connection's write queue. The queue is written with
// non-blocking writev on the socket's descriptor and waits on the write poller when the socket is full, as
// for a plain connection, so Send never blocks, and the queue cap, the write timeout and the buffer budget
// apply to the bytes on the wire. Everything else (limits, close codes, ping/pong, idle timeout, message
// timeout, drain with 1001, PauseReading) is the plain connection's code.
//
// The descriptor is the net.Conn's own (no duplicate): every system call the transport makes on it happens
// under Conn.mu while the connection is not closed, and the net.Conn is closed only by teardown, under mu,
// after which no call is made; so the number cannot be reused under the transport.
//
// Cost, against a plain connection: a goroutine (its stack), crypto/tls's buffers and the runtime's poller
// entry per connection, and CPU for the crypto. See TestTLSConnectionFootprint for figures.

// tlsReadBuffer is the size of a TLS connection's read buffer, held while it waits for data. tls.Conn already
// holds the decrypted record, so a small buffer only means more (cheap) calls, not more system calls.
const tlsReadBuffer = 2 << 10

// tlsConn is what a TLS connection has besides a plain one.
type tlsConn struct {
	conn *tls.Conn
	sock *tlsSocket
	wake chan struct{} // ResumeReading: the reader may go on
	hup  chan struct{} // the read poller saw a hang-up while the connection was paused
	done chan struct{} // closed by teardown
	// watched: the descriptor is on the read poller (for hang-up while paused); under Conn.mu.
	watched bool
}

// tlsSocket is the net.Conn under a tls.Conn. Reads go to the socket. Writes go to it directly until queue is
// called (the TLS handshake and the HTTP upgrade block with a deadline on the handshake goroutine); after it,
// each record is copied to pending, which the connection moves to its write queue.
type tlsSocket struct {
	net.Conn
	mu      sync.Mutex // innermost: held by tls.Conn writes, which may come from the reader (TLS 1.3 KeyUpdate)
	queued  bool
	pending [][]byte
	npend   atomic.Int64 // len(pending), to check without the lock
}

func (s *tlsSocket) Write(b []byte) (int, error) {
	s.mu.Lock()
	if !s.queued {
		s.mu.Unlock()
		return s.Conn.Write(b)
	}
	s.pending = append(s.pending, bytes.Clone(b))
	s.npend.Add(1)
	s.mu.Unlock()
	return len(b), nil
}

// queue switches writes to the pending list.
func (s *tlsSocket) queue() {
	s.mu.Lock()
	s.queued = true
	s.mu.Unlock()
}

// take returns the pending records and empties the list.
func (s *tlsSocket) take() [][]byte {
	if s.npend.Load() == 0 {
		return nil
	}
	s.mu.Lock()
	p := s.pending
	s.pending = nil
	s.npend.Store(0)
	s.mu.Unlock()
	return p
}

// socketOf returns the socket under a TLS connection (nc itself for a plain one).
func socketOf(nc net.Conn) net.Conn {
	if tc, ok := nc.(*tls.Conn); ok {
		nc = tc.NetConn()
	}
	if s, ok := nc.(*tlsSocket); ok {
		nc = s.Conn
	}
	return nc
}

// wrapTLS makes nc a server-side TLS connection when the server has a TLS configuration.
func (s *Server) wrapTLS(nc net.Conn) net.Conn {
	if s.cfg.TLS == nil {
		return nc
	}
	return tls.Server(&tlsSocket{Conn: nc}, s.cfg.TLS)
}

// httpOnTLS is the answer to a plain HTTP request on a TLS port, as net/http gives it.
const httpOnTLS = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n" +
	"Client sent an HTTP request to a TLS (wss://) port.\n"

// handshakeTLS runs the TLS handshake of a TLS connection (under the handshake deadline already set); it does
// nothing for a plain one. A client that speaks plain HTTP gets 400 in plain HTTP, as from net/http.
func (s *Server) handshakeTLS(nc net.Conn) error {
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return nil
	}
	err := tc.HandshakeContext(context.Background())
	if err == nil {
		return nil
	}
	s.stats.tlsHandshakeErrors.Add(1)
	var re tls.RecordHeaderError
	if errors.As(err, &re) && re.Conn != nil && bytes.HasPrefix(re.RecordHeader[:], []byte("GET ")) {
		_, _ = io.WriteString(re.Conn, httpOnTLS)
	}
	// Scanners and clients with old or wrong certificates make these common: debug, counted in Stats.
	s.log.Debug("TLS handshake failed", "remote", nc.RemoteAddr().String(), "err", err)
	return fmt.Errorf("transport: TLS handshake: %w", err)
}

// adoptTLS makes c a TLS connection over tc: dup, the descriptor taken before the upgrade (takeFD), is closed
// and c uses the socket's own descriptor (see above), and tls.Conn's writes go to the write queue from now on.
func (c *Conn) adoptTLS(tc *tls.Conn, dup int) error {
	_ = unix.Close(dup)
	sock := tc.NetConn().(*tlsSocket)
	sc, ok := sock.Conn.(syscall.Conn)
	if !ok {
		return errors.New("transport: TLS connection has no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	if err := rc.Control(func(fd uintptr) { c.fd = int(fd) }); err != nil {
		return err
	}
	sock.queue()
	c.tls = &tlsConn{conn: tc, sock: sock, wake: make(chan struct{}, 1), hup: make(chan struct{}, 1),
		done: make(chan struct{})}
	return nil
}

// queueTLSLocked encrypts a frame (header and payload) into the write queue; it reports whether the buffer
// budget is exceeded. The header goes in the record of the payload's first bytes (one copy of at most a
// record), so that a small message costs one record, not two.
func (c *Conn) queueTLSLocked(hdr, payload []byte) (over bool, err error) {
	const record = 16 << 10 // TLS's largest record payload
	k := min(len(payload), record-len(hdr))
	first := append(append(make([]byte, 0, len(hdr)+k), hdr...), payload[:k]...)
	if _, err = c.tls.conn.Write(first); err == nil && k < len(payload) {
		_, err = c.tls.conn.Write(payload[k:])
	}
	return c.takeRecordsLocked(), err
}

// takeRecordsLocked moves the records tls.Conn wrote into the write queue, charging them; it reports whether
// the budget is exceeded.
func (c *Conn) takeRecordsLocked() (over bool) {
	for _, r := range c.tls.sock.take() {
		q := c.queueForLocked()
		q.push(r)
		q.bytes += len(r)
		q.charged += cap(r)
		over = c.srv.charge(int64(cap(r))) || over
	}
	return over
}

// flushTLSRecords writes what tls.Conn wrote on its own (a TLS 1.3 KeyUpdate answer, an alert) from the
// reader goroutine.
func (c *Conn) flushTLSRecords() {
	if c.tls.sock.npend.Load() == 0 {
		return
	}
	c.mu.Lock()
	if c.state == stateClosed {
		c.mu.Unlock()
		return
	}
	c.takeRecordsLocked()
	err := c.flushLocked()
	c.mu.Unlock()
	if err != nil {
		c.teardown(err)
	}
}

// closeTLS closes the socket (teardown, under mu): the reader's Read returns, and a paused reader wakes.
func (c *Conn) closeTLS() {
	close(c.tls.done)
	_ = socketOf(c.tls.conn).Close() // not tls.Conn.Close: no close_notify, the close frame said goodbye
}

// readTLS is a TLS connection's reader goroutine: it feeds what tls.Conn decrypts to the frame parser until
// the connection closes.
func (c *Conn) readTLS() {
	defer c.srv.wg.Done()
	defer c.releaseRead()
	buf := make([]byte, tlsReadBuffer)
	for {
		n, err := c.tls.conn.Read(buf)
		if n > 0 {
			if cerr := c.consume(buf[:n]); cerr != nil {
				c.fail(cerr)
				return
			}
		}
		c.flushTLSRecords()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				err = ErrClosed // closed by teardown, which reported its own cause
			}
			c.teardown(err)
			return
		}
		closing, paused := c.readStatus()
		if closing {
			return // the close frame is queued: the connection goes when it is written
		}
		if paused && !c.waitResumeTLS() {
			return
		}
	}
}

// waitResumeTLS blocks the reader of a paused connection until ResumeReading, and reports false if the
// connection closed meanwhile. The socket is watched for a hang-up on the read poller meanwhile, as a paused
// plain connection is, so that a client that leaves is noticed at once.
func (c *Conn) waitResumeTLS() bool {
	for {
		c.mu.Lock()
		if c.state == stateClosed {
			c.mu.Unlock()
			return false
		}
		if !c.paused {
			c.mu.Unlock()
			return true
		}
		var err error
		if c.tls.watched {
			err = c.srv.poller.mod(c.fd, hangupEvents)
		} else {
			err = c.srv.poller.add(c, hangupEvents) // its events go to c.tls.hup (onReadEvent)
			c.tls.watched = err == nil
		}
		c.mu.Unlock()
		if err != nil {
			c.teardown(err)
			return false
		}
		select {
		case <-c.tls.wake:
		case <-c.tls.hup:
			c.teardown(io.EOF)
			return false
		case <-c.tls.done:
			return false
		}
	}
}

// resumeTLS wakes a paused reader (non-blocking; one pending wake is enough).
func (c *Conn) resumeTLS() {
	select {
	case c.tls.wake <- struct{}{}:
	default:
	}
}

// TLSFiles names the PEM files of the WebSocket listener's certificate.
type TLSFiles struct {
	// Cert is the certificate chain (leaf first); Key its private key. Both are needed.
	Cert, Key string
	// ClientCA, if set, is a PEM file of the CAs that sign client certificates: clients must then present one
	// (mutual TLS). "" means clients need none.
	ClientCA string
}

// CertReloader serves the certificate of TLSFiles to TLS handshakes and loads the files again on Reload.
// Handshakes after a successful Reload use the new certificate (and client CAs); connections already
// established are not affected. A Reload that fails keeps what was loaded before.
type CertReloader struct {
	files TLSFiles
	cur   atomic.Pointer[loadedTLS]
}

type loadedTLS struct {
	cfg  *tls.Config
	leaf *x509.Certificate
}

// NewCertReloader loads the files once; an error names the file that could not be used.
func NewCertReloader(files TLSFiles) (*CertReloader, error) {
	r := &CertReloader{files: files}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the files again. On error the certificate loaded before stays in use.
func (r *CertReloader) Reload() error {
	l, err := loadTLSFiles(r.files)
	if err != nil {
		return err
	}
	r.cur.Store(l)
	return nil
}

// Leaf is the certificate in use.
func (r *CertReloader) Leaf() *x509.Certificate { return r.cur.Load().leaf }

// TLSConfig is a configuration for Config.TLS whose handshakes use what the last successful Reload loaded.
func (r *CertReloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.cur.Load().cfg, nil
		},
	}
}

// CheckTLSFiles reports whether the files can be loaded, as NewCertReloader would.
func CheckTLSFiles(f TLSFiles) error {
	_, err := loadTLSFiles(f)
	return err
}

// loadTLSFiles reads and checks the files (the key must match the certificate).
func loadTLSFiles(f TLSFiles) (*loadedTLS, error) {
	if f.Cert == "" || f.Key == "" {
		return nil, errors.New("transport: TLS needs a certificate and a key file")
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("transport: TLS certificate %s and key %s: %w", f.Cert, f.Key, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("transport: TLS certificate %s: %w", f.Cert, err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair}}
	if f.ClientCA != "" {
		pem, err := os.ReadFile(f.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("transport: TLS client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("transport: TLS client CA %s: no PEM certificate in it", f.ClientCA)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return &loadedTLS{cfg: cfg, leaf: leaf}, nil
}
