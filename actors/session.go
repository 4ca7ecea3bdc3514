package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/wsgate/wsgate/internal/jsonscan"
	"github.com/wsgate/wsgate/internal/rpcenvelope"
)

// ConnInfo is what hooks see of a connection (Request.Conn and the connection hooks): which one it is and
// where it comes from. transport.Conn satisfies it.
type ConnInfo interface {
	// ID identifies the connection within the gateway process; logs show it as conn_id.
	ID() uint64
	// RemoteAddr is the client's address.
	RemoteAddr() netip.AddrPort
}

// Conn is the client connection as a session sees it. transport.Conn satisfies it.
type Conn interface {
	ConnInfo
	// Send queues one text message; it must not block.
	Send(msg []byte) error
	// SendBinary queues one binary message; it must not block.
	SendBinary(msg []byte) error
	// Close closes the connection with a WebSocket close code; it must not block.
	Close(code uint16, reason string) error
}

// Submitter queues jobs; the server adapts redisq.Client to it. Submit must not block: the outcome arrives
// later through Registry.Complete.
type Submitter interface {
	Submit(jobID, method string, params []byte) error
}

// Observer receives a session's events, for metrics. It must be safe for concurrent use and fast.
type Observer interface {
	// RequestDone is called once per answered request with the action ("" if none was chosen), the outcome
	// (see the Outcome constants) and the time from the request's arrival to its reply.
	RequestDone(action string, outcome string, d time.Duration)
}

// Outcomes reported to an Observer.
const (
	OutcomeOK         = "ok"
	OutcomeRPCError   = "rpc_error"
	OutcomeLocal      = "local" // answered by a hook
	OutcomeTimeout    = "timeout"
	OutcomeFailure    = "wrong_response"
	OutcomeRateLimit  = "rate_limit"
	OutcomeBadRequest = "bad_request"
	OutcomeTooLarge   = "too_large"
	OutcomeDraining   = "draining" // refused with ServiceUnavailable: the gateway is stopping
)

// closeInternalError is the close code of a session that failed.
const closeInternalError uint16 = 1011

// DefaultTimeout is how long a job's result is awaited when nothing else says, as in the Perl JobAsync backend
// (its QUEUE_TIMEOUT default).
const DefaultTimeout = 300 * time.Second

// DefaultMaxResponseSize is the reply size above which ResponseTooLarge is sent, as in the Perl API.
const DefaultMaxResponseSize = 328000

// MinMaxResponseSize is the smallest MaxResponseSize allowed: room for any gateway error with its details.
const MinMaxResponseSize = 256

// SessionConfig is shared, read-only, by every session of a gateway. Each field's zero value means the default
// named in its comment.
type SessionConfig struct {
	// Actions the clients may call; required.
	Actions *Actions
	// Registry correlates completions and timeouts; required.
	Registry *Registry
	// Submitter queues jobs of actions that have none of their own; required.
	Submitter Submitter
	// NewJobID returns a unique job ID; required (redisq.NewID).
	NewJobID func() string
	// Timeout is the default time to wait for a result (QUEUE_TIMEOUT); 0 means DefaultTimeout.
	Timeout time.Duration
	// MaxInFlight bounds the requests of one connection that wait for a result (or a deferred hook); 0 means
	// 100. A request beyond it is answered RateLimit at once.
	MaxInFlight int
	// RateLimit, if set, is a connection-wide token bucket for requests; beyond it: RateLimit.
	RateLimit *Rate
	// MaxResponseSize bounds every encoded reply; 0 means DefaultMaxResponseSize, else at least
	// MinMaxResponseSize. A bigger success becomes ResponseTooLarge; a bigger error first drops echo_req, then
	// passthrough, then req_id (see metaLevel), and becomes ResponseTooLarge only if still too big.
	MaxResponseSize int
	// Sanity checks requests (SanityCheckFailed); nil means DefaultSanityCheck(). Set DisableSanityCheck to skip.
	Sanity             *SanityCheck
	DisableSanityCheck bool
	// Hooks are the extension points; the zero value has none.
	Hooks Hooks
	// Observer receives request outcomes (metrics); optional.
	Observer Observer
	// Dispatcher runs the sessions' mailboxes; nil means protoactor's default (a goroutine per mailbox run).
	Dispatcher actor.Dispatcher
	// Logger; nil means slog.Default(). Request-level logs are at Debug.
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
	case c.Timeout < 0 || c.MaxInFlight < 0 || c.MaxResponseSize < 0:
		return errors.New("actors: SessionConfig.Timeout, MaxInFlight and MaxResponseSize must not be negative")
	case c.MaxResponseSize > 0 && c.MaxResponseSize < MinMaxResponseSize:
		return fmt.Errorf("actors: SessionConfig.MaxResponseSize must be 0 or at least %d", MinMaxResponseSize)
	}
	if c.RateLimit != nil {
		return c.RateLimit.Validate()
	}
	return nil
}

