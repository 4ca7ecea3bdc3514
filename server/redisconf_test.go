package server_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/internal/wstest"
	"github.com/wsgate/wsgate/redisq"
	"github.com/wsgate/wsgate/server"
	"github.com/wsgate/wsgate/server/demo"
)

func TestRedisConfigInTheFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		want       server.RedisConfig
	}{
		{"a plain URL, as before", "redis: redis://h:1/2\n", server.RedisConfig{URL: "redis://h:1/2"}},
		{"the mapping", `
redis:
  url: rediss://h:1
  username: alice
  password: pw
  tls: {ca: ca.pem, cert: c.pem, key: k.pem, server_name: redis.internal}
`, server.RedisConfig{URL: "rediss://h:1", Username: "alice", Password: "pw",
			TLS: server.RedisTLS{CA: "ca.pem", Cert: "c.pem", Key: "k.pem", ServerName: "redis.internal"}}},
		{"sentinel", "redis:\n  sentinel: {master: m, addrs: [a:1, b:2], password: sp}\n",
			server.RedisConfig{Sentinel: server.RedisSentinel{Master: "m", Addrs: []string{"a:1", "b:2"}, Password: "sp"}}},
		{"cluster", "redis:\n  cluster:\n    addrs: [a:1]\n", server.RedisConfig{Cluster: server.RedisCluster{Addrs: []string{"a:1"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The TLS files need not exist to be parsed: File.Config does not check them (ParseFile does).
			cfg, _, err := server.ParseFile("cfg.yaml", []byte(tt.yaml))
			if err != nil && !strings.Contains(err.Error(), "redis.tls") {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.RedisConfig, tt.want) {
				t.Fatalf("got %+v\nwant %+v", cfg.RedisConfig, tt.want)
			}
		})
	}
}

// The commented-out redis mapping of wsgate.example.yaml uses only keys that exist.
func TestExampleRedisMappingParses(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../wsgate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var block []string
	for _, l := range strings.Split(string(data), "\n") {
		if l == "# redis:" || (len(block) > 0 && strings.HasPrefix(l, "#   ")) {
			block = append(block, strings.TrimPrefix(l, "# "))
		} else if len(block) > 0 {
			break
		}
	}
	var f struct {
		Redis server.RedisConfig `yaml:"redis"`
	}
	if err := yaml.Unmarshal([]byte(strings.Join(block, "\n")), &f); err != nil {
		t.Fatal(err)
	}
	r := f.Redis
	if len(block) < 15 || r.TLS.ServerName != "redis.internal" || r.Sentinel.Master != "mymaster" || len(r.Cluster.Addrs) != 2 {
		t.Fatalf("the example's redis mapping (%d lines) parsed as %+v", len(block), r)
	}
}

func TestRedisConfigErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "redis:\n  url: redis://h\n  sentinels: {}\n", `cfg.yaml:3: unknown key "redis.sentinels"`},
		{"unknown nested key", "redis:\n  tls:\n    ca_file: x\n", `cfg.yaml:3: unknown key "redis.tls.ca_file"`},
		{"bad scheme", "redis: http://h\n", "cfg.yaml:1: redis.url (--redis): not a redis://, rediss:// or unix:// URL"},
		{"missing CA file", "redis:\n  url: rediss://h\n  tls:\n    ca: /nonexistent.pem\n", "cfg.yaml:4: redis.tls.ca (--redis-tls-ca): open /nonexistent.pem"},
		{"cert without key", "redis:\n  tls: {cert: c.pem}\n", "redis.tls.cert (--redis-tls-cert): a client certificate needs both cert and key"},
		{"master without sentinels", "redis:\n  sentinel: {master: m}\n", "cfg.yaml:2: redis.sentinel.addrs (--redis-sentinel-addrs): needed"},
		{"sentinels without master", "redis:\n  sentinel: {addrs: [a:1]}\n", "redis.sentinel.master (--redis-sentinel-master): needed"},
		{"sentinel and cluster", "redis:\n  sentinel: {master: m, addrs: [a:1]}\n  cluster: {addrs: [b:1]}\n", "exclude each other"},
		{"bad address", "redis:\n  cluster: {addrs: [nohost]}\n", `redis.cluster.addrs: "nohost" is not host:port`},
		{"database on a cluster", "redis:\n  url: redis://u:p@x/3\n  cluster: {addrs: [a:1]}\n", "database 3: a Redis Cluster has database 0 only"},
		{"reliable cluster queue without a hash tag", "redis:\n  cluster: {addrs: [a:1]}\nqueues:\n  default:\n    prefix: jobs\n",
			`cfg.yaml:5: queues.default.prefix (--prefix): "jobs::pending" has no {hash tag}: reliable mode on Redis Cluster needs one, such as "{jobs}"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := server.ParseFile("cfg.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
	// A password in a bad URL does not reach the error.
	_, _, err := server.ParseFile("cfg.yaml", []byte("redis: redis://u:s3cret@h:notaport\n"))
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("error %v: want one, without the password", err)
	}
}

func TestClusterQueuePrefixes(t *testing.T) {
	t.Parallel()
	cluster := server.RedisConfig{Cluster: server.RedisCluster{Addrs: []string{"127.0.0.1:1"}}}
	tests := []struct {
		name   string
		cfg    server.Config
		want   string // the default queue's pending list
		errHas string
	}{
		{"single node keeps the Perl default", server.Config{}, "jobs::pending", ""},
		{"cluster without a prefix gets {jobs}", server.Config{RedisConfig: cluster}, "{jobs}::pending", ""},
		{"cluster with a tagged prefix keeps it", server.Config{RedisConfig: cluster, Prefix: "{q}"}, "{q}::pending", ""},
		{"cluster, untagged prefix, recoverable mode: allowed", server.Config{RedisConfig: cluster, Prefix: "jobs", Mode: "recoverable"}, "jobs::pending", ""},
		{"cluster, untagged prefix, reliable mode: refused", server.Config{RedisConfig: cluster, Prefix: "jobs"}, "", "queues.default.prefix (--prefix)"},
		{"cluster, no prefix at all, reliable mode: refused", server.Config{RedisConfig: cluster,
			Queues: map[string]server.Queue{"default": {NoPrefix: true}}}, "", "queues.default.prefix"},
		{"cluster, another queue untagged: refused by name", server.Config{RedisConfig: cluster,
			Queues: map[string]server.Queue{"priority": {Prefix: "p"}}}, "", "queues.priority.prefix:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.cfg.WithDefaults()
			if tt.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errHas) {
					t.Fatalf("error %v, want one containing %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			q := cfg.Queues[server.DefaultQueueName]
			if got := (redisq.Keys{Prefix: q.Prefix, NoPrefix: q.NoPrefix, Queue: q.Name}).Pending(); got != tt.want {
				t.Fatalf("pending list %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRedisConfigBuildsTheClientItNames(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rc   server.RedisConfig
		addr string // a *redis.Client's address; "" for a cluster
	}{
		{"default", server.RedisConfig{}, "127.0.0.1:6379"},
		{"unix socket", server.RedisConfig{URL: "unix:///run/redis.sock"}, "/run/redis.sock"},
		{"sentinel", server.RedisConfig{Sentinel: server.RedisSentinel{Master: "m", Addrs: []string{"127.0.0.1:1"}}}, "FailoverClient"},
		{"cluster", server.RedisConfig{Cluster: server.RedisCluster{Addrs: []string{"127.0.0.1:1"}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rdb, err := tt.rc.NewClient(50)
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			switch c := rdb.(type) {
			case *redis.Client:
				if c.Options().Addr != tt.addr || c.Options().PoolSize != 50 {
					t.Fatalf("client for %s with pool %d, want %s with 50", c.Options().Addr, c.Options().PoolSize, tt.addr)
				}
			case *redis.ClusterClient:
				if tt.addr != "" || c.Options().PoolSize != 50 {
					t.Fatalf("a cluster client (pool %d), want a client for %s", c.Options().PoolSize, tt.addr)
				}
			}
		})
	}
	// Credentials: the config's beat the URL's; the log line names neither.
	rc := server.RedisConfig{URL: "redis://bob:urlpass@10.0.0.1:7000/1", Password: "cfgpass"}
	rdb, err := rc.NewClient(0)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	if o := rdb.(*redis.Client).Options(); o.Username != "bob" || o.Password != "cfgpass" || o.DB != 1 || o.TLSConfig != nil {
		t.Fatalf("options %+v", o)
	}
	// The URL's query options reach a cluster client too.
	crdb, err := server.RedisConfig{URL: "redis://u:p@/?dial_timeout=7s&pool_size=3",
		Cluster: server.RedisCluster{Addrs: []string{"127.0.0.1:1"}}}.NewClient(0)
	if err != nil {
		t.Fatal(err)
	}
	defer crdb.Close()
	if o := crdb.(*redis.ClusterClient).Options(); o.DialTimeout != 7*time.Second || o.PoolSize != 3 || o.Username != "u" {
		t.Fatalf("cluster options %+v", o)
	}
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "redis", rc)
	if s := buf.String(); strings.Contains(s, "pass") || !strings.Contains(s, "redis.addr=10.0.0.1:7000") ||
		!strings.Contains(s, "redis.kind=single") || !strings.Contains(s, "redis.tls=false") {
		t.Fatalf("log line %q", s)
	}
}

// startGatewayOn runs a gateway with cfg's Redis settings until the test ends: WebSocket on a free port, no
// admin listener unless cfg.Admin asks for one, the demo actions unless cfg names some.
func startGatewayOn(t *testing.T, cfg server.Config, opts ...server.Option) *server.Gateway {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	if cfg.Admin == "" {
		cfg.Admin = "off"
	}
	if cfg.Actions == nil {
		cfg.Actions = server.DemoActions()
	}
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	gw, err := server.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := gw.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	if err := gw.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return gw
}

// startWorkerOn runs the demo worker as `wsgate worker` does: Redis, mode and queue from cfg with defaults.
func startWorkerOn(t *testing.T, cfg server.Config) *redisq.Worker {
	t.Helper()
	cfg.Logger = quiet
	cfg, err := cfg.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	const concurrency = 8
	rdb, err := cfg.RedisConfig.NewClient(server.WorkerPoolSize(concurrency))
	if err != nil {
		t.Fatal(err)
	}
	q := cfg.Queues[server.DefaultQueueName]
	w, _ := runWorker(t, rdb, redisq.WorkerConfig{Mode: redisq.Mode(cfg.Mode), Handler: demo.Handler(),
		Keys: redisq.Keys{Prefix: q.Prefix, NoPrefix: q.NoPrefix, Queue: q.Name}, Concurrency: concurrency,
		Heartbeat: 500 * time.Millisecond})
	return w
}

// startFails checks that a gateway with cfg does not start, with an error that holds every want.
func startFails(t *testing.T, cfg server.Config, want ...string) {
	t.Helper()
	cfg.Listen, cfg.Admin, cfg.Logger = "127.0.0.1:0", "off", quiet
	if cfg.Actions == nil {
		cfg.Actions = server.DemoActions()
	}
	gw, err := server.New(cfg)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = gw.Start(ctx)
		cancel()
		gw.Shutdown(context.Background())
	}
	if err == nil {
		t.Fatal("the gateway started")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q, want it to say %q", err, w)
		}
	}
}

func pong(t *testing.T, gw *server.Gateway) {
	t.Helper()
	if got := wstest.Dial(t, gw.URL()).Call(`{"ping":1,"req_id":1}`); got["ping"] != "pong" {
		t.Fatalf("ping: %v", got)
	}
}

func TestRedisOverTLS(t *testing.T) {
	t.Parallel()
	certs := redistest.NewCerts(t)
	_, addr := redistest.StartTLS(t, certs)
	rc := server.RedisConfig{URL: "rediss://" + addr,
		TLS: server.RedisTLS{CA: certs.CA, Cert: certs.ClientCert, Key: certs.ClientKey}}
	startWorkerOn(t, server.Config{RedisConfig: rc})
	pong(t, startGatewayOn(t, server.Config{RedisConfig: rc}))

	other := redistest.NewCerts(t) // another CA, which did not sign the server's certificate
	tests := []struct {
		name string
		rc   server.RedisConfig
		want []string
	}{
		{"wrong CA", server.RedisConfig{URL: rc.URL, TLS: server.RedisTLS{CA: other.CA, Cert: certs.ClientCert, Key: certs.ClientKey}},
			[]string{"certificate signed by unknown authority", "redis.tls.ca"}},
		{"wrong server name", server.RedisConfig{URL: rc.URL, TLS: server.RedisTLS{CA: certs.CA, Cert: certs.ClientCert,
			Key: certs.ClientKey, ServerName: "redis.example.com"}}, []string{"redis.example.com", "redis.tls.server_name"}},
		{"client certificate missing", server.RedisConfig{URL: rc.URL, TLS: server.RedisTLS{CA: certs.CA}}, []string{"certificate required", "redis.tls.cert"}},
		{"plain redis:// to the TLS port", server.RedisConfig{URL: "redis://" + addr}, []string{"EOF", "rediss://"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { startFails(t, server.Config{RedisConfig: tt.rc}, tt.want...) })
	}
}

func TestRedisACLUser(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr})
	ctx := context.Background()
	for _, cmd := range [][]any{
		{"ACL", "SETUSER", "wsgate", "on", ">s3cret", "~*", "&*", "+@all"},
		{"ACL", "SETUSER", "default", "off"}, // nobody gets in without a user and password
	} {
		if err := admin.Do(ctx, cmd...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	admin.Close()
	// The config's password beats the URL's.
	rc := server.RedisConfig{URL: "redis://wsgate:wrong@" + srv.Addr, Password: "s3cret"}
	startWorkerOn(t, server.Config{RedisConfig: rc})
	pong(t, startGatewayOn(t, server.Config{RedisConfig: rc}))

	tests := []struct {
		name string
		rc   server.RedisConfig
		want []string
	}{
		{"wrong password", server.RedisConfig{URL: srv.URL(), Username: "wsgate", Password: "nope"},
			[]string{"WRONGPASS", "WSGATE_REDIS_PASSWORD"}},
		{"no user: the default user is off", server.RedisConfig{URL: srv.URL()}, []string{"WSGATE_REDIS_PASSWORD"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { startFails(t, server.Config{RedisConfig: tt.rc}, tt.want...) })
	}
}

func TestRedisCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-node Redis Cluster")
	}
	t.Parallel()
	cluster := redistest.StartCluster(t)
	cfg := server.Config{RedisConfig: server.RedisConfig{Cluster: server.RedisCluster{Addrs: cluster.Addrs()[:1]}}}
	startWorkerOn(t, cfg)
	log := &testutil.Buffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(log, nil))
	gw := startGatewayOn(t, cfg)
	c := wstest.Dial(t, gw.URL())
	for i := 0; i < 20; i++ { // job hashes land on every master
		if got := c.Call(fmt.Sprintf(`{"echo":%d}`, i)); got["echo"] == nil {
			t.Fatalf("echo: %v", got)
		}
	}
	if s := log.String(); !strings.Contains(s, "queues without a prefix use {jobs}") || !strings.Contains(s, "redis.kind=cluster") {
		t.Fatalf("log: %s", s)
	}
}

func TestRedisUnixSocket(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "redis.sock")
	redistest.Start(t, "--unixsocket", sock, "--unixsocketperm", "700")
	rc := server.RedisConfig{URL: "unix://" + sock}
	startWorkerOn(t, server.Config{RedisConfig: rc})
	pong(t, startGatewayOn(t, server.Config{RedisConfig: rc}))
}
