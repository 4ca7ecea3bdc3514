package main

import (
	"os"
	"strconv"

	"github.com/wsgate/wsgate/server"
)

// redisSettings are the flags and WSGATE_* variables of server.RedisConfig (the URL is --redis).
func redisSettings() []setting {
	str := func(p func(r *server.RedisConfig) *string) func(*options, string) error {
		return func(o *options, v string) error { *p(&o.cfg.RedisConfig) = v; return nil }
	}
	list := func(p func(r *server.RedisConfig) *[]string) func(*options, string) error {
		return func(o *options, v string) error {
			*p(&o.cfg.RedisConfig) = splitList(v)
			return nil
		}
	}
	boolean := func(p func(r *server.RedisConfig) *bool) func(*options, string) error {
		return func(o *options, v string) error {
			b, err := strconv.ParseBool(v)
			*p(&o.cfg.RedisConfig) = b
			return err
		}
	}
	return []setting{
		{"redis-username", "WSGATE_REDIS_USERNAME", "Redis ACL user (the password: WSGATE_REDIS_PASSWORD)",
			str(func(r *server.RedisConfig) *string { return &r.Username }), "the URL's"},
		{"redis-tls", "WSGATE_REDIS_TLS", "TLS to Redis (also on with a rediss:// URL or any --redis-tls-* flag)",
			boolean(func(r *server.RedisConfig) *bool { return &r.TLS.Enabled }), "false"},
		{"redis-tls-ca", "WSGATE_REDIS_TLS_CA", "PEM file of the CAs that sign Redis's certificates",
			str(func(r *server.RedisConfig) *string { return &r.TLS.CA }), "the system's"},
		{"redis-tls-cert", "WSGATE_REDIS_TLS_CERT", "PEM file of a client certificate for Redis",
			str(func(r *server.RedisConfig) *string { return &r.TLS.Cert }), "none"},
		{"redis-tls-key", "WSGATE_REDIS_TLS_KEY", "PEM file of the client certificate's key",
			str(func(r *server.RedisConfig) *string { return &r.TLS.Key }), "none"},
		{"redis-tls-server-name", "WSGATE_REDIS_TLS_SERVER_NAME", "name Redis's certificate must carry",
			str(func(r *server.RedisConfig) *string { return &r.TLS.ServerName }), "the host"},
		{"redis-tls-insecure-skip-verify", "WSGATE_REDIS_TLS_INSECURE_SKIP_VERIFY",
			"DANGEROUS: accept any Redis certificate, so anyone on the path can read and change jobs (tests only)",
			boolean(func(r *server.RedisConfig) *bool { return &r.TLS.InsecureSkipVerify }), "false"},
		{"redis-sentinel-master", "WSGATE_REDIS_SENTINEL_MASTER", "Sentinel: the master's name (with --redis-sentinel-addrs)",
			str(func(r *server.RedisConfig) *string { return &r.Sentinel.Master }), "no Sentinel"},
		{"redis-sentinel-addrs", "WSGATE_REDIS_SENTINEL_ADDRS", "Sentinel: comma-separated host:port of Sentinels",
			list(func(r *server.RedisConfig) *[]string { return &r.Sentinel.Addrs }), "none"},
		{"redis-cluster-addrs", "WSGATE_REDIS_CLUSTER_ADDRS", "Redis Cluster: comma-separated host:port of some nodes",
			list(func(r *server.RedisConfig) *[]string { return &r.Cluster.Addrs }), "not a cluster"},
	}
}

// redisPasswordsFromEnv reads the passwords, which have no flags so that they never show in a process list:
// WSGATE_REDIS_PASSWORD and WSGATE_REDIS_SENTINEL_PASSWORD beat the file.
func redisPasswordsFromEnv(o *options) {
	if v := os.Getenv("WSGATE_REDIS_PASSWORD"); v != "" {
		o.cfg.RedisConfig.Password = v
	}
	if v := os.Getenv("WSGATE_REDIS_SENTINEL_PASSWORD"); v != "" {
		o.cfg.RedisConfig.Sentinel.Password = v
	}
}
