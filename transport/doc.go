// Package transport is the gateway's WebSocket server: an accept loop, a zero-copy gobwas/ws upgrade, and then
// epoll (mailru/easygo's Epoll) on the socket's file descriptor, taken out of the net.Conn so that a connection
// holds exactly one descriptor and none of the Go runtime's per-connection structures. An idle connection
// costs no goroutine and no read buffer.
//
// When a socket becomes readable, one worker of a bounded pool reads what the kernel has without blocking and
// feeds it to the connection's incremental frame parser, which keeps only the bytes of an unfinished frame; a
// client that sends half a frame and stops therefore pins nothing. Control frames are answered here (ping,
// close handshake with RFC 6455 codes); fragmented messages are reassembled up to a limit; text must be UTF-8.
//
// Writes go through a per-connection queue capped in bytes: Send appends and tries a non-blocking writev of
// everything queued. A connection whose socket is full waits on a second epoll instance for writability (no
// goroutine either); a client that stops reading is closed when its queue is full (1008) or when its socket has
// refused writes for WriteTimeout.
//
// permessage-deflate is negotiated when enabled, with no context takeover in either direction, so compression
// costs CPU per message and no memory per connection. The first offer the server can honour is accepted; an
// offer it cannot honour or parse (server_max_window_bits below 15, unknown parameters) is declined, and the
// connection proceeds uncompressed.
//
// A handler that cannot keep up calls Conn.PauseReading: the connection's epoll interest is not re-armed, the
// kernel's buffer fills and TCP pushes back on the client, until Conn.ResumeReading.
//
// Admission: a handshake holds one of MaxHandshakes slots and one of its address's MaxHandshakesPerIP for at
// most HandshakeTimeout; a socket over either bound is closed at once. The descriptor a connection will own
// is duplicated before the 101 is sent, so that at the descriptor limit (or within FDReserve of it) a client
// gets 503 instead of an upgrade on a dead socket; when accept itself fails the accept loop backs off.
//
// Concurrency contract: Handler callbacks for one connection never run concurrently (epoll one-shot), and
// OnMessage's data is valid only during the call. Conn.Send, Conn.Close, PauseReading and ResumeReading are
// safe from any goroutine and never block. The package knows nothing of JSON, actors or Redis.
package transport
