// Package rpcenvelope reads the JobAsync RPC envelope that workers write as a job's result:
// {"success":1,"result":<value>}, or {"success":0,"error":...} without a result. It is the one parser of that
// envelope, shared by redisq (RPCResult, for Go callers) and actors (the session's replies), which must not
// import redisq. It is safe for concurrent use: it has no state.
package rpcenvelope

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

var (
	// ErrNotEnvelope: the payload is not a JSON object.
	ErrNotEnvelope = errors.New("not a JSON object")
	// ErrNoResult: the envelope has no `result` member (a Perl worker's failure envelope looks so; the Perl
	// backend answers it as a null result).
	ErrNoResult = errors.New("no result member")
)

// Result returns the envelope's `result` member (raw JSON). For a payload that is not a JSON object it
// returns an error that wraps ErrNotEnvelope; for one without `result`, ErrNoResult.
func Result(payload []byte) (json.RawMessage, error) {
	if t := bytes.TrimSpace(payload); len(t) == 0 || t[0] != '{' {
		return nil, ErrNotEnvelope
	}
	var env struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(payload, &env); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotEnvelope, err)
	}
	if env.Result == nil {
		return nil, ErrNoResult
	}
	return env.Result, nil
}