// Sessions spawns session actors that share one configuration.
type Sessions struct {
	cfg   SessionConfig
	props *actor.Props
	later sync.WaitGroup // goroutines running deferred hooks
	gate  *drainGate     // counts taken requests; refuses new ones once draining

	submitWarn logLimit // "submit failed": one line per second at most
	passive    passiveStats
	ids        idPool // actor IDs of passivated sessions, to be used again
}

// NewSessions checks cfg and returns a session factory.
func NewSessions(cfg SessionConfig) (*Sessions, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 100
	}
	if cfg.MaxResponseSize == 0 {
		cfg.MaxResponseSize = DefaultMaxResponseSize
	}
	if cfg.Sanity == nil && !cfg.DisableSanityCheck {
		cfg.Sanity = DefaultSanityCheck()
	}
	if cfg.DisableSanityCheck {
		cfg.Sanity = nil
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Sessions{cfg: cfg, gate: newDrainGate(), submitWarn: logLimit{interval: time.Second}}
	// One Props for all sessions (each actor keeps a reference to its Props): the connection arrives in the
	// session's first message instead of being captured by a per-connection producer. The lock-free mailbox
	// costs ~200 bytes less per session than the default ring-buffer one; a session sees few messages, so its
	// lower peak throughput does not matter.
	opts := []actor.PropsOption{actor.WithMailbox(actor.UnboundedLockfree())}
	if cfg.Dispatcher != nil {
		opts = append(opts, actor.WithDispatcher(cfg.Dispatcher))
	}
	s.props = actor.PropsFromProducer(func() actor.Actor { return &session{owner: s, cfg: &s.cfg} }, opts...)
	return s, nil
}

// Spawn starts the session of a new connection (which hooks see as a ConnInfo). Send it Inbound messages;
// stop it (root.Stop) when the connection closes.
func (s *Sessions) Spawn(root *actor.RootContext, conn Conn) *actor.PID {
	pid := root.Spawn(s.props)
	root.Send(pid, &attach{conn: conn})
	return pid
}

// Shutdown waits for the goroutines of deferred hooks, or for ctx (call it after the sessions have stopped:
// their end cancels the hooks' context). Safe to call twice.
func (s *Sessions) Shutdown(ctx context.Context) error {
	return awaitStopped(ctx, closeWhenDone(&s.later), "deferred hooks still running")
}

// session is the actor of one connection.
type session struct {
	owner    *Sessions
	cfg      *SessionConfig
	conn     Conn
	pending  *Request // the newest request whose job is pending (a list through Request.older/newer)
	npending int
	deferred int // requests waiting for a deferred hook
	stash    map[string]json.RawMessage
	limits   *sessionLimits
	cancel   context.CancelFunc // ends the context of deferred hooks
	ctx      context.Context

	host       Host // keeps the state while the session is passivated; nil: never passivates
	passivated bool // the actor stops because the session passivated (not because it ended)
	eager      bool // the last message was Quiet: passivate as soon as idle
}

