// Command bench is wsgate's load harness. It starts what it measures (redis-server on a free port, Go workers,
// the gateway) as separate processes, drives them from client processes spread over source addresses
// 127.0.0.2, 127.0.0.3, ... (one process holds at most 20,000 fds), and writes results as JSON.
//
//	go run ./bench idle --conns 19000     # memory, goroutines and fds per idle connection
package main

import (
	"encoding/json"
	"fmt"
	"os"
)

const usage = `usage: go run ./bench <scenario> [flags]

scenarios:
  idle     open N connections (one request each), hold them, sample the gateway's RSS, goroutines and fds
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "idle":
		err = runIdle(os.Args[2:])
	case "client": // a child process started by a scenario
		err = runIdleClient(os.Args[2:])
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
