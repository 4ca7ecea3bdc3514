package actors

import (
	"context"
	"encoding/json"
)

// Request is one client request as hooks see it. Hooks run inside the session actor, one request at a time,
// so they may read and write it (and the stash) without locking.
type Request struct {
	// Action is the action the request calls.
	Action *Action
	// Fields are the request's top-level members; treat them as read-only.
	Fields map[string]json.RawMessage
	// Stash is the connection's stash (per-connection state that survives between requests); hooks may change
	// it, and a result's `stash` member is merged into it (unless the action has IgnoreResultStash or the
	// request carried a `stash` of its own: workers set the stash, clients never).
	Stash map[string]json.RawMessage
	// Params are extra members of the job's params, next to `args` and the stash_params; BeforeCall hooks may
	// add to them.
	Params map[string]json.RawMessage
	// Conn is the connection the request came on: its ID and the client's address.
	Conn ConnInfo

	echo        json.RawMessage
	reqID       json.RawMessage
	passthrough json.RawMessage
	hookAt      int // the next BeforeForward hook to run
	jobID       string
	started     int64 // unix nanoseconds, for latency metrics
	admitted    bool  // counted by the drain gate and not answered yet
	// The session's list of requests whose jobs are pending (so that it can forget them when it stops): the
	// registry's entry brings the request back, so no table by job ID is needed.
	waiting      bool
	older, newer *Request
}

// ReqID is the request's req_id, or nil.
func (r *Request) ReqID() json.RawMessage { return r.reqID }

// Reply is an answer a hook gives instead of forwarding: a result (sent with the action's msg_type) or an
// error.
type Reply struct {
	Result json.RawMessage
	Error  *ReplyError
}

// ReplyError is a client-facing error: a code, a message and optional details.
type ReplyError struct {
	Code    string
	Message string
	Details json.RawMessage
}

// Verdict is what a BeforeForward or InsteadOfForward hook decides: answer (Reply), decide later (Later), or
// neither (go on).
type Verdict struct {
	// Reply, if set, is sent instead of forwarding the request.
	Reply *Reply
	// Later, if set, runs on a goroutine of its own (never in the actor) and its verdict is applied when it
	// returns: the way to do slow work such as an authorisation lookup. Its ctx ends when the connection does.
	Later func(ctx context.Context) Verdict
}

// Continue is the verdict that lets the request go on.
var Continue = Verdict{}

// Answer is the verdict that answers with a result.
func Answer(result json.RawMessage) Verdict { return Verdict{Reply: &Reply{Result: result}} }

// Refuse is the verdict that answers with an error.
func Refuse(code, message string, details json.RawMessage) Verdict {
	return Verdict{Reply: &Reply{Error: &ReplyError{Code: code, Message: message, Details: details}}}
}

// Hooks are the gateway's extension points: the Go shape of Mojo::WebSocketProxy's hooks. Every field is
// optional; hooks of one kind run in the order listed. They run inside the session actor and must not block:
// slow work goes through Verdict.Later.
type Hooks struct {
	// OpenedConnection runs when a connection's session starts; it may fill the stash.
	OpenedConnection []func(conn ConnInfo, stash map[string]json.RawMessage)
	// FinishConnection runs when the connection has closed.
	FinishConnection []func(conn ConnInfo, stash map[string]json.RawMessage)
	// BeforeForward runs before a request is forwarded (authorisation, validation, rate limits); a Reply
	// answers instead of forwarding.
	BeforeForward []func(r *Request) Verdict
	// BeforeCall runs just before the job is submitted; it may add Params.
	BeforeCall []func(r *Request)
	// AfterForward runs once the job is submitted.
	AfterForward []func(r *Request)
	// AfterGotRPCResponse runs when the job's outcome arrives (before the reply is built).
	AfterGotRPCResponse []func(r *Request, outcome JobOutcome)
	// RPCFailure runs when the job failed, could not be submitted, or timed out.
	RPCFailure []func(r *Request, err error)
	// BeforeSendAPIResponse may edit a reply (its top-level members) before it is sent. r is nil for replies to
	// requests that could not be parsed.
	BeforeSendAPIResponse []func(r *Request, reply map[string]json.RawMessage)
	// AfterSentAPIResponse runs after a reply was queued for the client.
	AfterSentAPIResponse []func(r *Request, reply []byte)
	// BinaryFrame handles binary messages; what it returns (if not nil) is sent back as a binary message.
	// Without it, a binary message is answered with a BadRequest error.
	BinaryFrame func(conn ConnInfo, stash map[string]json.RawMessage, data []byte) []byte
}

// Merge appends other's hooks to h's (other's run after h's); a BinaryFrame in other replaces h's.
func (h *Hooks) Merge(other Hooks) {
	h.OpenedConnection = append(h.OpenedConnection, other.OpenedConnection...)
	h.FinishConnection = append(h.FinishConnection, other.FinishConnection...)
	h.BeforeForward = append(h.BeforeForward, other.BeforeForward...)
	h.BeforeCall = append(h.BeforeCall, other.BeforeCall...)
	h.AfterForward = append(h.AfterForward, other.AfterForward...)
	h.AfterGotRPCResponse = append(h.AfterGotRPCResponse, other.AfterGotRPCResponse...)
	h.RPCFailure = append(h.RPCFailure, other.RPCFailure...)
	h.BeforeSendAPIResponse = append(h.BeforeSendAPIResponse, other.BeforeSendAPIResponse...)
	h.AfterSentAPIResponse = append(h.AfterSentAPIResponse, other.AfterSentAPIResponse...)
	if other.BinaryFrame != nil {
		h.BinaryFrame = other.BinaryFrame
	}
}