// sessionLimits are a connection's token buckets, allocated on its first request when limits are configured.
type sessionLimits struct {
	conn      bucket
	perAction map[*Action]*bucket
}

func (s *session) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *Inbound:
		s.handleInbound(ctx, m)
		if m.Done != nil {
			m.Done.Handled()
		}
		if s.eager = m.Quiet; s.eager {
			s.passivateIfIdle(ctx)
		}
	case *pendingJob: // the registry's answer: the job's outcome, or its deadline passed first
		if r := m.req; s.take(r) {
			if m.timedOut {
				s.failed(r, errTimeout)
				s.replyError(r, r.Action.msgType(), string(RequestTimeout), RequestTimeout.Message(), nil, OutcomeTimeout)
			} else {
				s.handleOutcome(r, m.outcome)
			}
		}
		if s.eager {
			s.passivateIfIdle(ctx)
		}
	case *verdictLater:
		s.deferred--
		if m.insteadOf {
			s.applyInsteadOf(ctx, m.r, m.v)
		} else {
			s.forwardFrom(ctx, m.r, m.v)
		}
		if s.eager {
			s.passivateIfIdle(ctx)
		}
	case *attach:
		s.conn, s.host = m.conn, m.host
		if m.resume { // the same connection's session again, after a passivation: not a new connection
			if m.resumed != nil {
				s.stash, s.limits = m.resumed.stash, m.resumed.limits
			}
			return
		}
		if hs := s.cfg.Hooks.OpenedConnection; len(hs) > 0 {
			for _, h := range hs {
				h(s.conn, s.ensureStash())
			}
		}
	case *passivate:
		s.passivateIfIdle(ctx)
	case *actor.Stopped:
		if s.passivated { // the registry has let the ID go, and nothing can be on its way to it
			s.owner.ids.put(ctx.Self().Id)
		}
	case *actor.Stopping:
		if s.cancel != nil {
			s.cancel()
		}
		if s.passivated { // idle: nothing to forget or answer; the connection and its hooks go on
			return
		}
		if ids := s.pendingJobIDs(); len(ids) > 0 {
			s.cfg.Registry.forget(ctx, ids...)
		}
		if n := s.npending + s.deferred; n > 0 { // taken, and never to be answered: the drain must not wait
			s.owner.gate.done(int64(n))
		}
		s.pending, s.npending = nil, 0
		for _, h := range s.cfg.Hooks.FinishConnection {
			h(s.conn, s.ensureStash())
		}
		if s.conn != nil { // a no-op when the connection closed first; otherwise the session failed
			_ = s.conn.Close(closeInternalError, "session ended")
		}
	}
}

var errTimeout = errors.New("actors: no result within the timeout")

func (s *session) ensureStash() map[string]json.RawMessage {
	if s.stash == nil {
		s.stash = make(map[string]json.RawMessage)
	}
	return s.stash
}

// wait adds r, whose job was just submitted, to the pending requests.
func (s *session) wait(r *Request) {
	r.waiting, r.older, r.newer = true, s.pending, nil
	if s.pending != nil {
		s.pending.newer = r
	}
	s.pending = r
	s.npending++
}

// take removes r from the pending requests, and reports whether it was pending (a registry answer for a
// request that is not could only follow a duplicate job ID).
func (s *session) take(r *Request) bool {
	if r == nil || !r.waiting {
		return false
	}
	if r.older != nil {
		r.older.newer = r.newer
	}
	if r.newer != nil {
		r.newer.older = r.older
	} else {
		s.pending = r.older
	}
	r.waiting, r.older, r.newer = false, nil, nil
	s.npending--
	return true
}

// pendingJobIDs lists the jobs of the pending requests.
func (s *session) pendingJobIDs() []string {
	if s.npending == 0 {
		return nil
	}
	ids := make([]string, 0, s.npending)
	for r := s.pending; r != nil; r = r.older {
		ids = append(ids, r.jobID)
	}
	return ids
}

