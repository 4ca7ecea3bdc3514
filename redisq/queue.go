package redisq

import "sync"

// queue is a bounded FIFO between many producers and one consumer whose memory follows what is queued now, not
// its bound. A buffered channel would do the same job, but it allocates its whole capacity up front: four of
// them at the default QueueSize held 5.6 MB per Client, idle or not, and the Go runtime keeps about as much
// again in RSS once the heap has been that big. A queue starts with no buffer, doubles it as it fills (never
// past limit), and gives it up again when a burst drains: a buffer larger than keep is replaced by one twice
// the items left (none, if none are) once a take leaves no more than keep/4. keep is what steady traffic needs,
// so that steady traffic allocates nothing after its first few pushes. The buffer is given back at the end of
// a drain rather than halved along the way, because a queue whose length swings (a backlog that its consumer
// takes down and its producers build up again) would otherwise reallocate and copy on every swing: as it is,
// a burst holds its peak's buffer until it is nearly sent, and only a swing from above keep down to keep/4
// costs a new buffer. The shrink happens in the take that drains the queue, as a queue that goes idle sees no
// other call.
//
// The consumer waits on wake, a 1-buffered channel that holds a token whenever items are queued (and that is
// closed when the queue is), so that it can wait for several queues and timers in one select. Items
// are pushed one at a time and taken in batches: one lock per batch is cheaper than one channel receive per
// item.
type queue[T any] struct {
	mu      sync.Mutex
	buf     []T // a ring: the items are buf[head], buf[head+1], ... (modulo len(buf)), n of them
	head, n int
	limit   int // at most this many items are queued
	keep    int // a buffer up to this size is kept when the queue drains
	closed  bool
	notFull sync.Cond // pushWait waits on it while the queue is full
	// wake holds a token while items are queued, and the token is drained when a take empties the queue
	// (both under mu), so the consumer wakes only with work to do; closed (under mu) when the queue is closed,
	// so that the consumer's select fires for good, as for a closed channel.
	wake chan struct{}
}

// minQueueBuf is the size of a queue's first buffer.
const minQueueBuf = 16

func newQueue[T any](limit, keep int) *queue[T] {
	q := &queue[T]{limit: limit, keep: keep, wake: make(chan struct{}, 1)}
	q.notFull.L = &q.mu
	return q
}

// push queues v, or reports false when the queue is full or closed. It never blocks.
func (q *queue[T]) push(v T) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || q.n >= q.limit {
		return false
	}
	q.put(v)
	return true
}

// pushWait queues v, waiting while the queue is full (the producer's back-pressure); it reports false when the
// queue is closed.
func (q *queue[T]) pushWait(v T) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for !q.closed && q.n >= q.limit {
		q.notFull.Wait()
	}
	if q.closed {
		return false
	}
	q.put(v)
	return true
}

// put appends v; q.mu is held and there is room.
func (q *queue[T]) put(v T) {
	if q.n == len(q.buf) {
		q.resize(min(max(2*len(q.buf), minQueueBuf), q.limit))
	}
	i := q.head + q.n
	if i >= len(q.buf) {
		i -= len(q.buf)
	}
	q.buf[i] = v
	q.n++
	q.signal()
}

// signal leaves a token in wake (unless one is there); q.mu is held and the queue is open.
func (q *queue[T]) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take appends up to most items to dst, oldest first, and removes them from the queue. open is false when the
// queue is closed and held fewer than most items (now all in dst): as most receives from a closed channel would
// have ended with one that reports it closed, after every item sent before close.
func (q *queue[T]) take(dst []T, most int) (out []T, open bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if most <= 0 {
		return dst, true
	}
	open = !q.closed || q.n >= most
	k := min(most, q.n)
	if k == 0 {
		return dst, open
	}
	first := min(k, len(q.buf)-q.head) // the items up to the end of the ring, then the rest from its start
	dst = append(dst, q.buf[q.head:q.head+first]...)
	dst = append(dst, q.buf[:k-first]...)
	clear(q.buf[q.head : q.head+first]) // let go of what the items point to
	clear(q.buf[:k-first])
	q.head += k
	if q.head >= len(q.buf) {
		q.head -= len(q.buf)
	}
	q.n -= k
	q.notFull.Broadcast() // k slots are free: every waiting pushWait may fit (no waiter: an atomic load)
	switch {
	case q.n == 0:
		q.head = 0
		if !q.closed {
			select { // nothing left to wake the consumer for
			case <-q.wake:
			default:
			}
		}
	case !q.closed:
		q.signal() // the consumer took its token to come here: items are left
	}
	if len(q.buf) > q.keep && q.n <= q.keep/4 {
		q.resize(2 * q.n)
	}
	return dst, open
}

// resize moves the items to a new buffer of size c (at least q.n; 0 frees the buffer); q.mu is held.
func (q *queue[T]) resize(c int) {
	var buf []T
	if c > 0 {
		buf = make([]T, c)
		first := copy(buf, q.buf[q.head:min(q.head+q.n, len(q.buf))])
		copy(buf[first:], q.buf[:q.n-first])
	}
	q.buf, q.head = buf, 0
}

// close makes push and pushWait fail from now on; the consumer still takes what is queued.
func (q *queue[T]) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.closed = true
	close(q.wake)
	q.notFull.Broadcast()
}

// len is the number of items queued.
func (q *queue[T]) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}
