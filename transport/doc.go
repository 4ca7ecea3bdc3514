// Package transport is the gateway's WebSocket server: an accept loop, a zero-copy gobwas/ws upgrade, and then
// epoll on the socket's file descriptor, taken out of the net.Conn so that a connection holds exactly one
// descriptor and none of the Go runtime's per-connection structures. The epoll instances (epoll.go) find a
// ready connection in a slice indexed by descriptor, where easygo's Epoll kept a callback closure and a map
// entry per connection (75 B of the ~390 B heap of an idle connection, TestConnectionFootprint). An idle connection
// costs no goroutine and no read buffer.
//
// When a socket becomes readable, one worker of a bounded pool reads what the kernel has without blocking and
// feeds it to the connection's incremental frame parser, which keeps only an unfinished frame or message; a
// client that sends half a frame and stops therefore pins no worker. A frame's payload is copied once, into a
// buffer sized from its header (parsing is linear in the bytes read), and the buffer goes back to the
// allocator when the message is delivered: an idle connection holds no read memory. Control frames are
// answered here (ping, close handshake with RFC 6455 codes); fragmented messages are reassembled up to a
// limit; text must be UTF-8, checked fragment by fragment so that invalid text fails at once (1007).
//
// Memory has an overall bound: read buffers, write queues and what the handler declares (Conn.ChargeBuffer)
// are charged to one counter against Config.BufferBudget, and the charge that goes over it closes the
// connections that hold the most (1009 for an unfinished message, 1013 for unread replies or waiting
// requests). A frame or fragmented message must also be complete within Config.MessageTimeout (1008), so
// that empty continuation frames cannot keep a partial message alive.
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
// A connection the server closes itself (Conn.Close, the limits above, Shutdown's 1001) lingers once its close
// frame is written: the socket's writing side is shut down (FIN after the queued data) and the descriptor goes
// to the server's lingerer (linger.go: one goroutine and one epoll instance for all), which discards what the
// client still sends and closes it at the client's EOF or after Config.LingerTimeout, at most MaxLingering at
// once. Closing at once would let a request the client sent before it saw the close frame make the kernel reset
// the connection and drop the replies not yet delivered. OnClose and every refund happen at once regardless.
//
// A handler that cannot keep up calls Conn.SetReadPaused(true): the connection's epoll interest is narrowed
// to hang-up, the kernel's buffer fills and TCP pushes back on the client, until SetReadPaused(false); a client that leaves meanwhile is still noticed and unregistered at once.
//
// Admission: a handshake holds one of MaxHandshakes slots and one of its address's MaxHandshakesPerIP for at
// most HandshakeTimeout; a socket over either bound is closed at once. The descriptor a connection will own
// is duplicated before the 101 is sent, so that at the descriptor limit (or within FDReserve of it) a client
// gets 503 instead of an upgrade on a dead socket; when accept itself fails the accept loop backs off.
//
// TLS (Config.TLS, wss://): crypto/tls must read through a net.Conn, so a TLS connection keeps its net.Conn and
// one goroutine that reads and decrypts records and feeds them to the same frame parser; writes are encrypted
// into the same capped write queue and written from it without blocking, as for plain connections. Limits,
// the buffer budget, close codes, keepalive, drain and pausing behave alike (a paused TLS connection's reader
// goroutine waits, and the socket is watched for hang-up). The price: a goroutine and crypto/tls's buffers,
// about 15 KB per idle connection against under 1 KB (TestConnectionFootprint); terminating TLS at a load
// balancer keeps the gateway at the plain figure. CertReloader swaps the certificate for new handshakes.
//
// Concurrency contract: Handler callbacks for one connection never run concurrently (epoll one-shot; for TLS,
// its one reader goroutine), and OnMessage's data is valid only during the call. Conn.Send, Conn.Close and
// Conn.SetReadPaused are safe from any goroutine and never block. The package knows nothing of JSON, actors or Redis.
package transport
