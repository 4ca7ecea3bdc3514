package redisq_test

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/redisq"
)

// A Client holds memory for what it has queued, not for QueueSize: one per queue must cost little while idle.
func TestNewClientAllocatesLittle(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer rdb.Close()
	cfg := redisq.ClientConfig{Redis: rdb, Logger: quiet, OnComplete: func(redisq.Completion) {}}
	const bound = 256 << 10
	var least uint64 = 1 << 62
	for range 3 { // the least of three, in case something else in the process allocates meanwhile
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c, err := redisq.NewClient(cfg)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		runtime.KeepAlive(c)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	if least > bound {
		t.Fatalf("NewClient allocated %d bytes, want at most %d", least, bound)
	}
	t.Logf("NewClient allocated %d bytes", least)
}

// QueueSize still bounds the submits waiting for the pipeline; past it Submit fails at once.
func TestSubmitFailsPastQueueSize(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled: the client is not started
	defer rdb.Close()
	c, err := redisq.NewClient(redisq.ClientConfig{Redis: rdb, QueueSize: 3, Logger: quiet,
		OnComplete: func(x redisq.Completion) { t.Errorf("completion for a job never sent: %+v", x) }})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{nil, nil, nil, redisq.ErrQueueFull, redisq.ErrQueueFull} {
		if err := c.Submit(redisq.Submission{ID: redisq.NewID()}); !errors.Is(err, want) {
			t.Fatalf("submit %d: %v, want %v", i, err, want)
		}
	}
	if n := c.Stats().Pending; n != 3 {
		t.Fatalf("%d pending, want the 3 queued", n)
	}
	if err := c.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Submit(redisq.Submission{ID: redisq.NewID()}); !errors.Is(err, redisq.ErrClosed) {
		t.Fatalf("submit after Shutdown: %v, want ErrClosed", err)
	}
}
