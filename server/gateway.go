package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/actors"
	"github.com/wsgate/wsgate/internal/redact"
	"github.com/wsgate/wsgate/redisq"
	"github.com/wsgate/wsgate/transport"
)

// Option changes how New builds a gateway (for programs that embed it).
type Option func(*options)

type options struct {
	system   *actor.ActorSystem
	hooks    actors.Hooks
	registry prometheus.Registerer
	gatherer prometheus.Gatherer
}

// WithActorSystem runs the gateway's actors in the caller's actor system (which the gateway then does not shut
// down) instead of one of its own.
func WithActorSystem(system *actor.ActorSystem) Option { return func(o *options) { o.system = system } }

// WithHooks adds hooks (several WithHooks compose, in order).
func WithHooks(h actors.Hooks) Option { return func(o *options) { o.hooks.Merge(h) } }

// WithMetrics registers the gateway's metrics on reg and serves g on /metrics; without it the gateway uses a
// registry of its own.
func WithMetrics(reg prometheus.Registerer, g prometheus.Gatherer) Option {
	return func(o *options) { o.registry, o.gatherer = reg, g }
}

// Gateway is a running wsgate: WebSocket clients in, jobs on Redis, results back.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	rdb      redis.UniversalClient
	ownRedis bool

	system    *actor.ActorSystem
	ownSystem bool
	root      *actor.RootContext
	registry  *actors.Registry
	sessions  *actors.Sessions
	clients   map[string]*redisq.Client // by queue name
	ws        *transport.Server
	certs     *transport.CertReloader // nil without TLS
	gatherer  prometheus.Gatherer
	dispatch  *actors.PoolDispatcher // nil unless Config.SessionWorkers is set
	watch     *queueWatch
	metrics   *metrics
	stopWatch context.CancelFunc

	ln      net.Listener
	admin   *http.Server
	adminLn net.Listener
	ready   atomic.Bool

	wg           sync.WaitGroup
	startOnce    sync.Once
	startErr     error
	shutdownOnce sync.Once
	shutdownErr  error
}

