package redisq

import (
	"hash/maphash"
	"sync"
)

// pendingSet is the set of job IDs a client waits for, each with the time its submit reached Redis (0 until
// then), sharded to keep Submit, completions and Forget from contending on one lock. A completion is delivered
// only by the call that removes its ID, so a job answered both by a notification and by recovery is delivered
// once.
type pendingSet struct {
	seed   maphash.Seed
	shards [32]pendingShard
}

type pendingShard struct {
	sync.Mutex
	ids map[string]int64 // job ID -> unix nanoseconds when written to Redis, 0 before
}

func newPendingSet() *pendingSet {
	p := &pendingSet{seed: maphash.MakeSeed()}
	for i := range p.shards {
		p.shards[i].ids = make(map[string]int64)
	}
	return p
}

func (p *pendingSet) shard(id string) *pendingShard {
	return &p.shards[maphash.String(p.seed, id)%uint64(len(p.shards))]
}

func (p *pendingSet) add(id string) {
	s := p.shard(id)
	s.Lock()
	s.ids[id] = 0
	s.Unlock()
}

// markWritten records that the job's hash was written at t (if the job is still pending).
func (p *pendingSet) markWritten(id string, t int64) {
	s := p.shard(id)
	s.Lock()
	if _, ok := s.ids[id]; ok {
		s.ids[id] = t
	}
	s.Unlock()
}

// remove reports whether id was pending.
func (p *pendingSet) remove(id string) bool {
	s := p.shard(id)
	s.Lock()
	_, ok := s.ids[id]
	delete(s.ids, id)
	s.Unlock()
	return ok
}

// written returns the pending jobs whose hash was written before t.
func (p *pendingSet) written(before int64) []string {
	var out []string
	for i := range p.shards {
		s := &p.shards[i]
		s.Lock()
		for id, at := range s.ids {
			if at != 0 && at < before {
				out = append(out, id)
			}
		}
		s.Unlock()
	}
	return out
}

func (p *pendingSet) len() int {
	n := 0
	for i := range p.shards {
		s := &p.shards[i]
		s.Lock()
		n += len(s.ids)
		s.Unlock()
	}
	return n
}
