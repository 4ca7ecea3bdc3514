package redisq

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Go workers count the jobs they finish in 10-second buckets, `<prefix>::done::<unix seconds / 10>`, each
// expiring after two minutes, so that `wsgate queue stats` can tell the rate over the last minute. One
// INCRBY and one EXPIRE per batch of answers; Perl workers do not count.
const (
	rateBucket  = 10 * time.Second
	rateBuckets = 6 // the current bucket and the five before it
	rateTTL     = 2 * time.Minute
)

func (k Keys) rateKey(bucket int64) string {
	return k.prefixed("done::" + strconv.FormatInt(bucket, 10))
}

// rateKeys names the buckets of the last minute, the current one first.
func (k Keys) rateKeys(now time.Time) []string {
	b := now.Unix() / int64(rateBucket/time.Second)
	out := make([]string, rateBuckets)
	for i := range out {
		out[i] = k.rateKey(b - int64(i))
	}
	return out
}

// rateSpan is the time the buckets of rateKeys(now) cover: the five whole buckets and the current one so far.
func rateSpan(now time.Time) time.Duration {
	into := time.Duration(now.UnixNano() % int64(rateBucket))
	return (rateBuckets-1)*rateBucket + into
}

// countDone adds n finished jobs to the current bucket.
func (k Keys) countDone(ctx context.Context, p redis.Pipeliner, n int, now time.Time) {
	key := k.rateKey(now.Unix() / int64(rateBucket/time.Second))
	p.IncrBy(ctx, key, int64(n))
	p.Expire(ctx, key, rateTTL)
}