// New checks cfg and builds a gateway; nothing runs until Start.
func New(cfg Config, opts ...Option) (*Gateway, error) {
	cfg, err := cfg.WithDefaults()
	if err == nil && len(cfg.Actions) == 0 {
		err = ErrNoActions
	}
	if err != nil {
		return nil, fmt.Errorf("server: config: %w", err)
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger.With("component", "gateway"), rdb: cfg.Redis,
		clients: map[string]*redisq.Client{}}
	if g.certs, err = newCertReloader(cfg.TLS); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if g.rdb == nil {
		if g.rdb, err = cfg.RedisConfig.NewClient(0); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
		g.ownRedis = true
	}
	if len(cfg.clusterPrefixed) > 0 {
		g.log.Info("redis cluster: queues without a prefix use "+ClusterPrefix+" so that each queue's lists share a slot; workers must use the same prefix",
			"queues", cfg.clusterPrefixed)
	}
	g.system = o.system
	if g.system == nil {
		g.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return quietLogger(cfg.Logger)
		}))
		g.ownSystem = true
	}
	// Sessions stop, never restart, when they fail: a restarted session would have lost its connection state.
	g.root = g.system.Root.WithGuardian(actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive {
		return actor.StopDirective
	}))

	// One queue client per queue that some action uses (each with its own completion channel). The registry
	// tells the queues about abandoned jobs, and the queues tell the registry about completions.
	var registry *actors.Registry
	used := map[string]bool{}
	for _, a := range cfg.Actions {
		used[queueOf(a)] = true
	}
	for name := range used {
		q := cfg.Queues[name]
		c, err := redisq.NewClient(redisq.ClientConfig{
			Redis:           g.rdb,
			Mode:            redisq.Mode(cfg.Mode),
			Keys:            q.keys(),
			JobTTL:          maxTimeout(cfg) + 30*time.Second,
			CancelForgotten: true,
			Logger:          cfg.Logger.With("queue", name),
			OnComplete: func(c redisq.Completion) {
				registry.Complete(c.JobID, actors.JobOutcome{Payload: c.Result.Payload, Err: c.Err})
			},
		})
		if err != nil {
			return nil, err
		}
		g.clients[name] = c
	}
	inspectors := make(map[string]*redisq.Inspector, len(used))
	for name := range used {
		inspectors[name] = redisq.NewInspector(g.rdb, cfg.Queues[name].keys())
	}
	g.watch = newQueueWatch(cfg, cfg.Logger.With("component", "queue-watch"), inspectors)
	registry, err = actors.NewRegistry(g.root, actors.RegistryConfig{Logger: cfg.Logger, OnAbandon: func(id string) {
		for _, c := range g.clients { // only the client that submitted the job knows it
			c.Forget(id)
		}
	}})
	if err != nil {
		return nil, err
	}
	g.registry = registry

	list := make([]actors.Action, 0, len(cfg.Actions))
	for _, a := range cfg.Actions {
		list = append(list, actors.Action{Name: a.Name, MsgType: a.MsgType, StashParams: a.StashParams,
			Timeout: a.Timeout, RateLimit: a.RateLimit, InsteadOfForward: a.InsteadOfForward,
			Submitter:         rpcSubmitter{g.clients[queueOf(a)]},
			RequireResult:     orDefault(a.RequireResult, cfg.RequireResult),
			IgnoreResultStash: !orDefault(a.ResultStash, orDefault(cfg.ResultStash, true))})
	}
	acts, err := actors.NewActions(list...)
	if err != nil {
		return nil, err
	}

	reg, gatherer := o.registry, o.gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, gatherer = r, r
	}
	g.gatherer = gatherer
	m, err := newMetrics(reg, g)
	if err != nil {
		return nil, fmt.Errorf("server: metrics: %w", err)
	}
	g.metrics = m
	var dispatcher actor.Dispatcher
	if cfg.SessionWorkers > 0 {
		g.dispatch = actors.NewPoolDispatcher(cfg.SessionWorkers, 300)
		dispatcher = g.dispatch
	}
	g.sessions, err = actors.NewSessions(actors.SessionConfig{
		Dispatcher:         dispatcher,
		Actions:            acts,
		Registry:           g.registry,
		Submitter:          rpcSubmitter{g.clients[DefaultQueueName]},
		NewJobID:           redisq.NewID,
		Timeout:            cfg.QueueTimeout,
		MaxInFlight:        cfg.MaxInFlight,
		RateLimit:          cfg.RateLimit,
		MaxResponseSize:    cfg.MaxResponseSize,
		Sanity:             cfg.Sanity,
		DisableSanityCheck: cfg.DisableSanityCheck,
		Hooks:              o.hooks,
		Observer:           m,
		Logger:             cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	tcfg := cfg.Transport
	if tcfg.Logger == nil {
		tcfg.Logger = cfg.Logger
	}
	tcfg.PassInvalidUTF8 = !cfg.CloseOnInvalidUTF8
	if g.certs != nil && tcfg.TLS == nil {
		tcfg.TLS = g.certs.TLSConfig()
	}
	g.ws, err = transport.NewServer(tcfg, wsHandler{g})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// orDefault is *b, or def when b is nil.
func orDefault(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

func queueOf(a Action) string {
	if a.Queue == "" {
		return DefaultQueueName
	}
	return a.Queue
}

// maxTimeout is the longest time any job waits, which bounds how long job hashes must live.
func maxTimeout(cfg Config) time.Duration {
	d := cfg.QueueTimeout
	for _, a := range cfg.Actions {
		d = max(d, a.Timeout)
	}
	return d
}

// rpcSubmitter adapts a queue client to the session's Submitter with the JobAsync job shape. A nil client
// (an action whose queue has no client: cannot happen after New) fails the submit.
type rpcSubmitter struct{ c *redisq.Client }

func (s rpcSubmitter) Submit(jobID, method string, params []byte) error {
	if s.c == nil {
		return errors.New("server: action has no queue")
	}
	return s.c.Submit(redisq.RPCSubmission(jobID, method, params))
}

// wsHandler connects transport events to session actors.
type wsHandler struct{ g *Gateway }

// Backpressure: a connection stops being read when this many of its messages, or this many bytes, wait for
// its session, and is read again when the session has caught up to half of both. The session's mailbox stays
// bounded, and the bytes waiting count against the transport's buffer budget (Conn.ChargeBuffer).
const (
	maxInboundBacklog      = 64
	resumeInboundBacklog   = maxInboundBacklog / 2
	maxInboundBacklogBytes = 1 << 20
	resumeInboundBytes     = maxInboundBacklogBytes / 2
)

// connState is what the gateway keeps on a transport connection: its session's PID, or while the session is
// passivated what the session left (see actors.Host), and the backlog of messages sent to the session.
type connState struct {
	conn sessionConn

	mu      sync.Mutex
	pid     *actor.PID           // nil while the session is passivated
	idle    *actors.SessionState // what a passivated session kept (nil if nothing)
	backlog int32                // messages sent to the session and not handled yet
	bytes   int32                // their size (at most maxInboundBacklogBytes plus one message)
	paused  bool                 // what conn was last told
	closed  bool                 // OnClose has run
	quiet   uint8                // passivation sweeps since the last message (saturates at quietSweeps)
	eager   bool                 // the last message was sent Quiet: the session passivates once it is idle
}

// sessionConn is the part of *transport.Conn that the connection's state uses: what the session sends
// through, and backpressure.
type sessionConn interface {
	actors.Conn
	SetReadPaused(paused bool)
	ChargeBuffer(delta int)
}

// quietSweeps is how many passivation sweeps (every Config.PassivateAfter/2) must find a connection without
// a message before its session is asked to passivate: so between PassivateAfter and 1.5 × PassivateAfter
// after the last one. A message that comes after such a pause, or a connection's first, is sent Quiet: the
// session passivates as soon as it has answered it, since the next one is likely far (a client that
// connects, asks, and idles; a client that pings now and then). A connection that sends more often than
// every PassivateAfter never pays a respawn; one that starts a burst after a pause pays one.
const quietSweeps = 3

// addBacklog counts messages in (n=1) or handled (n=-1), of size bytes, and pauses or resumes reading at the
// thresholds. The count and the call to the transport share one lock, so the connection's state always
// follows the count, whatever the order in which OnMessage and Handled run.
func (cs *connState) addBacklog(n, bytes int) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.addBacklogLocked(n, bytes)
}

func (cs *connState) addBacklogLocked(n, bytes int) {
	cs.backlog += int32(n)
	cs.bytes += int32(bytes)
	switch {
	case !cs.paused && (cs.backlog >= maxInboundBacklog || cs.bytes >= maxInboundBacklogBytes):
		cs.paused = true
		cs.conn.SetReadPaused(true)
	case cs.paused && cs.backlog <= resumeInboundBacklog && cs.bytes <= resumeInboundBytes:
		cs.paused = false
		cs.conn.SetReadPaused(false)
	}
}

// Passivate implements actors.Host: the session may stop its actor when nothing was sent to it that it has
// not handled, and no message came since the sweep that asked (a message that came and was handled in
// between resets quiet). From here on, OnMessage resumes the session before sending to it.
func (cs *connState) Passivate(st *actors.SessionState) bool {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed || cs.pid == nil || cs.backlog != 0 || !cs.eager && cs.quiet < quietSweeps {
		return false
	}
	cs.pid, cs.idle = nil, st
	return true
}

// sweep counts one passivation sweep and reports whether the session should be asked to passivate: it has an
// actor, and no message came for quietSweeps sweeps. A busy session (a job pending) refuses, and is asked
// again at the next sweep.
func (cs *connState) sweep() *actor.PID {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.pid == nil || cs.closed {
		return nil
	}
	if cs.quiet < quietSweeps {
		cs.quiet++
	}
	if cs.quiet < quietSweeps || cs.backlog != 0 {
		return nil
	}
	return cs.pid
}

// inboundDone implements actors.InboundDone for one message: the session has handled it.
type inboundDone struct {
	cs *connState
	n  int
}

func (d *inboundDone) Handled() {
	d.cs.conn.ChargeBuffer(-d.n)
	d.cs.addBacklog(-1, -d.n)
}

func (h wsHandler) OnOpen(c *transport.Conn) {
	cs := &connState{conn: c, quiet: quietSweeps} // its first message is Quiet
	if h.g.cfg.PassivateAfter > 0 {
		cs.pid = h.g.sessions.SpawnHosted(h.g.root, c, cs)
	} else {
		cs.pid = h.g.sessions.Spawn(h.g.root, c)
	}
	c.SetValue(cs)
}

func (h wsHandler) OnMessage(c *transport.Conn, m transport.Message) {
	cs, _ := c.Value().(*connState)
	if cs == nil {
		return
	}
	data := make([]byte, len(m.Data)) // the transport reuses its buffer; the session owns this copy
	copy(data, m.Data)
	c.ChargeBuffer(len(data)) // not under cs.mu: over the budget it may close c, and OnClose takes cs.mu
	cs.mu.Lock()
	if cs.pid == nil { // passivated: the session starts again, and this message is its first
		if cs.closed {
			cs.mu.Unlock()
			c.ChargeBuffer(-len(data))
			return
		}
		cs.pid = h.g.sessions.Resume(h.g.root, c, cs, cs.idle)
		cs.idle = nil
	}
	cs.eager = cs.quiet >= quietSweeps && h.g.cfg.PassivateAfter > 0
	cs.quiet = 0
	pid, quiet := cs.pid, cs.eager
	cs.addBacklogLocked(1, len(data))
	cs.mu.Unlock()
	// Outside the lock; OnMessage calls for one connection never overlap, so the messages keep their order.
	h.g.root.Send(pid, &actors.Inbound{Data: data, Binary: m.Binary, InvalidUTF8: m.InvalidUTF8,
		Done: &inboundDone{cs, len(data)}, Quiet: quiet})
}

func (h wsHandler) OnClose(c *transport.Conn, err error) {
	cs, _ := c.Value().(*connState)
	if cs == nil {
		return
	}
	cs.mu.Lock()
	cs.closed = true
	pid, st := cs.pid, cs.idle
	cs.idle = nil
	cs.mu.Unlock()
	if pid != nil {
		// Poison, not Stop: a stop is a system message and would overtake the session's attach (a user
		// message) when the client leaves at once, leaving its FinishConnection hooks without the connection
		// and the stash it resumed with. The messages queued before it are handled first (their replies go
		// nowhere); what they submitted, the stopping session forgets.
		h.g.root.Poison(pid)
		return
	}
	h.g.sessions.Finish(c, st) // passivated: only its FinishConnection hooks are left to run
}

// passivateIdle asks, every PassivateAfter/2, the sessions of connections that sent nothing for quietSweeps
// sweeps to stop their actors (actors.Host), until ctx ends.
func (g *Gateway) passivateIdle(ctx context.Context) {
	t := time.NewTicker(g.cfg.PassivateAfter / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// A new snapshot each sweep, not one kept between them: that would hold 8 bytes per connection of the
		// peak for good.
		for _, c := range g.ws.Conns(make([]*transport.Conn, 0, g.ws.Len())) {
			if cs, _ := c.Value().(*connState); cs != nil {
				if pid := cs.sweep(); pid != nil {
					g.sessions.Passivate(g.root, pid)
				}
			}
		}
	}
}

// Start connects to Redis, starts the parts in the order of the package documentation, and returns once the
// gateway accepts connections. Safe to call twice: the second call returns the first one's result. After a
// failed Start, call Shutdown to release what it started.
func (g *Gateway) Start(ctx context.Context) error {
	g.startOnce.Do(func() { g.startErr = g.start(ctx) })
	return g.startErr
}

func (g *Gateway) start(ctx context.Context) error {
	began := time.Now()
	if err := PingRedis(ctx, g.rdb); err != nil {
		return fmt.Errorf("server: redis: %w", err)
	}
	if err := g.registry.Start(ctx); err != nil {
		return fmt.Errorf("server: registry: %w", err)
	}
	if g.dispatch != nil {
		if err := g.dispatch.Start(ctx); err != nil {
			return fmt.Errorf("server: session workers: %w", err)
		}
	}
	for name, c := range g.clients {
		if err := c.Start(ctx); err != nil {
			return fmt.Errorf("server: queue %s: %w", name, err)
		}
	}
	ln, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	if g.cfg.Admin != "off" {
		if err := g.startAdmin(); err != nil {
			ln.Close()
			return err
		}
	}
	if err := g.ws.Start(ctx, ln); err != nil {
		ln.Close()
		return fmt.Errorf("server: websocket: %w", err)
	}
	g.ln = ln
	watchCtx, stopWatch := context.WithCancel(context.Background())
	g.stopWatch = stopWatch
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.watch.run(watchCtx)
	}()
	if g.cfg.PassivateAfter > 0 {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			g.passivateIdle(watchCtx)
		}()
	}
	g.ready.Store(true)
	g.log.Info("wsgate listening", "websocket", g.URL(), "admin", g.AdminAddr(), "redis", g.redisForLog(),
		"mode", g.cfg.Mode, "queue_timeout_ms", g.cfg.QueueTimeout.Milliseconds(), "queues", len(g.clients),
		"drain_timeout_ms", g.cfg.DrainTimeout.Milliseconds(), "pprof", g.cfg.Pprof && g.adminLn != nil,
		"admin_token", g.cfg.AdminToken != "", "start_ms", time.Since(began).Milliseconds())
	return nil
}

