// Package actors holds the protoactor-go actors at the heart of the gateway.
//
// A session actor (one per WebSocket connection) parses each request, picks its action, builds the job,
// registers it with the registry and submits it, and formats every reply: success, RPC error or gateway error,
// each with echo_req, req_id and passthrough. The registry is a set of shard actors (the job ID picks the
// shard) that correlate completions with sessions and fire timeouts from a hashed timing wheel; a job is
// always registered before it is submitted, so a fast completion can never arrive first.
//
// An idle session need not keep its actor (passivate.go): spawned with a Host (SpawnHosted), a session with
// nothing in flight stops its actor when its host agrees, leaving its stash and rate-limit buckets to the
// host (SessionState), and Resume starts it again on the next message, in order. OpenedConnection and
// FinishConnection still run once per connection, not per respawn.
//
// Concurrency contract: no actor blocks. The connection (Conn) and the queue (Submitter) are reached through
// non-blocking calls; completions arrive as messages (Registry.Complete may be called from any goroutine).
// Sessions stop rather than restart on failure, and forget their pending jobs when they stop.
//
// The package knows nothing of sockets or Redis: the server package adapts transport and redisq to the
// Conn and Submitter interfaces defined here.
package actors
