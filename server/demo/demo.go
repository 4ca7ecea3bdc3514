// Package demo holds the demo RPC methods that `wsgate worker --demo` and `wsgate dev` serve: ping, echo, sleep,
// fail and whoami (see `wsgate help`).
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/wsgate/wsgate/redisq"
)

// MaxSleep bounds the demo sleep action.
const MaxSleep = time.Minute

// ErrDemoFailure is what the fail action reports.
var ErrDemoFailure = errors.New("demo: failure requested")

// Handler returns a job handler that routes the demo methods by name.
func Handler() redisq.Handler {
	r := redisq.NewRouter()
	r.Handle("ping", redisq.RPC(func(context.Context, *redisq.RPCRequest) (any, error) { return "pong", nil }))
	r.Handle("echo", redisq.RPC(echo))
	r.Handle("sleep", redisq.RPC(sleep))
	r.Handle("fail", redisq.RPC(func(context.Context, *redisq.RPCRequest) (any, error) { return nil, ErrDemoFailure }))
	r.Handle("whoami", redisq.RPC(whoami))
	return r
}

// echo returns the request, less any `stash` member: a result's stash is merged into the connection's stash,
// and a client must not be able to write its own stash by having it reflected (the gateway refuses that too).
func echo(_ context.Context, req *redisq.RPCRequest) (any, error) {
	var args map[string]json.RawMessage
	if err := json.Unmarshal(req.Args, &args); err != nil || args["stash"] == nil {
		return req.Args, nil // not an object, or no stash: as it came
	}
	delete(args, "stash")
	return args, nil
}

func sleep(ctx context.Context, req *redisq.RPCRequest) (any, error) {
	var args struct {
		Sleep float64 `json:"sleep"`
	}
	if err := json.Unmarshal(req.Args, &args); err != nil {
		return nil, fmt.Errorf("demo: sleep: %w", err)
	}
	d := time.Duration(args.Sleep * float64(time.Millisecond))
	if d < 0 || d > MaxSleep {
		return map[string]any{"error": map[string]any{"code": "InputValidationFailed",
			"message_to_client": fmt.Sprintf("sleep must be between 0 and %d milliseconds", MaxSleep.Milliseconds())}}, nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return map[string]any{"slept": args.Sleep}, nil
}

// whoami answers the stash values that the gateway copied into the params (everything but args).
func whoami(_ context.Context, req *redisq.RPCRequest) (any, error) {
	stash := make(map[string]json.RawMessage, len(req.Params))
	for k, v := range req.Params {
		if k != "args" {
			stash[k] = v
		}
	}
	return stash, nil
}