func (g *Gateway) path() string {
	if g.cfg.Transport.Path == "" {
		return transport.DefaultPath
	}
	return g.cfg.Transport.Path
}

// Addr is the WebSocket listener's address (after Start).
func (g *Gateway) Addr() net.Addr { return g.ln.Addr() }

// URL is the WebSocket URL clients connect to (after Start).
func (g *Gateway) URL() string { return g.scheme() + "://" + g.ln.Addr().String() + g.path() }

// AdminAddr is the admin listener's address, or "" when it is off.
func (g *Gateway) AdminAddr() string {
	if g.adminLn == nil {
		return ""
	}
	return g.adminLn.Addr().String()
}

// Stats are the counters of a gateway's parts.
type Stats struct {
	Registry  actors.RegistryStats
	Transport transport.Stats
	Queue     redisq.ClientStats // summed over the queues
	Sessions  actors.SessionStats
}

// Stats reports the counters of the registry, the transport and the queue clients.
func (g *Gateway) Stats() Stats {
	st := Stats{Registry: g.registry.Stats(), Transport: g.ws.Stats(), Sessions: g.sessions.Stats()}
	for _, c := range g.clients {
		q := c.Stats()
		st.Queue.Submitted += q.Submitted
		st.Queue.SubmitErrors += q.SubmitErrors
		st.Queue.Completed += q.Completed
		st.Queue.Recovered += q.Recovered
		st.Queue.Lost += q.Lost
		st.Queue.Late += q.Late
		st.Queue.Resubscribed += q.Resubscribed
		st.Queue.Pending += q.Pending
		st.Queue.CancelledJobs += q.CancelledJobs
	}
	return st
}

