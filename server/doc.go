// Package server composes the gateway: the WebSocket transport, the session and registry actors and the redisq
// client, plus an admin HTTP listener. It is also the API for embedding the gateway in another Go program:
//
//	gw, err := server.New(server.Config{RedisURL: "redis://127.0.0.1:6379"})
//	...
//	err = gw.Run(ctx) // serves until ctx ends, then shuts down gracefully
//
// Options add what an embedding program brings: WithHooks (the Go shape of Mojo::WebSocketProxy's hooks, see
// actors.Hooks), WithActorSystem (run the sessions in the program's own protoactor-go system), WithMetrics (its
// own Prometheus registry). Config can come from a YAML file (LoadFile; see wsgate.example.yaml).
//
// Trust model of the stash: workers set the stash, clients never. The connection's stash (per-connection state
// such as the logged-in user, copied into jobs by stash_params) changes only through hooks and through the
// `stash` member of a worker's result. A `stash` member in a client's request is never read as stash, and a
// result to such a request cannot set the stash either, since a worker that returns its args would otherwise
// hand the client's own stash back. Actions whose workers reflect client input in other ways must be
// configured with ResultStash false (the demo echo is); the default, true, keeps Mojo::WebSocketProxy's
// behaviour so that existing authorisation workers work unchanged.
//
// Lifetimes: Start starts everything and returns; Shutdown drains and stops: readiness goes false and new
// connections are refused; requests arriving from then on are answered ServiceUnavailable at once; requests
// taken before get their answers (results, or RequestTimeout for those still pending when Config.DrainTimeout
// is up); then every connection is closed with 1001 and every goroutine stopped. It is safe to call twice. Run
// is Start, then Shutdown when ctx ends. Start, the drain and the stop each log one line with *_ms durations.
//
// The admin listener serves /healthz, /readyz (Redis reachable and every completion channel subscribed),
// /metrics (namespace wsgate) and, with Config.Pprof, /debug/pprof/. With Config.AdminToken, /metrics and
// /debug/pprof/ require `Authorization: Bearer <token>`; /healthz and /readyz stay open for load balancers.
// Logs, errors and /debug/pprof/cmdline never show the Redis password (internal/redact).
package server