// send runs the reply hooks, enforces the size limit and queues the reply. r is nil for replies to requests
// that could not be parsed.
func (s *session) send(r *Request, msg []byte, action, outcome string) {
	if hs := s.cfg.Hooks.BeforeSendAPIResponse; len(hs) > 0 {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(msg, &obj); err == nil {
			for _, h := range hs {
				h(r, obj)
			}
			if edited, err := json.Marshal(obj); err == nil {
				msg = edited
			}
		}
	}
	if len(msg) > s.cfg.MaxResponseSize {
		msg, outcome = s.tooLarge(r, len(msg)), OutcomeTooLarge
	}
	if err := s.conn.Send(msg); err != nil {
		s.logRequest(slog.LevelDebug, r, "send failed", "err", err)
	}
	if r != nil && r.admitted { // after the Send: a drain that sees zero finds every reply queued
		r.admitted = false
		s.owner.gate.done(1)
	}
	for _, h := range s.cfg.Hooks.AfterSentAPIResponse {
		h(r, msg)
	}
	var d time.Duration
	if r != nil && r.started != 0 {
		d = time.Duration(time.Now().UnixNano() - r.started)
	}
	if s.cfg.Observer != nil {
		s.cfg.Observer.RequestDone(action, outcome, d)
	}
	if s.debug() { // checked first: building the arguments would cost every request an allocation
		s.logRequest(slog.LevelDebug, r, "request answered", "action", action, "outcome", outcome,
			"duration_ms", milliseconds(d), "bytes", len(msg))
	}
}

// replyError sends an error, with as much of the request (echo_req, passthrough, req_id) as max_response_size
// allows; an error too large even without them (a worker's huge details) becomes ResponseTooLarge.
func (s *session) replyError(r *Request, msgType, code, message string, details json.RawMessage, outcome string) {
	action := ""
	if r != nil && r.Action != nil {
		action = r.Action.Name
	}
	msg, size := appendFittedError(msgType, code, message, details, r, s.cfg.MaxResponseSize)
	if msg == nil {
		msg, outcome = s.tooLarge(r, size), OutcomeTooLarge
	}
	s.send(r, msg, action, outcome)
}

// tooLarge is the ResponseTooLarge reply to r, whose reply would have been size bytes. It always fits:
// MaxResponseSize is at least MinMaxResponseSize.
func (s *session) tooLarge(r *Request, size int) []byte {
	details, _ := json.Marshal(map[string]int{"size": size, "max_response_size": s.cfg.MaxResponseSize})
	msg, _ := appendFittedError(msgTypeError, string(ResponseTooLarge), ResponseTooLarge.Message(), details, r,
		s.cfg.MaxResponseSize)
	if msg == nil { // unreachable with a valid config; never send more than the limit
		msg, _ = appendFittedError(msgTypeError, string(ResponseTooLarge), ResponseTooLarge.Message(), nil, nil, 1<<20)
	}
	return msg
}

func (s *session) replyCode(r *Request, msgType string, code ErrorCode, details json.RawMessage, outcome string) {
	s.replyError(r, msgType, string(code), code.Message(), details, outcome)
}

func detailsOf(reason string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"error": reason})
	return b
}

