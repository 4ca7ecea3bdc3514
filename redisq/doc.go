// Package redisq is a Redis job queue that speaks the wire protocol of the Perl modules Job::Async::Redis 0.004:
// a Perl worker can serve jobs submitted by this package's Client, and this package's Worker can serve jobs
// submitted by the Perl client.
//
// Keys (see ../shared/spec/job-async-redis.md): the pending list `<prefix>::<queue>`, the in-process list
// `<prefix>::processing`, the job hash `job::<id>` and the completion channel `client::<client id>`.
//
// Concurrency: a Client owns two goroutines (one that batches and pipelines submits, one that reads
// completions from its pub/sub subscription); Submit never blocks and may be called from any goroutine, and
// completions are delivered to one callback from the completion goroutine. A Worker owns a bounded number of
// fetch goroutines, each of which runs one job at a time. Both stop with Shutdown.
//
// redisq knows nothing of WebSockets; rpc.go holds the small contract that the WebSocket gateway's JobAsync
// backend puts on top of it (the `name`/`params` job fields and the `{"success":1,"result":...}` envelope).
package redisq
