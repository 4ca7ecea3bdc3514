package redisq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/wsgate/wsgate/internal/rpcenvelope"
)

// The JobAsync contract (Mojo::WebSocketProxy::Backend::JobAsync): a job carries exactly two text fields,
// `name` (the RPC method) and `params` (a JSON object whose `args` is the client's whole request, plus any
// stash values), and the worker answers TagText + `{"success":1,"result":<rpc result>}`.

// RPCSubmission builds the job that the WebSocket gateway submits for one RPC call.
func RPCSubmission(id, method string, params []byte) Submission {
	return Submission{ID: id, Fields: []Field{{Key: "name", Value: method}, {Key: "params", Value: string(params)}}}
}

// RPCRequest is one RPC call as a worker sees it.
type RPCRequest struct {
	Job    *Job
	Method string
	// Params is the whole `params` object; Args is its `args` member (the client's request).
	Params map[string]json.RawMessage
	Args   json.RawMessage
}

// RPCFunc serves one RPC method. Its result is JSON-encoded into the envelope; an error fails the job.
type RPCFunc func(ctx context.Context, req *RPCRequest) (any, error)

// RPC adapts an RPCFunc to a job Handler that speaks the JobAsync contract.
func RPC(f RPCFunc) Handler {
	return HandlerFunc(func(ctx context.Context, job *Job) (Result, error) {
		req := &RPCRequest{Job: job, Method: job.Text("name")}
		if err := rpcParams(job, req); err != nil {
			return Result{}, err
		}
		v, err := f(ctx, req)
		if err != nil {
			return Result{}, err
		}
		body, err := json.Marshal(rpcEnvelope{Success: 1, Result: v})
		if err != nil {
			return Result{}, fmt.Errorf("redisq: encode result of job %s: %w", job.ID, err)
		}
		return TextBytes(body), nil
	})
}

// rpcParams fills req.Params and req.Args from the job's `params` field, whatever its format: `text_params`
// (the gateway's JSON string), `json_params` (JSON) or `sereal_params` (a Sereal structure, as a Perl client
// writes one). A job without params has none; params that are not an object fail the job.
func rpcParams(job *Job, req *RPCRequest) error {
	switch v := job.Data["params"].(type) {
	case nil:
		return nil
	case string:
		if v == "" {
			return nil
		}
	}
	if err := job.Decode("params", &req.Params); err != nil {
		return fmt.Errorf("redisq: params of job %s are not an object: %w", job.ID, err)
	}
	req.Args = req.Params["args"]
	return nil
}

type rpcEnvelope struct {
	Success int `json:"success"`
	Result  any `json:"result"`
}

// ErrBadEnvelope is returned by RPCResult for a result that is not a JobAsync envelope.
var ErrBadEnvelope = errors.New("redisq: result is not an RPC envelope")

// RPCResult extracts the RPC result from a JobAsync envelope (of either tag).
func RPCResult(r Result) (json.RawMessage, error) {
	res, err := rpcenvelope.Result(r.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadEnvelope, err)
	}
	return res, nil
}