func (s *session) handleInbound(ctx actor.Context, m *Inbound) {
	now := time.Now().UnixNano()
	switch {
	case m.Binary:
		if h := s.cfg.Hooks.BinaryFrame; h != nil {
			if out := h(s.conn, s.ensureStash(), m.Data); out != nil {
				_ = s.conn.SendBinary(out)
			}
			return
		}
		s.replyCode(&Request{started: now}, msgTypeError, BadRequest, detailsOf("binary frames are not supported"), OutcomeBadRequest)
		return
	case m.InvalidUTF8:
		s.replyCode(&Request{started: now}, msgTypeError, BadRequest, detailsOf("the message is not valid UTF-8"), OutcomeBadRequest)
		return
	}
	data := m.Data
	fields, err := decodeRequest(data)
	if err != nil {
		r := &Request{started: now}
		reason := "the request is not a JSON object"
		if json.Valid(data) {
			r.echo = data // valid JSON, but not an object: echo it
		} else {
			reason = fmt.Sprintf("invalid JSON: %v", err)
		}
		s.replyCode(r, msgTypeError, BadRequest, detailsOf(reason), OutcomeBadRequest)
		return
	}
	r := &Request{Fields: fields, echo: data, reqID: fields["req_id"], passthrough: fields["passthrough"],
		Conn: s.conn, started: now}
	if !s.owner.gate.admit() {
		mt := msgTypeError
		if r.Action = s.cfg.Actions.pick(fields); r.Action != nil {
			mt = r.Action.msgType()
		}
		s.replyCode(r, mt, ServiceUnavailable, nil, OutcomeDraining)
		return
	}
	r.admitted = true // from here on, exactly one reply (send) or the session's end uncounts it
	if s.cfg.Sanity != nil {
		if bad, ok := s.cfg.Sanity.check(fields); !ok {
			s.logRequest(slog.LevelDebug, r, "sanity check failed", "key", bad)
			s.replyCode(r, msgTypeError, SanityCheckFailed, nil, OutcomeBadRequest)
			return
		}
	}
	r.Action = s.cfg.Actions.pick(fields)
	if r.Action == nil {
		s.replyCode(r, msgTypeError, UnrecognisedRequest, nil, OutcomeBadRequest)
		return
	}
	if !s.allow(r.Action) {
		mt := r.Action.msgType()
		s.replyError(r, mt, string(RateLimit), fmt.Sprintf("You have reached the rate limit for %s.", mt), nil, OutcomeRateLimit)
		return
	}
	if s.npending+s.deferred >= s.cfg.MaxInFlight {
		details, _ := json.Marshal(map[string]int{"max_in_flight": s.cfg.MaxInFlight})
		mt := r.Action.msgType()
		s.replyError(r, mt, string(RateLimit), fmt.Sprintf("You have reached the rate limit for %s.", mt), details, OutcomeRateLimit)
		return
	}
	if s.stash != nil || len(s.cfg.Hooks.BeforeForward) > 0 || len(s.cfg.Hooks.BeforeCall) > 0 ||
		r.Action.InsteadOfForward != nil {
		r.Stash = s.ensureStash()
	}
	s.forwardFrom(ctx, r, Continue)
}

// errNotObject: the request is valid JSON but not an object.
var errNotObject = errors.New("not a JSON object")

// decodeRequest returns the top-level members of a request, which must be a JSON object. It is encoding/json's
// map decode in one pass and three allocations (the map, its slots, one string holding every key): the
// values are slices of data (which the session owns; hooks treat Fields as read-only), and a key is decoded
// by encoding/json only when it has escapes or non-ASCII bytes. Later duplicates win, as with encoding/json.
func decodeRequest(data []byte) (map[string]json.RawMessage, error) {
	if !json.Valid(data) {
		var v any // rare: encoding/json says what is wrong
		err := json.Unmarshal(data, &v)
		if err == nil {
			err = errNotObject
		}
		return nil, err
	}
	var keys string // every plain key is a substring of one copy of the request
	fields := make(map[string]json.RawMessage, 8)
	isObject := jsonscan.Members(data, func(m jsonscan.Member) bool {
		var key string
		if m.Plain {
			if keys == "" {
				keys = string(data)
			}
			key = keys[m.KeyStart:m.KeyEnd]
		} else {
			key = unquote(data[m.KeyStart-1 : m.KeyEnd+1])
		}
		fields[key] = data[m.ValStart:m.ValEnd:m.ValEnd]
		return true
	})
	if !isObject {
		return nil, errNotObject
	}
	return fields, nil
}

// unquote decodes a JSON string that is known to be valid.
func unquote(quoted []byte) string {
	var s string
	_ = json.Unmarshal(quoted, &s)
	return s
}