// Ready reports whether the gateway should get traffic: started, not shutting down, Redis reachable and every
// queue's completion channel subscribed.
func (g *Gateway) Ready(ctx context.Context) error {
	if !g.ready.Load() {
		return errors.New("not started, or shutting down")
	}
	if err := g.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	names := make([]string, 0, len(g.clients))
	for name := range g.clients {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if !g.clients[name].Subscribed() {
			return fmt.Errorf("queue %s: completion channel not subscribed", name)
		}
	}
	if g.cfg.QueueWatch.RequireWorker {
		if p := g.watch.problems(); len(p) > 0 {
			return errors.New(strings.Join(p, "; "))
		}
	}
	return nil
}

func (g *Gateway) startAdmin() error {
	mux := http.NewServeMux()
	// /healthz and /readyz stay open with a token set: load balancers' health checks often cannot send
	// headers. /readyz says why it is not ready only to a caller with the token (the reason may name hosts).
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if err := g.Ready(ctx); err != nil {
			msg := "not ready"
			if g.authorized(r) {
				msg += ": " + redact.Error(err)
			}
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprint(w, "ready\n"+g.watch.readyNote())
	})
	mux.Handle("GET /metrics", g.requireToken(promhttp.HandlerFor(g.gatherer, promhttp.HandlerOpts{})))
	g.mountConsole(mux, g.requireToken)
	if g.cfg.Pprof {
		mountPprof(mux, g.requireToken)
	}
	ln, err := net.Listen("tcp", g.cfg.Admin)
	if err != nil {
		return fmt.Errorf("server: admin listen: %w", err)
	}
	g.adminLn = ln
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil && !ap.Addr().IsLoopback() && g.cfg.AdminToken == "" {
		g.log.Warn("the admin listener is reachable from other hosts and has no admin_token: /metrics is open",
			"admin", ln.Addr().String())
	}
	g.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := g.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("admin listener failed", "err", err)
		}
	}()
	return nil
}

