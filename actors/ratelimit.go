package actors

import (
	"fmt"
	"time"
)

// Rate is a token-bucket limit: Burst requests at once, refilled at PerSecond.
type Rate struct {
	PerSecond float64 `yaml:"per_second"`
	Burst     int     `yaml:"burst"`
}

// Validate reports a nonsensical rate.
func (r Rate) Validate() error {
	if r.PerSecond <= 0 || r.Burst <= 0 {
		return fmt.Errorf("actors: rate %+v: per-second rate and burst must be positive", r)
	}
	return nil
}

// bucket is a token bucket owned by one session (no locking: the actor is single-threaded).
type bucket struct {
	tokens float64
	last   time.Time
}

func (b *bucket) allow(r Rate, now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = float64(r.Burst)
	} else {
		b.tokens = min(float64(r.Burst), b.tokens+now.Sub(b.last).Seconds()*r.PerSecond)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
