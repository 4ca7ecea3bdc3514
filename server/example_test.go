package server_test

import (
	"context"
	"fmt"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/redisq"
	"github.com/wsgate/wsgate/server"
	"github.com/wsgate/wsgate/server/demo"
)

// A gateway and a worker on one Redis (here an in-process one), and a client asking for a ping.
func ExampleNew() {
	mr := miniredis.RunT(nopT{})
	defer mr.Close()

	rdb := redis.NewClient(redisq.WorkerRedisOptions(&redis.Options{Addr: mr.Addr()}, 4))
	defer rdb.Close()
	worker, _ := redisq.NewWorker(redisq.WorkerConfig{Redis: rdb, Handler: demo.Handler(), Concurrency: 4,
		PollTimeout: time.Second, Logger: quiet})
	if err := worker.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	defer worker.Shutdown(context.Background())

	gw, err := server.New(server.Config{Listen: "127.0.0.1:0", Admin: "off", RedisURL: "redis://" + mr.Addr(),
		Actions: server.DemoActions(), Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := gw.Start(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	defer gw.Shutdown(context.Background())

	conn, _, _, _ := ws.Dial(context.Background(), gw.URL())
	defer conn.Close()
	wsutil.WriteClientText(conn, []byte(`{"ping":1,"req_id":1}`))
	reply, _ := wsutil.ReadServerText(conn)
	fmt.Println(string(reply))
	// Output: {"msg_type":"ping","ping":"pong","echo_req":{"ping":1,"req_id":1},"req_id":1}
}

// A configuration file, checked the way `wsgate serve --check-config` does.
func ExampleParseFile() {
	_, _, err := server.ParseFile("wsgate.yaml", []byte("listen: 127.0.0.1:8080\nactions:\n  - ping\n  - name: echo\n    timeout: -1\n"))
	fmt.Println(err)
	// Output: wsgate.yaml:5: actions[1].timeout: must not be negative
}

// nopT lets miniredis.RunT start a server outside a test.
type nopT struct{}

func (nopT) Fatalf(string, ...any) {}
func (nopT) Cleanup(func())        {}
func (nopT) Logf(string, ...any)   {}
