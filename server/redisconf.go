package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"sort"
	"strings"

	"github.com/redis/go-redis/v9"
	"gopkg.in/yaml.v3"

	"github.com/wsgate/wsgate/redisq"
)

// ClusterPrefix is the queue prefix used on Redis Cluster when a queue sets none: its hash tag keeps a
// queue's lists in one slot (job hashes are one key each and spread over the cluster).
const ClusterPrefix = "{jobs}"

// RedisConfig says how to reach Redis: a single node by URL, a master found through Sentinel, or a Redis
// Cluster, each with ACL credentials and TLS if asked. The zero value means DefaultRedisURL. In the config
// file, `redis:` is either this mapping or a plain URL string.
type RedisConfig struct {
	// URL of a single node: redis://[user:password@]host:port[/db], rediss:// (the same over TLS) or
	// unix:///path/to/socket, with go-redis's query options (dial_timeout=3s, pool_size=20, ...); "" means
	// DefaultRedisURL. With Sentinel or Cluster set, its host is not used (its user, password, database,
	// scheme (rediss: TLS), timeouts, retries and pool size are), and "" means none of them.
	URL string `yaml:"url"`
	// Username is the Redis ACL user; "" means the URL's (or "default").
	Username string `yaml:"username"`
	// Password authenticates Username; "" means the URL's. The binary also reads it from
	// WSGATE_REDIS_PASSWORD so that it need not sit in a URL or on a command line.
	Password string `yaml:"password"`
	// TLS configures TLS to Redis (and to the Sentinels); its zero value means TLS only for a rediss:// URL.
	TLS RedisTLS `yaml:"tls"`
	// Sentinel, when Master is set, finds the master through Sentinel (redis.NewFailoverClient).
	Sentinel RedisSentinel `yaml:"sentinel"`
	// Cluster, when Addrs is set, talks to a Redis Cluster (redis.NewClusterClient).
	Cluster RedisCluster `yaml:"cluster"`
}

// RedisTLS configures TLS. Setting any field turns TLS on, as a rediss:// URL does.
type RedisTLS struct {
	// Enabled turns TLS on with no other setting (the system's CAs verify the server); false means TLS only
	// when a rediss:// URL or another field asks for it.
	Enabled bool `yaml:"enabled"`
	// CA is a PEM file of the CAs that sign the servers' certificates; "" means the system's.
	CA string `yaml:"ca"`
	// Cert and Key are PEM files of a client certificate, for servers that ask for one (tls-auth-clients);
	// "" means none. Both or neither.
	Cert string `yaml:"cert"`
	Key  string `yaml:"key"`
	// ServerName is the name the servers' certificates must carry; "" means each server's host.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any server certificate. DANGEROUS: anyone on the path can then read and
	// change every job. For tests only; false means certificates are verified.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// RedisSentinel names the master that Sentinels watch.
type RedisSentinel struct {
	// Master is the master's name in the Sentinels' config (`sentinel monitor NAME ...`); "" means no
	// Sentinel.
	Master string `yaml:"master"`
	// Addrs are Sentinels' host:port addresses; needed with Master.
	Addrs []string `yaml:"addrs"`
	// Username and Password authenticate to the Sentinels themselves (their requirepass or ACL); "" means
	// none. The binary reads the password from WSGATE_REDIS_SENTINEL_PASSWORD too.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// RedisCluster names a Redis Cluster.
type RedisCluster struct {
	// Addrs are host:port addresses of some of the cluster's nodes (the rest are discovered); empty means
	// not a cluster.
	Addrs []string `yaml:"addrs"`
}

// UnmarshalYAML accepts `redis: redis://host:6379` as well as the mapping. Unknown keys are errors, as at the
// top of the file.
func (r *RedisConfig) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*r = RedisConfig{URL: n.Value}
		return nil
	}
	if err := knownKeys(n, reflect.TypeOf(*r), "redis"); err != nil {
		return err
	}
	type plain RedisConfig
	return n.Decode((*plain)(r))
}

