// Package server composes the gateway: the WebSocket transport, the session and registry actors and the redisq
// client, plus an admin HTTP listener. It is also the API for embedding the gateway in another Go program:
//
//	gw, err := server.New(server.Config{RedisURL: "redis://127.0.0.1:6379"})
//	...
//	err = gw.Run(ctx) // serves until ctx ends, then shuts down gracefully
//
// Lifetimes: Start starts everything and returns; Shutdown stops accepting, waits for in-flight requests
// (up to Config.DrainTimeout), closes the connections with 1001 and stops every goroutine; it is safe to call
// twice. Run is Start, then Shutdown when ctx ends.
package server
