package actors

import "github.com/asynkron/protoactor-go/actor"

// pendingJob is one registered job: the session's registration message, then an entry of the registry
// shard's map and of its timing wheel, and finally the registry's answer to the session (with the outcome, or
// timedOut). It carries the request back, so the session keeps no table of its own: the registry's entry is
// the one per-job state in the actors. Only the actor that holds it at the moment touches it (it moves from
// one to the next by message); the registry never reads req.
type pendingJob struct {
	id         string
	session    *actor.PID
	req        *Request
	due        int64 // tick at which it times out
	prev, next *pendingJob

	outcome  JobOutcome // set by the shard before it answers the session
	timedOut bool
}

// wheel is a hashed timing wheel: a job lands in slot due%len(slots), and each tick visits one slot and fires
// the entries that are due. Adding and removing are O(1), so one wheel serves any number of pending jobs with
// no timer per job; a deadline further away than one turn simply stays in its slot for more turns.
type wheel struct {
	slots []*pendingJob
	mask  int64
	now   int64 // the last tick visited
}

func newWheel(slots int, now int64) *wheel {
	n := 1
	for n < slots {
		n <<= 1
	}
	return &wheel{slots: make([]*pendingJob, n), mask: int64(n - 1), now: now}
}

func (w *wheel) add(p *pendingJob) {
	if p.due <= w.now {
		p.due = w.now + 1
	}
	i := p.due & w.mask
	p.prev, p.next = nil, w.slots[i]
	if p.next != nil {
		p.next.prev = p
	}
	w.slots[i] = p
}

func (w *wheel) remove(p *pendingJob) {
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		w.slots[p.due&w.mask] = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	}
	p.prev, p.next = nil, nil
}

// advance visits every tick up to now and calls fire (after removing it) for each entry that is due.
func (w *wheel) advance(now int64, fire func(*pendingJob)) {
	if now-w.now > int64(len(w.slots)) { // a long stall: one pass over every slot covers it
		w.now = now - int64(len(w.slots))
	}
	for w.now < now {
		w.now++
		for p := w.slots[w.now&w.mask]; p != nil; {
			next := p.next
			if p.due <= now {
				w.remove(p)
				fire(p)
			}
			p = next
		}
	}
}