// knownKeys reports the first key of mapping n (and of its nested mappings) that struct type t has no yaml tag
// for: a yaml.Node's Decode does not check that by itself.
func knownKeys(n *yaml.Node, t reflect.Type, path string) error {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	fields := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		fields[tag] = t.Field(i).Type
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		ft, ok := fields[k.Value]
		if !ok {
			return fmt.Errorf("line %d: field %s not found in %s", k.Line, k.Value, path)
		}
		if ft.Kind() == reflect.Struct {
			if err := knownKeys(n.Content[i+1], ft, path+"."+k.Value); err != nil {
				return err
			}
		}
	}
	return nil
}

// Kind names the deployment: "sentinel", "cluster" or "single".
func (r RedisConfig) Kind() string {
	switch {
	case r.Sentinel.Master != "":
		return "sentinel"
	case len(r.Cluster.Addrs) > 0:
		return "cluster"
	}
	return "single"
}

// IsCluster reports whether the config names a Redis Cluster.
func (r RedisConfig) IsCluster() bool { return r.Kind() == "cluster" }

func (t RedisTLS) isSet() bool {
	return t.Enabled || t.CA != "" || t.Cert != "" || t.Key != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// url parses URL (nil, nil when it is empty).
func (r RedisConfig) url() (*redis.Options, error) {
	u := r.URL
	if u == "" {
		if r.Kind() != "single" {
			return nil, nil
		}
		u = DefaultRedisURL
	}
	o, err := redis.ParseURL(u)
	if err != nil {
		// ParseURL's errors may quote the URL, and so its password: leave the value out.
		msg := strings.ReplaceAll(err.Error(), u, "<the URL>")
		return nil, fmt.Errorf("redis.url (--redis): not a redis://, rediss:// or unix:// URL: %s", msg)
	}
	return o, nil
}

// tlsConfig is the TLS configuration, or nil for none. fromURL is the rediss:// URL's, if any.
func (r RedisConfig) tlsConfig(fromURL *tls.Config) (*tls.Config, error) {
	t := r.TLS
	if fromURL == nil && !t.isSet() {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if fromURL != nil && r.Kind() == "single" {
		c = fromURL.Clone() // ServerName: the URL's host
	}
	if t.CA != "" {
		pem, err := os.ReadFile(t.CA)
		if err != nil {
			return nil, fmt.Errorf("redis.tls.ca (--redis-tls-ca): %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis.tls.ca (--redis-tls-ca): no PEM certificate in %s", t.CA)
		}
	}
	if (t.Cert == "") != (t.Key == "") {
		return nil, errors.New("redis.tls.cert (--redis-tls-cert): a client certificate needs both cert and key")
	}
	if t.Cert != "" {
		pair, err := tls.LoadX509KeyPair(t.Cert, t.Key)
		if err != nil {
			return nil, fmt.Errorf("redis.tls.cert (--redis-tls-cert): %w", err)
		}
		c.Certificates = []tls.Certificate{pair}
	}
	if t.ServerName != "" {
		c.ServerName = t.ServerName
	}
	if t.InsecureSkipVerify { // or the URL's ?skip_verify=true, kept by the Clone above
		c.InsecureSkipVerify = true
	}
	return c, nil
}

// Validate reports a configuration error, naming the setting. It reads the TLS files, so a missing or bad
// file is found by --check-config.
func (r RedisConfig) Validate() error {
	if r.Sentinel.Master != "" && len(r.Cluster.Addrs) > 0 {
		return errors.New("redis.sentinel: Sentinel and Cluster exclude each other: set redis.sentinel or redis.cluster")
	}
	if r.Sentinel.Master == "" && len(r.Sentinel.Addrs) > 0 {
		return errors.New("redis.sentinel.master (--redis-sentinel-master): needed with redis.sentinel.addrs")
	}
	if r.Sentinel.Master != "" && len(r.Sentinel.Addrs) == 0 {
		return errors.New("redis.sentinel.addrs (--redis-sentinel-addrs): needed with redis.sentinel.master")
	}
	for _, a := range append(append([]string{}, r.Sentinel.Addrs...), r.Cluster.Addrs...) {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("redis.%s.addrs: %q is not host:port", r.Kind(), a)
		}
	}
	o, err := r.url()
	if err != nil {
		return err
	}
	if o != nil && r.Kind() != "single" {
		if o.Network == "unix" {
			return fmt.Errorf("redis.url (--redis): a unix:// URL names a single node, not a %s", r.Kind())
		}
		if r.IsCluster() && o.DB != 0 {
			return fmt.Errorf("redis.url (--redis): database %d: a Redis Cluster has database 0 only", o.DB)
		}
	}
	var fromURL *tls.Config
	if o != nil {
		fromURL = o.TLSConfig
	}
	_, err = r.tlsConfig(fromURL)
	return err
}

// NewClient builds the client the config describes: a *redis.Client, a failover client (Sentinel) or a
// *redis.ClusterClient. It does not connect yet (see PingRedis). poolSize, if larger than go-redis's default,
// is the connection pool's size (per node on a cluster); a worker needs one connection per fetcher (see
// WorkerPoolSize).
func (r RedisConfig) NewClient(poolSize int) (redis.UniversalClient, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	o, _ := r.url()
	if o == nil {
		o = &redis.Options{}
	}
	tc, _ := r.tlsConfig(o.TLSConfig)
	user, pass := o.Username, o.Password
	if r.Username != "" {
		user = r.Username
	}
	if r.Password != "" {
		pass = r.Password
	}
	switch r.Kind() {
	case "sentinel":
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: r.Sentinel.Master, SentinelAddrs: r.Sentinel.Addrs,
			SentinelUsername: r.Sentinel.Username, SentinelPassword: r.Sentinel.Password,
			Username: user, Password: pass, DB: o.DB, TLSConfig: tc, PoolSize: max(o.PoolSize, poolSize),
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout, MaxRetries: o.MaxRetries,
		}), nil
	case "cluster":
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: r.Cluster.Addrs,
			Username: user, Password: pass, TLSConfig: tc, PoolSize: max(o.PoolSize, poolSize),
			DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout, MaxRetries: o.MaxRetries,
		}), nil
	}
	o.Username, o.Password, o.TLSConfig = user, pass, tc
	o.PoolSize = max(o.PoolSize, poolSize)
	return redis.NewClient(o), nil
}