// allow applies the connection's and the action's token buckets.
func (s *session) allow(a *Action) bool {
	if s.cfg.RateLimit == nil && a.RateLimit == nil {
		return true
	}
	if s.limits == nil {
		s.limits = &sessionLimits{}
	}
	now := time.Now()
	if s.cfg.RateLimit != nil && !s.limits.conn.allow(*s.cfg.RateLimit, now) {
		return false
	}
	if a.RateLimit != nil {
		if s.limits.perAction == nil {
			s.limits.perAction = make(map[*Action]*bucket)
		}
		b := s.limits.perAction[a]
		if b == nil {
			b = &bucket{}
			s.limits.perAction[a] = b
		}
		return b.allow(*a.RateLimit, now)
	}
	return true
}

// forwardFrom applies v (the verdict of the BeforeForward hook before r.hookAt), runs the remaining
// BeforeForward hooks, and then serves or forwards the request.
func (s *session) forwardFrom(ctx actor.Context, r *Request, v Verdict) {
	for {
		if v.Reply != nil {
			s.answer(r, v.Reply)
			return
		}
		if v.Later != nil {
			s.deferVerdict(ctx, r, v.Later, false)
			return
		}
		hs := s.cfg.Hooks.BeforeForward
		if r.hookAt >= len(hs) {
			break
		}
		h := hs[r.hookAt]
		r.hookAt++
		v = h(r)
	}
	if f := r.Action.InsteadOfForward; f != nil {
		s.applyInsteadOf(ctx, r, f(r))
		return
	}
	s.submit(ctx, r)
}

func (s *session) applyInsteadOf(ctx actor.Context, r *Request, v Verdict) {
	switch {
	case v.Reply != nil:
		s.answer(r, v.Reply)
	case v.Later != nil:
		s.deferVerdict(ctx, r, v.Later, true)
	default:
		s.submit(ctx, r)
	}
}

// deferVerdict runs a hook's slow part on a goroutine and brings its verdict back as a message.
func (s *session) deferVerdict(ctx actor.Context, r *Request, later func(context.Context) Verdict, insteadOf bool) {
	if s.ctx == nil {
		s.ctx, s.cancel = context.WithCancel(context.Background())
	}
	s.deferred++
	self, root, hctx := ctx.Self(), ctx.ActorSystem().Root, s.ctx
	s.owner.later.Add(1)
	go func() {
		defer s.owner.later.Done()
		v := later(hctx)
		root.Send(self, &verdictLater{r: r, v: v, insteadOf: insteadOf})
	}()
}

// answer sends a hook's reply.
func (s *session) answer(r *Request, reply *Reply) {
	mt := r.Action.msgType()
	if reply.Error != nil {
		s.replyError(r, mt, reply.Error.Code, reply.Error.Message, reply.Error.Details, OutcomeLocal)
		return
	}
	result := reply.Result
	if result == nil {
		result = json.RawMessage("null")
	}
	s.send(r, appendSuccess(nil, mt, result, r), r.Action.Name, OutcomeLocal)
}

// submit registers the job, then queues it: registering first means a fast worker's completion always finds
// the job in the registry.
func (s *session) submit(ctx actor.Context, r *Request) {
	a := r.Action
	for _, h := range s.cfg.Hooks.BeforeCall {
		h(r)
	}
	params := s.params(r)
	id := s.cfg.NewJobID()
	r.jobID = id
	timeout := a.Timeout
	if timeout == 0 {
		timeout = s.cfg.Timeout
	}
	reg := s.cfg.Registry
	reg.register(ctx, id, ctx.Self(), r, reg.deadline(timeout))
	sub := a.Submitter
	if sub == nil {
		sub = s.cfg.Submitter
	}
	if err := sub.Submit(id, a.Name, params); err != nil {
		reg.forget(ctx, id)
		if suppressed, ok := s.owner.submitWarn.allow(time.Now()); ok { // a Redis outage fails every request
			s.logRequest(slog.LevelWarn, r, "submit failed", "action", a.Name, "err", err,
				"suppressed_since_last", suppressed)
		}
		s.failed(r, err)
		s.replyCode(r, a.msgType(), WrongResponse, nil, OutcomeFailure)
		return
	}
	s.wait(r)
	if s.debug() {
		s.logRequest(slog.LevelDebug, r, "job submitted", "action", a.Name, "timeout_ms", timeout.Milliseconds())
	}
	for _, h := range s.cfg.Hooks.AfterForward {
		h(r)
	}
}

