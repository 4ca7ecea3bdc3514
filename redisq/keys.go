package redisq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultPrefix is the queue prefix when Keys.Prefix is empty and Keys.NoPrefix is false, as in the Perl code.
const DefaultPrefix = "jobs"

// DefaultQueue is the name of the pending list when Keys.Queue is empty.
const DefaultQueue = "pending"

// Keys names the Redis keys of one queue. The zero value is the Perl default: `jobs::pending` and
// `jobs::processing`.
type Keys struct {
	// Prefix of the queue lists; "" means DefaultPrefix. A prefix that holds a Redis Cluster hash tag, such as
	// "{jobs}", keeps both lists of a queue in one slot.
	Prefix string
	// NoPrefix names the lists bare (`pending`, `processing`), as the Perl code does for an empty prefix.
	NoPrefix bool
	// Queue is the name of the pending list; "" means DefaultQueue.
	Queue string
}

func (k Keys) prefixed(name string) string {
	if k.NoPrefix {
		return name
	}
	p := k.Prefix
	if p == "" {
		p = DefaultPrefix
	}
	return p + "::" + name
}

// hashTagged reports whether every list of the queue shares one Redis Cluster slot: the prefix holds a
// non-empty {tag}.
func (k Keys) hashTagged() bool {
	if k.NoPrefix || k.Prefix == "" {
		return false
	}
	i := strings.IndexByte(k.Prefix, '{')
	if i < 0 {
		return false
	}
	j := strings.IndexByte(k.Prefix[i+1:], '}')
	return j > 0
}

// Pending is the list that holds the IDs of queued jobs.
func (k Keys) Pending() string {
	q := k.Queue
	if q == "" {
		q = DefaultQueue
	}
	return k.prefixed(q)
}

// Simple is the list of simple-mode jobs (JSON documents): `<Pending()>::simple`, e.g. `jobs::pending::simple`.
// It is not the pending list, because a Perl worker takes every item on that list for a job ID. It shares the
// pending list's hash tag, and it expires JobTTL after the latest push (its jobs are dead by then).
func (k Keys) Simple() string { return k.Pending() + "::simple" }

// Processing is the list that holds the IDs of jobs that a worker has taken (reliable mode).
func (k Keys) Processing() string { return k.prefixed("processing") }

// Dead is the dead-letter list: IDs of jobs delivered MaxDeliveries times (reliable mode).
func (k Keys) Dead() string { return k.prefixed("dead") }

// heartbeat is the key that proves a reliable-mode worker alive.
func (k Keys) heartbeat(workerID string) string { return k.prefixed("worker::" + workerID) }

// workers is the sorted set of the Go workers of this prefix, scored by when their heartbeat expires: operators
// list live workers from it (one ZRANGEBYSCORE) instead of scanning the keyspace for heartbeats.
func (k Keys) workers() string { return k.prefixed("workers") }

// registerWorker records in p that the worker is alive until expires, drops workers whose heartbeat ran out,
// and keeps the set itself from outliving its last worker.
func (k Keys) registerWorker(ctx context.Context, p redis.Pipeliner, id string, expires time.Time) {
	p.ZAdd(ctx, k.workers(), redis.Z{Score: float64(expires.UnixMilli()), Member: id})
	p.ZRemRangeByScore(ctx, k.workers(), "-inf", strconv.FormatInt(time.Now().UnixMilli(), 10))
	p.PExpireAt(ctx, k.workers(), expires)
}

// JobKey is the hash of one job; never prefixed.
func JobKey(id string) string { return "job::" + id }

// ClientChannel is the pub/sub channel of one client; never prefixed.
func ClientChannel(clientID string) string { return "client::" + clientID }

// NewID returns a random UUID-v4-shaped lowercase string, the form the Perl code uses for job and client IDs.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("redisq: crypto/rand failed: %v", err)) // never happens on Linux
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}
