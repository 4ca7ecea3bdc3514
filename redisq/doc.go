// Package redisq is a Redis job queue that speaks the wire protocol of the Perl modules Job::Async::Redis 0.004:
// a Perl worker can serve jobs submitted by this package's Client, and this package's Worker can serve jobs
// submitted by the Perl client.
//
// Keys (see PROTOCOL.md): the pending list `<prefix>::<queue>`, the in-process list
// `<prefix>::processing`, the job hash `job::<id>` and the completion channel `client::<client id>`; and the
// simple-mode list `<prefix>::<queue>::simple`, which Perl code never sees.
//
// Modes (Mode): simple (the job in its own list, the result in the notification; at most once), recoverable
// (the Perl protocol with BRPOP; missed notifications recovered from the hashes) and reliable (the Perl worker's
// BRPOPLPUSH sequence plus heartbeats, a reaper, delivery counts and a dead-letter list; at least once).
// Clients and workers of a queue should use the same mode; where they do not, a worker still serves every job
// it finds, the way its client expects (lists.go). In the hash modes a Client asks Go workers (with the hash
// field `_reply_with_result`, which Perl workers ignore) to publish the result itself rather than the bare job
// ID, which saves the read after the notification; Perl peers keep the Perl protocol. PROTOCOL.md lists
// everything redisq adds to the Perl wire format. RESP2 and RESP3, single nodes and Cluster are tested; Sentinel (a failover client, also a
// redis.UniversalClient) takes the same path but has no test here.
//
// Concurrency: a Client owns three goroutines (one that batches and pipelines submits and the DELs of answered
// jobs, one that reads its pub/sub subscription, one that delivers completions, reading results in pipelines
// where a notification holds only the ID); Submit and Forget never block and may be called
// from any goroutine. Between them the goroutines hand work over in bounded queues (queue.go) whose memory
// follows what is queued, so an idle Client holds a few kilobytes whatever its QueueSize. A Worker owns a few
// fetch goroutines (each takes a batch of jobs per round trip), a goroutine per running job (at most
// Concurrency; reused by the next job, and ended after 10 s without one: internal/runner), one answerer that writes
// results in batches, and (reliable mode) a heartbeat and a reaper. Both stop with Shutdown; a worker's Shutdown ends the fetchers' blocking
// waits at once with CLIENT UNBLOCK (unblock.go).
//
// redisq knows nothing of WebSockets; rpc.go holds the small contract that the WebSocket gateway's JobAsync
// backend puts on top of it (the `name`/`params` job fields and the `{"success":1,"result":...}` envelope).
package redisq
