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

	"github.com/wsgate/wsgate/internal/jsonscan"
)

var (
	// ErrNotEnvelope: the payload is not a JSON object.
	ErrNotEnvelope = errors.New("not a JSON object")
	// ErrNoResult: the envelope has no `result` member (a Perl worker's failure envelope looks so; the Perl
	// backend answers it as a null result).
	ErrNoResult = errors.New("no result member")
)

// Result returns the envelope's `result` member (raw JSON, sharing payload's bytes). For a payload that is
// not a JSON object it returns an error that wraps ErrNotEnvelope; for one without `result`, ErrNoResult. The
// member is matched as encoding/json matches a struct field (case-insensitively; the last one wins), in one
// pass and without allocating.
func Result(payload []byte) (json.RawMessage, error) {
	if t := bytes.TrimSpace(payload); len(t) == 0 || t[0] != '{' {
		return nil, ErrNotEnvelope
	}
	if !json.Valid(payload) {
		var v any // rare: encoding/json says what is wrong
		return nil, fmt.Errorf("%w: %w", ErrNotEnvelope, json.Unmarshal(payload, &v))
	}
	var result json.RawMessage
	jsonscan.Members(payload, func(m jsonscan.Member) bool {
		key := payload[m.KeyStart:m.KeyEnd]
		if !m.Plain {
			var k string
			_ = json.Unmarshal(payload[m.KeyStart-1:m.KeyEnd+1], &k)
			key = []byte(k)
		}
		if bytes.EqualFold(key, resultKey) {
			result = payload[m.ValStart:m.ValEnd:m.ValEnd]
		}
		return true
	})
	if result == nil {
		return nil, ErrNoResult
	}
	return result, nil
}

var resultKey = []byte("result")