// authorized reports whether r carries the admin token (always true when none is configured). Both sides
// are hashed first, so the comparison takes the same time whatever the token's length.
func (g *Gateway) authorized(r *http.Request) bool {
	if g.cfg.AdminToken == "" {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(g.cfg.AdminToken))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// requireToken answers 401 to requests without the admin token.
func (g *Gateway) requireToken(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !g.authorized(r) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="wsgate admin"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// Run starts the gateway, serves until ctx ends, then shuts down gracefully.
func (g *Gateway) Run(ctx context.Context) error {
	if err := g.Start(ctx); err != nil {
		g.Shutdown(context.Background())
		return err
	}
	<-ctx.Done()
	linger := g.cfg.Transport.LingerTimeout // the sockets closed last linger this long at most (0: the default)
	if linger == 0 {
		linger = transport.DefaultLingerTimeout
	}
	sctx, cancel := context.WithTimeout(context.Background(), g.cfg.DrainTimeout+max(linger, 0)+5*time.Second)
	defer cancel()
	return g.Shutdown(sctx)
}

// Shutdown stops accepting connections (readiness goes false at once) and drains: requests that arrive from
// now on are answered ServiceUnavailable, and those taken before get their answers (results, errors, or
// RequestTimeout once DrainTimeout is up); only then is every connection closed with 1001 and everything
// stopped, in the order of the package documentation. ctx bounds the whole. Safe to call twice, and after a
// failed Start or none.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.shutdownOnce.Do(func() { g.shutdownErr = g.shutdown(ctx) })
	return g.shutdownErr
}

func (g *Gateway) shutdown(ctx context.Context) error {
	began := time.Now()
	idle := g.sessions.Drain() // first: once readiness fails, new requests are refused
	g.ready.Store(false)
	g.ws.StopAccepting()
	if g.ln != nil { // started: drain
		g.drain(ctx, idle)
	}
	closing := time.Now()
	var errs []error
	if err := g.ws.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("websocket: %w", err))
	}
	for name, c := range g.clients {
		if err := c.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("queue %s: %w", name, err))
		}
	}
	if err := g.registry.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	if g.stopWatch != nil {
		g.stopWatch()
	}
	if g.admin != nil {
		if err := g.admin.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("admin: %w", err))
		}
	}
	g.wg.Wait()
	if err := g.sessions.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	if g.dispatch != nil {
		if err := g.dispatch.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if g.ownSystem {
		g.system.Shutdown()
	}
	if g.ownRedis {
		g.rdb.Close()
	}
	if g.ln != nil {
		g.log.Info("wsgate stopped", "stop_ms", time.Since(closing).Milliseconds(),
			"shutdown_ms", time.Since(began).Milliseconds(), "errors", len(errs))
	}
	return errors.Join(errs...)
}