// params builds the job's params: {"args": <request>, <stash param>: <value>, ..., <hook params>...}.
func (s *session) params(r *Request) []byte {
	buf := make([]byte, 0, len(r.echo)+16)
	buf = append(buf, `{"args":`...)
	buf = append(buf, r.echo...)
	for _, k := range r.Action.StashParams {
		if v, ok := s.stash[k]; ok {
			buf = appendMember(buf, k, v)
		}
	}
	for k, v := range r.Params {
		buf = appendMember(buf, k, v)
	}
	return append(buf, '}')
}

func appendMember(buf []byte, k string, v json.RawMessage) []byte {
	buf = append(buf, ',')
	buf = appendString(buf, k)
	buf = append(buf, ':')
	return append(buf, v...)
}

func (s *session) failed(r *Request, err error) {
	for _, h := range s.cfg.Hooks.RPCFailure {
		h(r, err)
	}
}

// handleOutcome answers a request from its job's outcome.
func (s *session) handleOutcome(r *Request, o JobOutcome) {
	for _, h := range s.cfg.Hooks.AfterGotRPCResponse {
		h(r, o)
	}
	mt := r.Action.msgType()
	if o.Err != nil {
		s.logRequest(slog.LevelDebug, r, "job failed", "action", r.Action.Name, "err", o.Err)
		s.failed(r, o.Err)
		s.replyCode(r, mt, WrongResponse, nil, OutcomeFailure)
		return
	}
	result, err := rpcenvelope.Result(o.Payload)
	if errors.Is(err, rpcenvelope.ErrNoResult) && !r.Action.RequireResult {
		// an envelope without a result ({"success":0,"error":...}): null, as the Perl backend
		result, err = json.RawMessage("null"), nil
	}
	if err != nil {
		s.logRequest(slog.LevelDebug, r, "result is not an RPC envelope", "action", r.Action.Name, "err", err)
		s.failed(r, fmt.Errorf("actors: result is not an RPC envelope: %w", err))
		s.replyCode(r, mt, WrongResponse, nil, OutcomeFailure)
		return
	}
	if t := bytes.TrimSpace(result); len(t) > 0 && t[0] == '{' {
		// The members that matter (error, stash, status), found in one pass: result is valid JSON, a member of
		// an envelope that rpcenvelope checked.
		var rpcErr, status json.RawMessage
		stash, others := false, false
		jsonscan.Members(t, func(m jsonscan.Member) bool {
			key := string(t[m.KeyStart:m.KeyEnd]) // compared, never kept: no allocation
			if !m.Plain {
				key = unquote(t[m.KeyStart-1 : m.KeyEnd+1])
			}
			switch key {
			case "error":
				rpcErr = t[m.ValStart:m.ValEnd]
			case "stash":
				stash = true
			case "status":
				status = t[m.ValStart:m.ValEnd]
			default:
				others = true
			}
			return true
		})
		switch {
		case rpcErr != nil:
			s.replyRPCError(r, mt, rpcErr)
			return
		case stash: // rare (a login): the stash leaves the result, which is encoded again
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(t, &obj); err != nil {
				s.replyCode(r, mt, WrongResponse, nil, OutcomeFailure)
				return
			}
			s.resultStash(r, obj["stash"])
			delete(obj, "stash")
			result, _ = json.Marshal(obj)
			if st, ok := obj["status"]; ok && len(obj) == 1 {
				result = st
			}
		case status != nil && !others:
			result = status
		}
	}
	s.send(r, appendSuccess(nil, mt, result, r), r.Action.Name, OutcomeOK)
}

