// Package testutil holds small helpers shared by the tests of several packages.
package testutil

import (
	"testing"
	"time"
)

// WaitFor polls cond until it holds, failing the test after 10 seconds: tests wait for conditions, not for
// fixed sleeps.
func WaitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not met in 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
