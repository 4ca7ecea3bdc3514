// Package testutil holds small helpers shared by the tests of several packages.
package testutil

import (
	"bytes"
	"sync"
	"testing"
	"time"
)

// WaitFor polls cond until it holds, failing the test after 10 seconds: tests wait for conditions, not for
// fixed sleeps.
func WaitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	WaitWithin(tb, 10*time.Second, cond, func() string { return "condition not met in 10 s" })
}

// WaitWithin polls cond until it holds, failing the test after d with the message that failure returns then
// (so that it can show the state at the end). Call it from the test's goroutine only.
func WaitWithin(tb testing.TB, d time.Duration, cond func() bool, failure func() string) {
	tb.Helper()
	if !Eventually(d, cond) {
		tb.Fatal(failure())
	}
}

// Eventually polls cond until it holds or d has passed, and reports whether it held: for a test that must
// go on (stop what it started, report more) when the condition never comes, and for goroutines other than
// the test's.
func Eventually(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// Buffer collects output (logs, a child process's stdout) written by several goroutines while the test
// reads it. The zero value is ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