// replyRPCError answers with an RPC-level error: {code, message_to_client, details} from the worker.
func (s *session) replyRPCError(r *Request, msgType string, raw json.RawMessage) {
	var e struct {
		Code            string          `json:"code"`
		MessageToClient string          `json:"message_to_client"`
		Details         json.RawMessage `json:"details"`
	}
	if err := json.Unmarshal(raw, &e); err != nil || e.Code == "" {
		s.replyCode(r, msgType, WrongResponse, nil, OutcomeFailure)
		return
	}
	s.replyError(r, msgType, e.Code, e.MessageToClient, e.Details, OutcomeRPCError)
}

// resultStash merges a result's `stash` into the connection's stash, unless the action may not set it or the
// request carried a `stash` of its own. Workers set the stash, clients never: a request's own `stash` member
// means nothing to the gateway, and a result that may be its reflection (a worker returning its args) is not
// trusted with the stash.
func (s *session) resultStash(r *Request, raw json.RawMessage) {
	switch {
	case r.Action.IgnoreResultStash:
		s.logRequest(slog.LevelDebug, r, "result stash ignored: the action may not set the stash", "action", r.Action.Name)
	case r.Fields["stash"] != nil:
		s.logRequest(slog.LevelDebug, r, "result stash ignored: the request carried a stash of its own", "action", r.Action.Name)
	default:
		s.mergeStash(r, raw)
	}
}

// mergeStash merges the `stash` object of r's result into the connection's stash.
func (s *session) mergeStash(r *Request, raw json.RawMessage) {
	var st map[string]json.RawMessage
	if err := json.Unmarshal(raw, &st); err != nil {
		s.logRequest(slog.LevelDebug, r, "result stash is not an object", "err", err)
		return
	}
	stash := s.ensureStash()
	for k, v := range st {
		stash[k] = v
	}
}

// logRequest logs one line about request r (nil before a request could be parsed) with what an operator
// follows a request by: the connection's ID (conn_id), the client's req_id and the job's ID (job_id), each
// when known. Request-level lines are Debug (off unless asked for), so the attributes are built only when
// the line is written.
func (s *session) logRequest(lvl slog.Level, r *Request, msg string, args ...any) {
	ctx := context.Background()
	if !s.cfg.Logger.Enabled(ctx, lvl) {
		return
	}
	attrs := make([]any, 0, len(args)+6)
	if s.conn != nil {
		attrs = append(attrs, "conn_id", s.conn.ID())
	}
	if r != nil {
		if id := reqIDForLog(r.reqID); id != nil {
			attrs = append(attrs, "req_id", id)
		}
		if r.jobID != "" {
			attrs = append(attrs, "job_id", r.jobID)
		}
	}
	s.cfg.Logger.Log(ctx, lvl, msg, append(attrs, args...)...)
}

// debug reports whether request-level (Debug) lines are written.
func (s *session) debug() bool { return s.cfg.Logger.Enabled(context.Background(), slog.LevelDebug) }

// reqIDForLog is a req_id as a log value: a JSON string unquoted, anything else (usually a number) as its
// JSON text; nil when there is none.
func reqIDForLog(raw json.RawMessage) any {
	if len(raw) == 0 {
		return nil
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	return string(raw)
}

// milliseconds is d in milliseconds, to the microsecond: request durations are often under one.
func milliseconds(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// logLimit lets a hot-path log line through at most once per interval (per Sessions, shared by every
// connection), counting the lines it held back: when Redis is down, every request would log its failure.
type logLimit struct {
	interval   time.Duration
	next       atomic.Int64 // unix nanoseconds before which lines are held back
	suppressed atomic.Int64
}

// allow reports whether a line may be written now, and how many were held back since the last one.
func (l *logLimit) allow(now time.Time) (suppressed int64, ok bool) {
	n := l.next.Load()
	if now.UnixNano() < n || !l.next.CompareAndSwap(n, now.Add(l.interval).UnixNano()) {
		l.suppressed.Add(1)
		return 0, false
	}
	return l.suppressed.Swap(0), true
}
