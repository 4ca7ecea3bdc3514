package redisq

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// Fast shutdown. A fetcher waits up to PollTimeout in a blocking BLMOVE or BRPOP. Closing its connection or
// cancelling its context would end the wait at once but could drop a job that Redis had just moved or popped
// (the reply is lost with the connection). Instead each fetcher blocks on a connection of its own whose Redis
// client ID it knows, and Shutdown sends `CLIENT UNBLOCK <id>` for them: Redis answers the blocked command as
// if it had timed out, so a job is either moved and handed to the fetcher, or still in the list. Where that
// is not possible (Redis Cluster, whose client has no dedicated connections, or a server that refuses CLIENT
// ID), the fetcher uses the pool and Shutdown waits for the poll to end, as before.

// blockingConn is one fetcher's connection for its blocking fetch.
type blockingConn struct {
	w    *Worker
	conn *redis.Conn
	id   int64
}

// cmdable returns the connection to block on: the fetcher's own (opened on first use and registered for
// CLIENT UNBLOCK) or, failing that, the pool.
func (b *blockingConn) cmdable(ctx context.Context) redis.Cmdable {
	if b.conn != nil {
		return b.conn
	}
	c, ok := b.w.cfg.Redis.(*redis.Client)
	if !ok {
		return b.w.cfg.Redis
	}
	conn := c.Conn()
	id, err := conn.ClientID(ctx).Result()
	if err != nil {
		conn.Close()
		return b.w.cfg.Redis
	}
	b.conn, b.id = conn, id
	b.w.blocking.Lock()
	b.w.blocking.ids[id] = struct{}{}
	b.w.blocking.Unlock()
	return conn
}

// drop closes the connection: when the fetcher stops, or after a failed fetch (go-redis does not reconnect a
// dedicated connection, and a new one has a new client ID), so that the next fetch opens a new one.
func (b *blockingConn) drop() {
	if b.conn == nil {
		return
	}
	b.w.blocking.Lock()
	delete(b.w.blocking.ids, b.id)
	b.w.blocking.Unlock()
	_ = b.conn.Close()
	b.conn = nil
}

// unblockFetchers sends CLIENT UNBLOCK for every fetcher's connection until fetched is closed (all fetchers
// have returned). It repeats, because a fetcher that was between two fetches when Shutdown began blocks once
// more before it sees the stop.
func (w *Worker) unblockFetchers(fetched <-chan struct{}) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		w.blocking.Lock()
		ids := make([]int64, 0, len(w.blocking.ids))
		for id := range w.blocking.ids {
			ids = append(ids, id)
		}
		w.blocking.Unlock()
		if len(ids) > 0 {
			_, _ = w.cfg.Redis.Pipelined(context.Background(), func(p redis.Pipeliner) error {
				for _, id := range ids {
					p.ClientUnblock(context.Background(), id)
				}
				return nil
			})
		}
		select {
		case <-fetched:
			return
		case <-t.C:
		}
	}
}

// blockingSet is the Redis client IDs of the fetchers' connections.
type blockingSet struct {
	sync.Mutex
	ids map[int64]struct{}
}
