// Package server composes the gateway: the WebSocket transport, the session and registry actors and the redisq
// client, plus an admin HTTP listener. It is also the API for embedding the gateway in another Go program:
//
//	gw, err := server.New(server.Config{RedisURL: "redis://127.0.0.1:6379",
//		Actions: []server.Action{{Name: "ping"}, {Name: "status", Timeout: 5 * time.Second}}})
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
// # Lifecycle
//
// Every part that runs goroutines has one shape: a constructor that checks its config and starts nothing,
// Start(ctx) error that starts it and returns (ctx bounds the start only), and Shutdown(ctx) error that stops
// it and waits for its goroutines, or for ctx. Both are safe to call twice; Start after Shutdown fails.
// Waiting is on conditions (channels closed when the work is done), never on a timer. The parts: the
// registry (actors.Registry), the session dispatcher (actors.PoolDispatcher, with Config.SessionWorkers), the
// queue clients (redisq.Client), the WebSocket transport (transport.Server; its Start takes the listener),
// the admin listener, and the Gateway that composes them; workers (redisq.Worker) have the same shape.
//
// Gateway.Start starts, in this order:
//
//  1. Redis (a PING),
//  2. the registry (before anything can submit or complete a job),
//  3. the session dispatcher,
//  4. the queue clients (each subscribed to its completion channel before any job is submitted),
//  5. the admin listener, then the WebSocket listener (the first connection can only come now),
//  6. the queue watch and the passivation sweep; then readiness goes true.
//
// Gateway.Shutdown stops in the reverse direction:
//
//  1. readiness goes false, the sessions refuse new requests (ServiceUnavailable), the listener closes;
//  2. the drain: requests taken before get their answers (results, or RequestTimeout for those still pending
//     when Config.DrainTimeout is up);
//  3. the transport closes every connection with 1001 (which stops its session);
//  4. the queue clients, then the registry, the queue watch, the passivation sweep and the admin listener;
//  5. the sessions' deferred hooks, the session dispatcher, the actor system (if the gateway made it) and the
//     Redis client (if the gateway made it).
//
// Idle sessions passivate (Config.PassivateAfter, actors.Host): a connection's state (connState) keeps the
// session's PID, or while the session is passivated its stash and rate limits, and the backlog of messages
// sent to it. A session passivates as soon as it has answered a connection's first message or the first
// after a quiet PassivateAfter, and otherwise when the sweep (every PassivateAfter/2) finds it quiet for
// PassivateAfter; it agrees only under the connState lock with no message sent and unhandled, and OnMessage
// respawns it under the same lock, so no message is lost or reordered. A passivated connection that closes
// runs the FinishConnection hooks from OnClose.
//
// Run is Start, then Shutdown when ctx ends. Start, the drain and the stop each log one line with *_ms
// durations.
//
// The admin listener serves /healthz, /readyz (Redis reachable and every completion channel subscribed),
// /metrics (namespace wsgate) and, with Config.Pprof, /debug/pprof/. With Config.AdminToken, /metrics and
// /debug/pprof/ require `Authorization: Bearer <token>`; /healthz and /readyz stay open for load balancers.
// Logs, errors and /debug/pprof/cmdline never show the Redis password (internal/redact).
package server
