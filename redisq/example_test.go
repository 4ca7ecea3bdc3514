package redisq_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/redisq"
)

// A worker with a router and a middleware, and a client submitting one job to it.
func Example() {
	mr, _ := miniredis.Run()
	defer mr.Close()

	logging := func(next redisq.Handler) redisq.Handler {
		return redisq.HandlerFunc(func(ctx context.Context, job *redisq.Job) (redisq.Result, error) {
			fmt.Printf("job %s, delivery %d\n", job.Text("name"), job.Deliveries)
			return next.ServeJob(ctx, job)
		})
	}
	router := redisq.NewRouter()
	router.HandleFunc("upper", func(ctx context.Context, job *redisq.Job) (redisq.Result, error) {
		return redisq.Text(strings.ToUpper(job.Text("word"))), nil
	})
	wrdb := redis.NewClient(redisq.WorkerRedisOptions(&redis.Options{Addr: mr.Addr()}, 2))
	defer wrdb.Close()
	w, _ := redisq.NewWorker(redisq.WorkerConfig{Redis: wrdb, Handler: redisq.Chain(router, logging),
		Concurrency: 2, PollTimeout: time.Second, Logger: quiet})
	if err := w.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	defer w.Shutdown(context.Background())

	done := make(chan redisq.Completion, 1)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	c, _ := redisq.NewClient(redisq.ClientConfig{Redis: rdb, Logger: quiet,
		OnComplete: func(x redisq.Completion) { done <- x }})
	c.Start(context.Background())
	defer c.Shutdown(context.Background())

	c.Submit(redisq.Submission{ID: redisq.NewID(), Fields: []redisq.Field{{Key: "name", Value: "upper"}, {Key: "word", Value: "hello"}}})
	x := <-done
	fmt.Printf("%c %s %v\n", x.Result.Tag, x.Result.Payload, x.Err)
	// Output:
	// job upper, delivery 1
	// T HELLO <nil>
}

// The keys of a queue, with the Perl defaults and with a Redis Cluster hash tag.
func ExampleKeys() {
	fmt.Println(redisq.Keys{}.Pending(), redisq.Keys{}.Processing())
	fmt.Println(redisq.Keys{Prefix: "{jobs}", Queue: "priority"}.Pending())
	fmt.Println(redisq.Keys{NoPrefix: true}.Pending())
	fmt.Println(redisq.Keys{}.Simple())
	// Output:
	// jobs::pending jobs::processing
	// {jobs}::priority
	// pending
	// jobs::pending::simple
}
