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