// WorkerPoolSize is the pool size a worker of the given concurrency needs (redisq.WorkerRedisOptions).
func WorkerPoolSize(concurrency int) int {
	return redisq.WorkerRedisOptions(&redis.Options{}, concurrency).PoolSize
}

// LogValue describes the deployment for logs without credentials: its kind, host:port addresses (or socket
// path), whether TLS is on, and the Sentinel master's name.
func (r RedisConfig) LogValue() slog.Value {
	o, _ := r.url()
	attrs := []slog.Attr{slog.String("kind", r.Kind())}
	switch r.Kind() {
	case "sentinel":
		attrs = append(attrs, slog.String("master", r.Sentinel.Master), slog.Any("addrs", r.Sentinel.Addrs))
	case "cluster":
		attrs = append(attrs, slog.Any("addrs", r.Cluster.Addrs))
	default:
		if o != nil {
			attrs = append(attrs, slog.String("addr", o.Addr))
		}
	}
	tlsOn := r.TLS.isSet() || (o != nil && o.TLSConfig != nil)
	attrs = append(attrs, slog.Bool("tls", tlsOn))
	if r.TLS.InsecureSkipVerify || (o != nil && o.TLSConfig != nil && o.TLSConfig.InsecureSkipVerify) {
		attrs = append(attrs, slog.Bool("tls_insecure_skip_verify", true))
	}
	return slog.GroupValue(attrs...)
}

