// Package transport is the gateway's WebSocket server: an accept loop, a zero-copy gobwas/ws upgrade, and then
// epoll (mailru/easygo's Epoll on the socket's own file descriptor, with no dup) so that an idle connection
// costs no goroutine and no read buffer.
//
// When a socket becomes readable, one worker of a bounded pool reads what the kernel has without blocking and
// feeds it to the connection's incremental frame parser, which keeps only the bytes of an unfinished frame; a
// client that sends half a frame and stops therefore pins nothing. Control frames are answered here (ping,
// close handshake with RFC 6455 codes); fragmented messages are reassembled up to a limit; text must be UTF-8.
//
// Writes go through a per-connection queue capped in bytes: Send appends and tries a non-blocking writev; only a
// connection whose socket buffer is full gets a goroutine, which drains the queue with a write deadline and
// ends. A client that stops reading is closed when its queue is full.
//
// Concurrency contract: Handler callbacks for one connection never run concurrently (epoll one-shot), and
// OnMessage's data is valid only during the call. Conn.Send and Conn.Close are safe from any goroutine and never
// block. The package knows nothing of JSON, actors or Redis.
package transport
