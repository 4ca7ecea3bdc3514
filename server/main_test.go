package server_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine a test starts must be stopped by the end of the package's tests.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
