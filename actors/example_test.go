package actors_test

import (
	"encoding/json"
	"fmt"

	"github.com/wsgate/wsgate/actors"
)

// Hooks compose: an authorisation check and an action served by the gateway itself.
func ExampleHooks() {
	var h actors.Hooks
	h.Merge(actors.Hooks{BeforeForward: []func(*actors.Request) actors.Verdict{
		func(r *actors.Request) actors.Verdict {
			if _, ok := r.Stash["token"]; !ok && r.Action.Name != "ping" {
				return actors.Refuse("AuthorizationRequired", "Please log in.", nil)
			}
			return actors.Continue
		},
	}})
	acts, _ := actors.NewActions(actors.Action{Name: "ping"},
		actors.Action{Name: "time", InsteadOfForward: func(*actors.Request) actors.Verdict {
			return actors.Answer(json.RawMessage(`1700000000`))
		}})
	for _, a := range acts.List() {
		v := h.BeforeForward[0](&actors.Request{Action: a, Stash: map[string]json.RawMessage{}})
		fmt.Println(a.Name, v.Reply != nil)
	}
	// Output:
	// ping false
	// time true
}
