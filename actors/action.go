package actors

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Action is one RPC method that clients may call; the request's top-level key names it.
type Action struct {
	// Name is the request key that selects the action and the job name sent to the worker.
	Name string
	// MsgType is the msg_type of its replies; "" means Name.
	MsgType string
	// StashParams names stash values copied into every job's params for this action.
	StashParams []string
	// Timeout is how long to wait for the result; 0 means SessionConfig.Timeout.
	Timeout time.Duration
	// Submitter routes this action's jobs to its own queue; nil means the session's default.
	Submitter Submitter
	// RateLimit, if set, bounds how often one connection may call this action (on top of the session's
	// connection-wide limit).
	RateLimit *Rate
	// RequireResult answers WrongResponse to a worker envelope without a `result` member, such as
	// {"success":0,"error":"..."}. false (the default) answers it as the Perl JobAsync backend does: a success
	// whose value is null.
	RequireResult bool
	// IgnoreResultStash drops (and logs at debug) the `stash` member of this action's results instead of merging
	// it into the connection's stash. false (the default) merges it, as Mojo::WebSocketProxy does; set it for
	// actions whose workers reflect client input.
	IgnoreResultStash bool
	// InsteadOfForward, if set, serves the action in the gateway: its verdict's Reply is the answer and no job
	// is submitted (a verdict without a Reply forwards after all).
	InsteadOfForward func(r *Request) Verdict
}

func (a *Action) msgType() string {
	if a.MsgType != "" {
		return a.MsgType
	}
	return a.Name
}

// ValidActionName reports whether name may name an action: letters, digits, _ and -, 1 to 50 of them. It is
// the sanity check's rule for keys (keyOK), less the final newline that Perl's $ lets through there: any
// action can then be called by a request that passes the check.
func ValidActionName(name string) bool {
	return keyOK(name) && !strings.HasSuffix(name, "\n")
}

// Actions is an ordered, immutable set of actions. When a request has several keys that name actions, the one
// listed earliest wins, as in Mojo::WebSocketProxy.
type Actions struct {
	list  []*Action
	index map[string]int
}

// NewActions checks the actions and returns them in order.
func NewActions(list ...Action) (*Actions, error) {
	t := &Actions{index: make(map[string]int, len(list))}
	for i := range list {
		a := list[i]
		if !ValidActionName(a.Name) {
			return nil, fmt.Errorf("actions: invalid action name %q", a.Name)
		}
		if _, dup := t.index[a.Name]; dup {
			return nil, fmt.Errorf("actions: action %q is listed twice", a.Name)
		}
		if a.Timeout < 0 {
			return nil, fmt.Errorf("actions: action %q has a negative timeout", a.Name)
		}
		if a.RateLimit != nil {
			if err := a.RateLimit.Validate(); err != nil {
				return nil, fmt.Errorf("actions: action %q: %w", a.Name, err)
			}
		}
		t.index[a.Name] = len(t.list)
		t.list = append(t.list, &a)
	}
	if len(t.list) == 0 {
		return nil, errors.New("actions: no actions configured")
	}
	return t, nil
}

// List returns the actions in priority order.
func (t *Actions) List() []*Action { return t.list }

// pick returns the earliest-listed action among the request's keys, or nil.
func (t *Actions) pick(fields map[string]json.RawMessage) *Action {
	best := -1
	for k := range fields {
		if i, ok := t.index[k]; ok && (best < 0 || i < best) {
			best = i
		}
	}
	if best < 0 {
		return nil
	}
	return t.list[best]
}
