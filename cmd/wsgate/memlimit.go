package main

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"

	"github.com/wsgate/wsgate/transport"
)

// autoMemoryLimit is the soft memory limit the gateway sets by default: the buffer budget bounds what clients
// can make it hold, but Go's heap grows to about twice its live data before it collects; the limit makes the
// collector run before that, so the process stays near 2 × budget + 256 MiB even under attack. 256 MiB covers
// the rest: ~2.5 KB an idle connection at 20,000, requests being handled, the runtime.
func autoMemoryLimit(budget int) int64 {
	if budget <= 0 {
		budget = transport.DefaultBufferBudget
	}
	return 2*int64(budget) + 256<<20
}

// applyMemoryLimit sets the process's soft memory limit from --memory-limit: "auto" (the default, unless the
// runtime's own GOMEMLIMIT is set), "off", or bytes.
func applyMemoryLimit(o *options) error {
	var limit int64
	switch v := o.memoryLimit; v {
	case "off":
		return nil
	case "", "auto":
		if os.Getenv("GOMEMLIMIT") != "" {
			return nil // the operator's own setting for the runtime
		}
		limit = autoMemoryLimit(o.cfg.Transport.BufferBudget)
	default:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return fmt.Errorf("--memory-limit: %q is not a number of bytes, auto or off", v)
		}
		limit = n
	}
	debug.SetMemoryLimit(limit)
	o.logger.Info("memory limit set", "bytes", limit, "mib", limit>>20)
	return nil
}
