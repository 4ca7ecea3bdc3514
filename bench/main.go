// Command bench is wsgate's load harness. It starts what it measures (redis-server on a free port, Go workers,
// the gateway) as separate processes, drives them from client processes spread over source addresses
// 127.0.0.2, 127.0.0.3, ... (one process holds at most 20,000 fds), and writes results as JSON.
//
//	go run ./bench idle --conns 19000         # memory, goroutines and fds per idle connection
//	go run ./bench rpc --conns 1,100,1000     # closed loop, with the raw-Redis and WebSocket-echo baselines
//	go run ./bench modes                      # the rpc load in simple, recoverable and reliable mode
//	go run ./bench rate --rates 1000,2000     # open loop, stepping the rate up to find the knee
//	go run ./bench timeouts --jobs 20000      # pending jobs with no worker: timeout accuracy, memory per job
//	go run ./bench fleet                      # 8 gateways on a Redis Cluster behind HAProxy: capacity, throughput, rolling deploy
//	go run ./bench peers --conns 1,100,1000   # wsgate reliable and simple next to Centrifugo's RPC proxy
package main

import (
	"encoding/json"
	"fmt"
	"os"
)

const usage = `usage: go run ./bench <scenario> [flags]

scenarios:
  idle      open N connections (one request each), hold them, sample the gateway's RSS, goroutines and fds
  rpc       closed loop: C connections each with K requests in flight for D seconds (reliable mode)
  modes     the rpc load in simple, recoverable and reliable mode, side by side
  rate      open loop at fixed request rates, stepped up; latency corrected for coordinated omission
  timeouts  many pending jobs with no worker: timeout accuracy and memory per pending job
  fleet     gateways on a 3-master Redis Cluster behind HAProxy: capacity, throughput, rolling deploy
  peers     closed loop, wsgate reliable and simple next to Centrifugo v6 (RPC proxy to a Go HTTP backend),
            taking turns at each connection count; installs Centrifugo with go install into a cache folder

Each scenario starts what it measures (redis-server on a free port, Go workers, the gateway) as separate
processes and writes JSON (and PNG plots) under --out (default bench/out). -h on a scenario lists its flags.
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
	case "rpc":
		err = runRPC(os.Args[2:], false)
	case "modes":
		err = runRPC(os.Args[2:], true)
	case "rate":
		err = runRate(os.Args[2:])
	case "timeouts":
		err = runTimeouts(os.Args[2:])
	case "fleet":
		err = runFleet(os.Args[2:])
	case "fleet-client": // a child process of the fleet scenario
		err = runFleetClient(os.Args[2:])
	case "peers":
		err = runPeers(os.Args[2:])
	case "rpc-backend": // the peers scenario's HTTP backend for Centrifugo's RPC proxy
		err = runRPCBackend(os.Args[2:])
	case "client": // a child process started by a scenario
		err = runIdleClient(os.Args[2:])
	case "echo-server": // the WebSocket-hop baseline's child process
		err = runEchoServer(os.Args[2:])
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
