package redisq

import (
	"hash/maphash"
	"sync"
)

// pendingSet is the set of job IDs a client waits for, sharded to keep Submit, completions and Forget from
// contending on one lock. A completion is delivered only by the call that removes its ID, so a job answered
// both by a notification and by recovery is delivered once.
type pendingSet struct {
	seed   maphash.Seed
	shards [32]struct {
		sync.Mutex
		ids map[string]struct{}
	}
}

func newPendingSet() *pendingSet {
	p := &pendingSet{seed: maphash.MakeSeed()}
	for i := range p.shards {
		p.shards[i].ids = make(map[string]struct{})
	}
	return p
}

func (p *pendingSet) shard(id string) *struct {
	sync.Mutex
	ids map[string]struct{}
} {
	return &p.shards[maphash.String(p.seed, id)%uint64(len(p.shards))]
}

func (p *pendingSet) add(id string) {
	s := p.shard(id)
	s.Lock()
	s.ids[id] = struct{}{}
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

func (p *pendingSet) has(id string) bool {
	s := p.shard(id)
	s.Lock()
	_, ok := s.ids[id]
	s.Unlock()
	return ok
}

func (p *pendingSet) snapshot() []string {
	var out []string
	for i := range p.shards {
		s := &p.shards[i]
		s.Lock()
		for id := range s.ids {
			out = append(out, id)
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