// drain lets every request taken before it began get its answer, while new requests are answered
// ServiceUnavailable at once. It waits up to DrainTimeout (or ctx); then the jobs still pending are answered
// RequestTimeout (as their deadline would have done), and it waits for those replies to be queued (up to ctx).
// Requests waiting for a deferred hook at that point are not answered: their connection closes (1001).
func (g *Gateway) drain(ctx context.Context, idle <-chan struct{}) {
	began := time.Now()
	inFlight, conns := g.sessions.InFlight(), g.ws.Len()
	g.log.Info("drain started", "in_flight", inFlight, "connections", conns,
		"drain_timeout_ms", g.cfg.DrainTimeout.Milliseconds())
	timer := time.NewTimer(g.cfg.DrainTimeout)
	defer timer.Stop()
	expired := int64(0)
	select {
	case <-idle:
	case <-timer.C:
		expired = g.registry.Stats().Pending
		g.registry.ExpireAll()
		select {
		case <-idle:
		case <-ctx.Done():
		}
	case <-ctx.Done():
	}
	g.settle(ctx)
	left := g.sessions.InFlight()
	lvl := slog.LevelInfo
	if expired > 0 || left > 0 {
		lvl = slog.LevelWarn
	}
	g.log.Log(context.Background(), lvl, "drain finished", "drain_ms", time.Since(began).Milliseconds(),
		"in_flight", inFlight, "expired", expired, "unanswered", left, "refused", g.sessions.Refused(),
		"connections", g.ws.Len())
}

