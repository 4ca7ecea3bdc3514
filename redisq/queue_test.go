package redisq

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
)

// woken reports whether q's consumer would wake now, consuming the token as the consumer does.
func woken[T any](q *queue[T]) bool {
	select {
	case <-q.wake:
		return true
	default:
		return false
	}
}

// bufLen is the size of q's buffer.
func bufLen[T any](q *queue[T]) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.buf)
}

func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// queueStep is one operation of a queue table test: push or take (take n, or close if close is set), with
// what it must return and whether the consumer must then be woken.
type queueStep struct {
	push   []int // pushed one by one
	fails  int   // how many of the last pushes must fail (full or closed)
	take   int
	want   []int // what take returns
	closed bool  // take's open must be false
	close  bool
	wake   bool // a consumer waiting on wake would wake after this step
}

func TestQueue(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int
		keep  int
		steps []queueStep
	}{
		{"empty queue does not wake", 4, 64, []queueStep{
			{take: 3, want: nil, wake: false},
		}},
		{"push wakes, take returns the oldest first", 8, 64, []queueStep{
			{push: []int{1, 2, 3}, wake: true},
			{take: 2, want: []int{1, 2}, wake: true}, // one is left: the consumer must come back
			{take: 5, want: []int{3}, wake: false},   // emptied: no token left to wake for nothing
		}},
		{"bound: push fails past the limit", 3, 64, []queueStep{
			{push: []int{1, 2, 3, 4, 5}, fails: 2, wake: true},
			{take: 1, want: []int{1}, wake: true},
			{push: []int{6, 7}, fails: 1, wake: true},
			{take: 10, want: []int{2, 3, 6}, wake: false},
		}},
		{"order holds across the ring's end", 4, 64, []queueStep{
			{push: []int{1, 2, 3, 4}, wake: true},
			{take: 3, want: []int{1, 2, 3}, wake: true},
			{push: []int{5, 6, 7}, wake: true}, // wraps around
			{take: 2, want: []int{4, 5}, wake: true},
			{push: []int{8, 9}, wake: true},
			{take: 10, want: []int{6, 7, 8, 9}, wake: false},
		}},
		{"take of zero takes nothing", 4, 64, []queueStep{
			{push: []int{1}, wake: true},
			{take: 0, want: nil, wake: true},
			{take: 1, want: []int{1}, wake: false},
		}},
		{"closed: items queued before close are taken, then closed is reported", 8, 64, []queueStep{
			{push: []int{1, 2, 3}, wake: true},
			{close: true, wake: true},
			{push: []int{4}, fails: 1, wake: true},
			{take: 2, want: []int{1, 2}, wake: true}, // exactly as many as asked for: not known to be done
			{take: 2, want: []int{3}, closed: true, wake: true},
			{take: 2, want: nil, closed: true, wake: true}, // woken for good, as a closed channel
		}},
		{"closed with exactly most items left", 8, 64, []queueStep{
			{push: []int{1, 2}, wake: true},
			{close: true, wake: true},
			{take: 2, want: []int{1, 2}, wake: true},
			{take: 2, want: nil, closed: true, wake: true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue[int](tc.limit, tc.keep)
			for i, s := range tc.steps {
				switch {
				case s.close:
					q.close()
				case s.push != nil:
					ok := 0
					for _, v := range s.push {
						if q.push(v) {
							ok++
						}
					}
					if want := len(s.push) - s.fails; ok != want {
						t.Fatalf("step %d: %d of %d pushes succeeded, want %d", i, ok, len(s.push), want)
					}
				default:
					got, open := q.take(nil, s.take)
					if !slices.Equal(got, s.want) || open == s.closed {
						t.Fatalf("step %d: take(%d) = %v, open %v; want %v, open %v", i, s.take, got, open,
							s.want, !s.closed)
					}
				}
				if w := woken(q); w != s.wake {
					t.Fatalf("step %d: woken = %v, want %v", i, w, s.wake)
				}
				if s.wake && !s.close && !q.closed {
					q.signal() // put back the token this check took, as the consumer would not have
				}
			}
		})
	}
}

