package actors

import (
	"encoding/json"
	"sync"
	"sync/atomic"

	"github.com/asynkron/protoactor-go/actor"
)

// Passivation: an idle session need not keep its actor. A session spawned with a Host stops its actor when
// asked (Sessions.Passivate), or as soon as it has answered a Quiet message, if it has nothing in flight (no
// pending job, no deferred hook) and its host agrees that no message for it is on its way; what it must keep (stash, rate-limit buckets) goes to the host
// as a SessionState, and the host starts it again with Resume before it sends the next message. An idle
// session then costs its host a pointer or two instead of an actor (PID, process registry entry, mailbox,
// context: about 600 bytes).
//
// Order: the host counts the messages it has sent and the session has not handled (the server's backlog),
// and agrees to a passivation only when that count is zero and no message came since it asked. Whatever it
// sends after agreeing goes to the actor Resume makes, so nothing is lost or reordered. Completions and
// deferred verdicts cannot be on their way: there are none without a pending job or a deferred hook.
//
// OpenedConnection runs once, when the connection's session first starts; FinishConnection once, when it
// ends: from the actor if one runs, else from Sessions.Finish. A respawn runs neither.

// Host keeps a session's state while the session has no actor; the server's per-connection state is one.
type Host interface {
	// Passivate is called by an idle session, on its actor's goroutine: asked by Sessions.Passivate, or after
	// answering a Quiet message. It returns true when no message for the session is on its way and the host will call Sessions.Resume with st before it sends the next one
	// (or Sessions.Finish when the connection closes); the actor then stops. It returns false to keep the
	// actor. st is nil when there is nothing to keep. It must not block.
	Passivate(st *SessionState) bool
}

// SessionState is what a passivated session keeps: its stash and rate-limit buckets (the connection and the
// host are the host's already). Nothing in it is for the host to read or change.
type SessionState struct {
	stash  map[string]json.RawMessage
	limits *sessionLimits
}

// SpawnHosted starts the session of a new connection, as Spawn does, with host to keep its state while it
// is passivated (see Sessions.Passivate).
func (s *Sessions) SpawnHosted(root *actor.RootContext, conn Conn, host Host) *actor.PID {
	pid := s.spawn(root)
	root.Send(pid, &attach{conn: conn, host: host})
	return pid
}

// Passivate asks the session at pid to stop its actor if it is idle (see Host); it does nothing to a busy
// session, or to one spawned without a host. It does not block.
func (s *Sessions) Passivate(root *actor.RootContext, pid *actor.PID) {
	root.Send(pid, passivateNow)
}

// Resume starts again the session of conn that passivated with st (nil if it kept nothing); the hooks of
// a new connection do not run. Send its messages to the PID it returns, after this call.
func (s *Sessions) Resume(root *actor.RootContext, conn Conn, host Host, st *SessionState) *actor.PID {
	s.passive.resumes.Add(1)
	s.passive.idle.Add(-1)
	pid := s.spawn(root)
	root.Send(pid, &attach{conn: conn, host: host, resumed: st, resume: true})
	return pid
}

// Finish ends the session of a closed connection that is passivated with st: it runs the FinishConnection
// hooks, on the caller's goroutine (they must not block, as everywhere).
func (s *Sessions) Finish(conn Conn, st *SessionState) {
	s.passive.idle.Add(-1)
	hs := s.cfg.Hooks.FinishConnection
	if len(hs) == 0 {
		return
	}
	var stash map[string]json.RawMessage
	if st != nil {
		stash = st.stash
	}
	if stash == nil {
		stash = make(map[string]json.RawMessage)
	}
	for _, h := range hs {
		h(conn, stash)
	}
}

// passivate asks a session to stop its actor if it is idle.
type passivate struct{}

var passivateNow = &passivate{}

// passivateIfIdle stops the actor of an idle session whose host agrees; it reports whether it did.
func (s *session) passivateIfIdle(ctx actor.Context) bool {
	if s.host == nil || s.passivated || s.npending > 0 || s.deferred > 0 {
		return false
	}
	var st *SessionState
	if s.stash != nil || s.limits != nil {
		st = &SessionState{stash: s.stash, limits: s.limits}
	}
	s.owner.passive.idle.Add(1) // before the host can resume it: the gauge never dips below zero
	if !s.host.Passivate(st) {
		s.owner.passive.idle.Add(-1)
		return false
	}
	s.passivated = true
	s.owner.passive.passivations.Add(1)
	s.stash, s.limits = nil, nil // the host's now
	ctx.Stop(ctx.Self())
	return true
}

// passiveStats counts passivations (see SessionStats).
type passiveStats struct {
	idle                  atomic.Int64
	passivations, resumes atomic.Uint64
}

// SessionStats are the counters of passivation.
type SessionStats struct {
	Passivated   int64  // sessions passivated now (their connections open, no actor)
	Passivations uint64 // sessions that stopped their actor while idle
	Resumes      uint64 // sessions started again by a message
}

// Stats reports the passivation counters.
func (s *Sessions) Stats() SessionStats {
	return SessionStats{Passivated: s.passive.idle.Load(), Passivations: s.passive.passivations.Load(),
		Resumes: s.passive.resumes.Load()}
}

// Actor IDs of passivated sessions are used again. protoactor's process registry spreads IDs over 1,024 × 32
// Go maps, and a map keeps its first slot group (~290 bytes) once an ID has hashed to it, since maps never
// shrink: fresh IDs for every respawn would soon touch all 32,768 of them (~9.4 MB). Reused, the IDs stay as
// few as the actors alive at once. An ID goes back only once its actor has stopped (actor.Stopped: the
// registry has let it go), and only from a passivated session, to which no message can be on its way (no
// job, no deferred hook); a sweep's stale request to passivate may reach the ID's next session, which
// passivates only if its own host agrees.
type idPool struct {
	mu  sync.Mutex
	ids []string
}

// maxPooledIDs bounds the pool; beyond it IDs are dropped (the registry's maps already hold that many).
const maxPooledIDs = 4096

func (p *idPool) get() (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.ids); n > 0 {
		id := p.ids[n-1]
		p.ids = p.ids[:n-1]
		return id, true
	}
	return "", false
}

func (p *idPool) put(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ids) < maxPooledIDs {
		p.ids = append(p.ids, id)
	}
}

// spawn starts a session actor, with a pooled ID if there is one.
func (s *Sessions) spawn(root *actor.RootContext) *actor.PID {
	if id, ok := s.ids.get(); ok {
		if pid, err := root.SpawnNamed(s.props, id); err == nil {
			return pid
		}
	}
	return root.Spawn(s.props)
}
