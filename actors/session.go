package actors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// Conn is the client connection as a session sees it. transport.Conn satisfies it.
type Conn interface {
	// Send queues one text message; it must not block.
	Send(msg []byte) error
	// Close closes the connection with a WebSocket close code; it must not block.
	Close(code uint16, reason string) error
}

// Submitter queues jobs; redisq.Client satisfies it through the server's adapter. Submit must not block: the
// outcome arrives later through Registry.Complete.
type Submitter interface {
	Submit(jobID, method string, params []byte) error
}

// Close codes a session uses.
const (
	closeInternalError uint16 = 1011
)

// SessionConfig is shared, read-only, by every session of a gateway.
type SessionConfig struct {
	// Actions the clients may call; required.
	Actions *Actions
	// Registry correlates completions and timeouts; required.
	Registry *Registry
	// Submitter queues jobs of actions that have none of their own; required.
	Submitter Submitter
	// NewJobID returns a unique job ID; required (redisq.NewID).
	NewJobID func() string
	// Timeout is the default time to wait for a result (QUEUE_TIMEOUT); 0 means 300 s.
	Timeout time.Duration
	// MaxInFlight bounds the requests of one connection that wait for a result; 0 means 100. A request beyond
	// it is answered RateLimit at once.
	MaxInFlight int
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Validate reports a configuration error.
func (c *SessionConfig) Validate() error {
	switch {
	case c.Actions == nil:
		return errors.New("actors: SessionConfig.Actions is required")
	case c.Registry == nil:
		return errors.New("actors: SessionConfig.Registry is required")
	case c.Submitter == nil:
		return errors.New("actors: SessionConfig.Submitter is required")
	case c.NewJobID == nil:
		return errors.New("actors: SessionConfig.NewJobID is required")
	case c.Timeout < 0 || c.MaxInFlight < 0:
		return errors.New("actors: SessionConfig.Timeout and MaxInFlight must not be negative")
	}
	return nil
}

// Sessions spawns session actors that share one configuration.
type Sessions struct {
	cfg   SessionConfig
	props *actor.Props
}

// NewSessions checks cfg and returns a session factory.
func NewSessions(cfg SessionConfig) (*Sessions, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 300 * time.Second
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 100
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Sessions{cfg: cfg}
	// One Props for all sessions (each actor keeps a reference to its Props): the connection arrives in the
	// session's first message instead of being captured by a per-connection producer.
	// The lock-free mailbox costs ~200 bytes less per session than the default ring-buffer one; a session sees
	// few messages, so its lower peak throughput does not matter.
	s.props = actor.PropsFromProducer(func() actor.Actor { return &session{cfg: &s.cfg} },
		actor.WithMailbox(actor.UnboundedLockfree()))
	return s, nil
}

// Spawn starts the session of a new connection. Send it Inbound messages; stop it (root.Stop) when the
// connection closes.
func (s *Sessions) Spawn(root *actor.RootContext, conn Conn) *actor.PID {
	pid := root.Spawn(s.props)
	root.Send(pid, &attach{conn: conn})
	return pid
}

// session is the actor of one connection.
type session struct {
	cfg     *SessionConfig
	conn    Conn
	pending map[string]*request // job ID -> the request that waits for it
	stash   map[string]json.RawMessage
}

func (s *session) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *Inbound:
		if m.Binary {
			details, _ := json.Marshal(map[string]string{"error": "binary frames are not supported"})
			s.replyError(msgTypeError, BadRequest, details, nil)
			return
		}
		s.handleRequest(ctx, m.Data)
	case *jobDone:
		if r := s.take(m.jobID); r != nil {
			s.handleOutcome(r, m.outcome)
		}
	case *jobTimedOut:
		if r := s.take(m.jobID); r != nil {
			s.replyError(r.action.msgType(), RequestTimeout, nil, r)
		}
	case *attach:
		s.conn = m.conn
	case *actor.Stopping:
		if len(s.pending) > 0 {
			ids := make([]string, 0, len(s.pending))
			for id := range s.pending {
				ids = append(ids, id)
			}
			s.cfg.Registry.forget(ctx, ids...)
			s.pending = nil
		}
		if s.conn != nil { // a no-op when the connection closed first; otherwise the session failed
			_ = s.conn.Close(closeInternalError, "session ended")
		}
	}
}

func (s *session) take(jobID string) *request {
	r := s.pending[jobID]
	if r != nil {
		delete(s.pending, jobID)
		if len(s.pending) == 0 {
			s.pending = nil // an idle session holds no map (a map never shrinks)
		}
	}
	return r
}

func (s *session) send(msg []byte) {
	if err := s.conn.Send(msg); err != nil {
		s.cfg.Logger.Debug("send failed", "err", err)
	}
}

func (s *session) replyError(msgType string, code ErrorCode, details json.RawMessage, r *request) {
	s.send(appendError(nil, msgType, string(code), code.Message(), details, r))
}