// Settling after the drain: requests that were on their way when the last taken one was answered still
// arrive; refused with ServiceUnavailable they get an answer the client can act on, while a close frame would
// leave them unanswered (and, read by nobody, make the kernel reset the connection). So the connections stay
// open until no request has come for settleQuiet, at most settleMost.
const (
	settleQuiet = 250 * time.Millisecond
	settleMost  = time.Second
)

// settle waits until requests stop arriving (each one refused), or settleMost, or ctx.
func (g *Gateway) settle(ctx context.Context) {
	deadline := time.Now().Add(settleMost)
	tick := time.NewTicker(settleQuiet)
	defer tick.Stop()
	for last := g.sessions.Refused(); time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n := g.sessions.Refused()
		if n == last {
			return
		}
		last = n
	}
}

// quietLogger is the logger handed to protoactor-go: its routine lifecycle messages are Info, ours are not.
func quietLogger(l *slog.Logger) *slog.Logger {
	return slog.New(levelFloor{l.Handler(), slog.LevelWarn})
}

type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (h levelFloor) Enabled(ctx context.Context, lvl slog.Level) bool {
	return lvl >= h.min && h.Handler.Enabled(ctx, lvl)
}

func (h levelFloor) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFloor{h.Handler.WithAttrs(a), h.min}
}
func (h levelFloor) WithGroup(n string) slog.Handler {
	return levelFloor{h.Handler.WithGroup(n), h.min}
}
