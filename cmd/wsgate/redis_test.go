package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/server"
)

// The binary reaches a TLS Redis (client certificate) as an ACL user: the worker through flags, the gateway
// through the file's redis mapping, both with the password from WSGATE_REDIS_PASSWORD.
func TestServeAndWorkerOverTLSAsACLUser(t *testing.T) {
	bin := buildBinary(t)
	certs := redistest.NewCerts(t)
	srv, tlsAddr := redistest.StartTLS(t, certs)
	admin := srv.Client()
	for _, cmd := range [][]any{
		{"ACL", "SETUSER", "gw", "on", ">s3cret", "~*", "&*", "+@all"},
		{"ACL", "SETUSER", "default", "off"},
	} {
		if err := admin.Do(context.Background(), cmd...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"WSGATE_REDIS_PASSWORD=s3cret"}
	startProcess(t, bin, env, "worker", "--demo", "--concurrency", "4", "--redis", "rediss://"+tlsAddr,
		"--redis-username", "gw", "--redis-tls-ca", certs.CA, "--redis-tls-cert", certs.ClientCert,
		"--redis-tls-key", certs.ClientKey)
	file := filepath.Join(t.TempDir(), "wsgate.yaml")
	yaml := fmt.Sprintf("redis:\n  url: rediss://%s\n  username: gw\n  tls: {ca: %s, cert: %s, key: %s}\n",
		tlsAddr, certs.CA, certs.ClientCert, certs.ClientKey)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	lines := startProcess(t, bin, env, "serve", "--config", file,
		"--listen", fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t)), "--admin", "off")
	pingOK(t, waitURL(t, lines))

	// Without the password the worker does not start, and says why.
	t.Setenv("WSGATE_REDIS_PASSWORD", "")
	err := run([]string{"worker", "--demo", "--config", file}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "WSGATE_REDIS_PASSWORD") {
		t.Fatalf("worker without a password: %v", err)
	}
}

func TestRedisFlagsAndEnvironment(t *testing.T) {
	file := filepath.Join(t.TempDir(), "wsgate.yaml")
	os.WriteFile(file, []byte("redis:\n  username: fromfile\n  password: filepass\n  sentinel: {master: m, addrs: [\"f:1\"], password: fsp}\n"), 0o600)
	t.Setenv("WSGATE_REDIS_USERNAME", "fromenv")
	t.Setenv("WSGATE_REDIS_PASSWORD", "envpass")
	t.Setenv("WSGATE_REDIS_SENTINEL_ADDRS", "e:1, e:2")
	o, err := parseFlags("serve", []string{"--config", file, "--redis-username", "fromflag",
		"--redis-tls-server-name", "redis.internal", "--redis-tls=true"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := server.RedisConfig{Username: "fromflag", Password: "envpass",
		TLS:      server.RedisTLS{Enabled: true, ServerName: "redis.internal"},
		Sentinel: server.RedisSentinel{Master: "m", Addrs: []string{"e:1", "e:2"}, Password: "fsp"}}
	if !reflect.DeepEqual(o.cfg.RedisConfig, want) {
		t.Fatalf("redis config %+v\nwant %+v", o.cfg.RedisConfig, want)
	}
	if _, err := parseFlags("serve", []string{"--redis-cluster-addrs", "a:1", "--prefix", "jobs"}, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "queues.default.prefix (--prefix)") {
		t.Fatalf("an untagged prefix on a cluster in reliable mode: %v", err)
	}
}
