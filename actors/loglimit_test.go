package actors

import (
	"testing"
	"time"
)

// A hot-path warning is written at most once per interval, and the next one says how many were held back.
func TestLogLimit(t *testing.T) {
	t.Parallel()
	l := logLimit{interval: time.Second}
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at         time.Duration
		ok         bool
		suppressed int64
	}{
		{0, true, 0},
		{10 * time.Millisecond, false, 0},
		{999 * time.Millisecond, false, 0},
		{time.Second, true, 2},
		{1500 * time.Millisecond, false, 0},
		{3 * time.Second, true, 1},
	}
	for _, s := range steps {
		suppressed, ok := l.allow(t0.Add(s.at))
		if ok != s.ok || suppressed != s.suppressed {
			t.Fatalf("at %v: allow = %d, %v; want %d, %v", s.at, suppressed, ok, s.suppressed, s.ok)
		}
	}
}