func TestQueueTakeAppendsToTheCallersSlice(t *testing.T) {
	q := newQueue[string](4, 64) // a ring of 4
	for _, v := range []string{"b", "c", "d", "x"} {
		q.push(v)
	}
	q.take(nil, 3)
	q.push("y") // at the ring's start: the next take reads x at its end, then y
	dst := make([]string, 1, 4)
	dst[0] = "a"
	got, _ := q.take(dst, 8)
	if !slices.Equal(got, []string{"a", "x", "y"}) || &got[0] != &dst[0] {
		t.Fatalf("take(dst) = %q (same array: %v), want a, x, y in dst's array", got, &got[0] == &dst[0])
	}
	// The taken slots are cleared, so the queue does not keep what its items point to alive.
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.buf) != 4 {
		t.Fatalf("buffer of %d, want 4 (the limit)", len(q.buf))
	}
	for i, v := range q.buf {
		if v != "" {
			t.Fatalf("buf[%d] = %q after the take, want cleared", i, v)
		}
	}
}

func TestQueueMemoryFollowsItsLength(t *testing.T) {
	const limit, keep = 1 << 16, 64
	for _, tc := range []struct {
		name  string
		burst int // pushed at once, then taken in batches of 16
		// the buffer's size at the burst's height (at most), and once it has drained
		atMost, drainedMin, drainedMax int
	}{
		{"nothing queued, no buffer", 0, 0, 0, 0},
		{"a small queue keeps its buffer", 40, 64, 64, 64},
		{"up to keep is kept", keep, keep, keep, keep},
		{"a burst's buffer is given back", 5000, 8192, 0, keep},
		{"a burst to the limit", limit, limit, 0, keep},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := newQueue[int](limit, keep)
			for i := range tc.burst {
				if !q.push(i) {
					t.Fatalf("push %d of %d failed", i, tc.burst)
				}
			}
			if n := bufLen(q); n < tc.burst || n > tc.atMost {
				t.Fatalf("buffer of %d for %d items, want %d..%d", n, tc.burst, tc.burst, tc.atMost)
			}
			next := 0
			for {
				got, _ := q.take(nil, 16)
				if len(got) == 0 {
					break
				}
				for _, v := range got {
					if v != next {
						t.Fatalf("took %d, want %d", v, next)
					}
					next++
				}
				if n, size := q.len(), bufLen(q); size > keep && n <= keep/4 {
					t.Fatalf("buffer of %d (more than keep) holds only %d items after a take", size, n)
				}
			}
			if next != tc.burst {
				t.Fatalf("took %d of %d", next, tc.burst)
			}
			if n := bufLen(q); n < tc.drainedMin || n > tc.drainedMax {
				t.Fatalf("buffer of %d after the burst drained, want %d..%d", n, tc.drainedMin, tc.drainedMax)
			}
		})
	}
}

// Steady traffic (no more queued at once than keep) reuses the queue's buffer: no allocation per item.
func TestQueueSteadyTrafficDoesNotAllocate(t *testing.T) {
	q := newQueue[Submission](1<<16, 1024)
	s := Submission{ID: "job", Fields: []Field{{Key: "k", Value: "v"}}}
	batch := make([]Submission, 0, 256)
	cycle := func() {
		for range 300 {
			q.push(s)
		}
		for q.len() > 0 {
			<-q.wake
			batch, _ = q.take(batch[:0], cap(batch))
		}
	}
	cycle() // grows the buffer
	if allocs := testing.AllocsPerRun(20, cycle); allocs != 0 {
		t.Fatalf("%v allocations per 300 pushes and their takes, want 0", allocs)
	}
}

