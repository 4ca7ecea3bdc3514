// Command embed shows wsgate embedded in another Go program: the program owns the actor system, adds its own
// hooks (an authorisation check that runs off the actor, an action served in-process, a reply decoration) and
// runs a redisq worker for the jobs in the same process.
//
//	go run ./examples/embed -redis redis://127.0.0.1:6379
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/actors"
	"github.com/wsgate/wsgate/redisq"
	"github.com/wsgate/wsgate/server"
	"github.com/wsgate/wsgate/server/demo"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "WebSocket listener")
	redisURL := flag.String("redis", "redis://127.0.0.1:6379", "Redis URL")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *listen, *redisURL, log); err != nil {
		log.Error("embed failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, listen, redisURL string, log *slog.Logger) error {
	// The program's own actor system: the gateway's sessions and registry live in it next to its own actors.
	system := actor.NewActorSystem()
	defer system.Shutdown()

	hooks := actors.Hooks{
		// Only connections that said who they are may call echo. The check could be slow (a database), so it
		// runs off the actor and its verdict comes back as a message.
		BeforeForward: []func(*actors.Request) actors.Verdict{func(r *actors.Request) actors.Verdict {
			if r.Action.Name != "echo" {
				return actors.Continue
			}
			_, known := r.Stash["user"]
			return actors.Verdict{Later: func(ctx context.Context) actors.Verdict {
				if known {
					return actors.Continue
				}
				return actors.Refuse("AuthorizationRequired", "Say hello first.", nil)
			}}
		}},
		// Every reply says which program answered.
		BeforeSendAPIResponse: []func(*actors.Request, map[string]json.RawMessage){
			func(_ *actors.Request, reply map[string]json.RawMessage) {
				reply["served_by"] = json.RawMessage(`"embed"`)
			},
		},
	}
	actions := []server.Action{
		{Name: "ping"}, {Name: "echo"},
		// hello is served in the gateway itself: it stores the name in the connection's stash.
		{Name: "hello", InsteadOfForward: func(r *actors.Request) actors.Verdict {
			r.Stash["user"] = r.Fields["hello"]
			return actors.Answer(json.RawMessage(`"welcome"`))
		}},
		{Name: "time", InsteadOfForward: func(*actors.Request) actors.Verdict {
			return actors.Answer(json.RawMessage(fmt.Sprint(time.Now().Unix())))
		}},
	}
	gw, err := server.New(server.Config{Listen: listen, Admin: "off", RedisURL: redisURL, Actions: actions, Logger: log},
		server.WithActorSystem(system), server.WithHooks(hooks))
	if err != nil {
		return err
	}

	// A worker for ping and echo in the same process, on the same queue.
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(redisq.WorkerRedisOptions(opts, 8))
	defer rdb.Close()
	worker, err := redisq.NewWorker(redisq.WorkerConfig{Redis: rdb, Handler: demo.Handler(), Concurrency: 8,
		PollTimeout: time.Second, Logger: log})
	if err != nil {
		return err
	}
	if err := worker.Start(ctx); err != nil {
		return err
	}
	defer worker.Shutdown(context.Background())

	if err := gw.Start(ctx); err != nil {
		gw.Shutdown(context.Background())
		return err
	}
	fmt.Printf("embedded wsgate listening on %s\n", gw.URL())
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return gw.Shutdown(sctx)
}