func (s *session) handleRequest(ctx actor.Context, data []byte) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		var r *request
		if json.Valid(data) { // valid JSON, but not an object: echo it
			r = &request{echo: data}
		}
		reason := "the request is not a JSON object"
		if r == nil {
			reason = fmt.Sprintf("invalid JSON: %v", err)
		}
		details, _ := json.Marshal(map[string]string{"error": reason})
		s.replyError(msgTypeError, BadRequest, details, r)
		return
	}
	r := &request{echo: data, reqID: fields["req_id"], passthrough: fields["passthrough"]}
	r.action = s.cfg.Actions.pick(func(yield func(string) bool) {
		for k := range fields {
			if !yield(k) {
				return
			}
		}
	})
	if r.action == nil {
		s.replyError(msgTypeError, UnrecognisedRequest, nil, r)
		return
	}
	if len(s.pending) >= s.cfg.MaxInFlight {
		details, _ := json.Marshal(map[string]int{"max_in_flight": s.cfg.MaxInFlight})
		s.replyError(r.action.msgType(), RateLimit, details, r)
		return
	}
	s.submit(ctx, r)
}

// submit registers the job, then queues it: registering first means a fast worker's completion always finds
// the job in the registry.
func (s *session) submit(ctx actor.Context, r *request) {
	a := r.action
	params := s.params(r)
	id := s.cfg.NewJobID()
	timeout := a.Timeout
	if timeout == 0 {
		timeout = s.cfg.Timeout
	}
	reg := s.cfg.Registry
	reg.register(ctx, id, ctx.Self(), reg.deadline(timeout))
	sub := a.Submitter
	if sub == nil {
		sub = s.cfg.Submitter
	}
	if err := sub.Submit(id, a.Name, params); err != nil {
		reg.forget(ctx, id)
		s.cfg.Logger.Warn("submit failed", "action", a.Name, "err", err)
		s.replyError(a.msgType(), WrongResponse, nil, r)
		return
	}
	if s.pending == nil {
		s.pending = make(map[string]*request)
	}
	s.pending[id] = r
}

// params builds the job's params: {"args": <request>, <stash param>: <value>, ...}.
func (s *session) params(r *request) []byte {
	buf := make([]byte, 0, len(r.echo)+16)
	buf = append(buf, `{"args":`...)
	buf = append(buf, r.echo...)
	for _, k := range r.action.StashParams {
		if v, ok := s.stash[k]; ok {
			buf = append(buf, ',')
			buf = appendString(buf, k)
			buf = append(buf, ':')
			buf = append(buf, v...)
		}
	}
	return append(buf, '}')
}

// handleOutcome answers a request from its job's outcome.
func (s *session) handleOutcome(r *request, o JobOutcome) {
	mt := r.action.msgType()
	if o.Err != nil {
		s.cfg.Logger.Debug("job failed", "action", r.action.Name, "err", o.Err)
		s.replyError(mt, WrongResponse, nil, r)
		return
	}
	var env struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(o.Payload, &env); err != nil || env.Result == nil {
		s.cfg.Logger.Debug("result is not an RPC envelope", "action", r.action.Name, "err", err)
		s.replyError(mt, WrongResponse, nil, r)
		return
	}
	result := env.Result
	if t := bytes.TrimSpace(result); len(t) > 0 && t[0] == '{' {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(t, &obj); err != nil {
			s.replyError(mt, WrongResponse, nil, r)
			return
		}
		if e, ok := obj["error"]; ok {
			s.replyRPCError(mt, e, r)
			return
		}
		if st, ok := obj["stash"]; ok {
			s.mergeStash(st)
			delete(obj, "stash")
			result, _ = json.Marshal(obj)
		}
		if st, ok := obj["status"]; ok && len(obj) == 1 {
			result = st
		}
	}
	s.send(appendSuccess(nil, mt, result, r))
}

// replyRPCError answers with an RPC-level error: {code, message_to_client, details} from the worker.
func (s *session) replyRPCError(msgType string, raw json.RawMessage, r *request) {
	var e struct {
		Code            string          `json:"code"`
		MessageToClient string          `json:"message_to_client"`
		Details         json.RawMessage `json:"details"`
	}
	if err := json.Unmarshal(raw, &e); err != nil || e.Code == "" {
		s.replyError(msgType, WrongResponse, nil, r)
		return
	}
	s.send(appendError(nil, msgType, e.Code, e.MessageToClient, e.Details, r))
}

// mergeStash merges a result's `stash` object into the connection's stash.
func (s *session) mergeStash(raw json.RawMessage) {
	var st map[string]json.RawMessage
	if err := json.Unmarshal(raw, &st); err != nil {
		s.cfg.Logger.Debug("result stash is not an object", "err", err)
		return
	}
	if s.stash == nil {
		s.stash = make(map[string]json.RawMessage, len(st))
	}
	for k, v := range st {
		s.stash[k] = v
	}
}