// PingRedis checks that rdb answers, and explains the usual reasons when it does not: a certificate that does
// not verify, or credentials that Redis refuses.
func PingRedis(ctx context.Context, rdb redis.UniversalClient) error {
	err := rdb.Ping(ctx).Err()
	if err == nil {
		return nil
	}
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var certInvalid x509.CertificateInvalidError
	msg := err.Error()
	switch {
	case errors.As(err, &unknownCA):
		return fmt.Errorf("%w (the server's certificate is not signed by a trusted CA: check redis.tls.ca / --redis-tls-ca)", err)
	case errors.As(err, &hostname):
		return fmt.Errorf("%w (the server's certificate is for another name: check the host or redis.tls.server_name)", err)
	case errors.As(err, &certInvalid):
		return fmt.Errorf("%w (check the server's certificate and redis.tls.ca)", err)
	case strings.Contains(msg, "tls: certificate required"):
		return fmt.Errorf("%w (the server wants a client certificate: redis.tls.cert and redis.tls.key / --redis-tls-cert, --redis-tls-key)", err)
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w (the server closed the connection: a TLS port needs a rediss:// URL or redis.tls)", err)
	case strings.HasPrefix(msg, "WRONGPASS"), strings.HasPrefix(msg, "NOAUTH"), strings.Contains(msg, "invalid username-password"):
		return fmt.Errorf("%w (check redis.username / --redis-username and the password: WSGATE_REDIS_PASSWORD or redis.password)", err)
	case strings.HasPrefix(msg, "NOPERM"):
		return fmt.Errorf("%w (the Redis ACL user lacks a permission wsgate needs)", err)
	}
	return err
}

// clusterPrefixes gives every queue without a prefix the prefix ClusterPrefix when Redis is a cluster, so that
// a queue's lists share a slot, and refuses a reliable-mode queue whose prefix has no hash tag (BLMOVE between
// its lists would fail CROSSSLOT). It returns the names of the queues it changed.
func (c *Config) clusterPrefixes() ([]string, error) {
	_, given := c.Redis.(*redis.ClusterClient)
	if !(given || (c.Redis == nil && c.RedisConfig.IsCluster())) {
		return nil, nil
	}
	mode, _ := redisq.ParseMode(c.Mode)
	names := make([]string, 0, len(c.Queues))
	for name := range c.Queues {
		names = append(names, name)
	}
	sort.Strings(names)
	var changed []string
	for _, name := range names {
		q := c.Queues[name]
		keys := q.keys()
		switch {
		case !q.NoPrefix && q.Prefix == "":
			q.Prefix = ClusterPrefix
			c.Queues[name] = q
			changed = append(changed, name)
		case !hashTagged(q) && mode == redisq.ModeReliable:
			setting := "queues." + name + ".prefix"
			if name == DefaultQueueName {
				setting += " (--prefix)"
			}
			return nil, fmt.Errorf("%s: %q has no {hash tag}: reliable mode on Redis Cluster needs one, such as %q, "+
				"so that a queue's pending and processing lists share a slot", setting, keys.Pending(), ClusterPrefix)
		}
	}
	return changed, nil
}

// hashTagged reports whether a queue's prefix holds a non-empty {tag}, as redisq requires on a cluster.
func hashTagged(q Queue) bool {
	if q.NoPrefix {
		return false
	}
	_, rest, ok := strings.Cut(q.Prefix, "{")
	tag, _, closed := strings.Cut(rest, "}")
	return ok && closed && tag != ""
}

// redisForLog is what the gateway's start log line says about Redis.
func (g *Gateway) redisForLog() any {
	if !g.ownRedis {
		return "given by the program"
	}
	return g.cfg.RedisConfig
}