// pushWait waits while the queue is full, until a take makes room or the queue is closed.
func TestQueuePushWait(t *testing.T) {
	for _, closeIt := range []bool{false, true} {
		t.Run(fmt.Sprintf("close=%v", closeIt), func(t *testing.T) {
			q := newQueue[int](2, 64)
			q.push(1)
			q.push(2)
			result := make(chan bool, 1)
			go func() { result <- q.pushWait(3) }()
			for range 100 {
				runtime.Gosched()
			}
			select {
			case ok := <-result:
				t.Fatalf("pushWait on a full queue returned %v without a take", ok)
			default:
			}
			if closeIt {
				q.close()
				if <-result {
					t.Fatal("pushWait reported success on a closed queue")
				}
				if got, open := q.take(nil, 10); !slices.Equal(got, []int{1, 2}) || open {
					t.Fatalf("take after close = %v, open %v; want [1 2], closed", got, open)
				}
				return
			}
			if got, _ := q.take(nil, 1); !slices.Equal(got, []int{1}) {
				t.Fatalf("take = %v, want [1]", got)
			}
			if !<-result {
				t.Fatal("pushWait failed after a take made room")
			}
			if got, _ := q.take(nil, 10); !slices.Equal(got, []int{2, 3}) {
				t.Fatalf("take = %v, want [2 3]", got)
			}
		})
	}
}

// Many producers and one consumer, as in the Client: every item arrives once, each producer's in order, the
// queue never holds more than its limit, and a consumer that waits on wake never misses an item.
func TestQueueConcurrentPushAndTake(t *testing.T) {
	const producers, each, limit = 8, 3000, 100
	q := newQueue[[2]int](limit, 16)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; {
				var ok bool
				if p%2 == 0 {
					ok = q.push([2]int{p, i})
				} else {
					ok = q.pushWait([2]int{p, i})
				}
				if ok {
					i++
				} else {
					runtime.Gosched() // full: try again, as a caller of Submit would after ErrQueueFull
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		q.close()
	}()
	next := make([]int, producers)
	var batch [][2]int
	for open := true; open; {
		<-q.wake
		batch, open = q.take(batch[:0], 37)
		if n := q.len(); n > limit {
			t.Fatalf("%d queued, more than the limit %d", n, limit)
		}
		for _, v := range batch {
			if v[1] != next[v[0]] {
				t.Fatalf("producer %d: got item %d, want %d", v[0], v[1], next[v[0]])
			}
			next[v[0]]++
		}
	}
	for p, n := range next {
		if n != each {
			t.Fatalf("producer %d: got %d items, want %d", p, n, each)
		}
	}
}

// BenchmarkHandOff compares the queue with the buffered channel it replaced, on the Client's hot path: many
// goroutines submit, one consumer takes batches of up to 256 (the channel: one receive per item).
func BenchmarkHandOff(b *testing.B) {
	s := Submission{ID: "job", Fields: []Field{{Key: "k", Value: "v"}}}
	const limit, batchSize = 1 << 16, 256
	b.Run("kind=chan", func(b *testing.B) {
		ch := make(chan Submission, limit)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range ch {
				for range batchSize - 1 {
					select {
					case _, ok := <-ch:
						if !ok {
							return
						}
					default:
					}
				}
			}
		}()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				for {
					select {
					case ch <- s:
					default:
						runtime.Gosched() // full, as Submit's ErrQueueFull
						continue
					}
					break
				}
			}
		})
		close(ch)
		<-done
	})
	b.Run("kind=queue", func(b *testing.B) {
		q := newQueue[Submission](limit, 4*batchSize)
		done := make(chan struct{})
		go func() {
			defer close(done)
			batch := make([]Submission, 0, batchSize)
			for open := true; open; {
				<-q.wake
				batch, open = q.take(batch[:0], batchSize)
			}
		}()
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				for !q.push(s) {
					runtime.Gosched() // full, as Submit's ErrQueueFull
				}
			}
		})
		q.close()
		<-done
	})
}
