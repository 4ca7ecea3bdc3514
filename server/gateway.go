package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/actors"
	"github.com/wsgate/wsgate/redisq"
	"github.com/wsgate/wsgate/transport"
)

// Gateway is a running wsgate: WebSocket clients in, jobs on Redis, results back.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	rdb      redis.UniversalClient
	ownRedis bool

	system   *actor.ActorSystem
	root     *actor.RootContext
	registry *actors.Registry
	sessions *actors.Sessions
	client   *redisq.Client
	ws       *transport.Server

	ln      net.Listener
	admin   *http.Server
	adminLn net.Listener
	ready   atomic.Bool

	wg           sync.WaitGroup
	shutdownOnce sync.Once
	shutdownErr  error
}

// New checks cfg and builds a gateway; nothing runs until Start.
func New(cfg Config) (*Gateway, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: cfg.Logger.With("component", "gateway"), rdb: cfg.Redis}
	if g.rdb == nil {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("server: redis URL: %w", err)
		}
		g.rdb, g.ownRedis = redis.NewClient(opts), true
	}
	g.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return quietLogger(cfg.Logger)
	}))
	// Sessions stop, never restart, when they fail: a restarted session would have lost its connection state.
	g.root = g.system.Root.WithGuardian(actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive {
		return actor.StopDirective
	}))
	// The registry tells the queue about abandoned jobs, and the queue tells the registry about completions:
	// the client is built first, with a callback that reaches the registry once it exists.
	var registry *actors.Registry
	g.client, err = redisq.NewClient(redisq.ClientConfig{
		Redis:           g.rdb,
		Mode:            redisq.Mode(cfg.Mode),
		Keys:            redisq.Keys{Prefix: cfg.Prefix},
		JobTTL:          cfg.QueueTimeout + 30*time.Second,
		CancelForgotten: true,
		Logger:          cfg.Logger,
		OnComplete: func(c redisq.Completion) {
			registry.Complete(c.JobID, actors.JobOutcome{Payload: c.Result.Payload, Err: c.Err})
		},
	})
	if err != nil {
		return nil, err
	}
	registry, err = actors.NewRegistry(g.root, actors.RegistryConfig{Logger: cfg.Logger, OnAbandon: g.client.Forget})
	if err != nil {
		return nil, err
	}
	g.registry = registry
	actionList := make([]actors.Action, len(cfg.Actions))
	copy(actionList, cfg.Actions)
	acts, err := actors.NewActions(actionList...)
	if err != nil {
		return nil, err
	}
	g.sessions, err = actors.NewSessions(actors.SessionConfig{
		Actions:     acts,
		Registry:    g.registry,
		Submitter:   rpcSubmitter{g.client},
		NewJobID:    redisq.NewID,
		Timeout:     cfg.QueueTimeout,
		MaxInFlight: cfg.MaxInFlight,
		Logger:      cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	tcfg := cfg.Transport
	if tcfg.Logger == nil {
		tcfg.Logger = cfg.Logger
	}
	g.ws, err = transport.NewServer(tcfg, wsHandler{g})
	if err != nil {
		return nil, err
	}
	return g, nil
}

// rpcSubmitter adapts the redisq client to the session's Submitter with the JobAsync job shape.
type rpcSubmitter struct{ c *redisq.Client }

func (s rpcSubmitter) Submit(jobID, method string, params []byte) error {
	return s.c.Submit(redisq.RPCSubmission(jobID, method, params))
}

// wsHandler connects transport events to session actors.
type wsHandler struct{ g *Gateway }

func (h wsHandler) OnOpen(c *transport.Conn) {
	c.SetValue(h.g.sessions.Spawn(h.g.root, c, c))
}

func (h wsHandler) OnMessage(c *transport.Conn, m transport.Message) {
	pid, _ := c.Value().(*actor.PID)
	if pid == nil {
		return
	}
	data := make([]byte, len(m.Data)) // the transport reuses its buffer; the session owns this copy
	copy(data, m.Data)
	h.g.root.Send(pid, &actors.Inbound{Data: data, Binary: m.Binary, InvalidUTF8: m.InvalidUTF8})
}

func (h wsHandler) OnClose(c *transport.Conn, err error) {
	if pid, _ := c.Value().(*actor.PID); pid != nil {
		h.g.root.Stop(pid)
	}
}

// Start connects to Redis, subscribes to the completion channel, and starts the listeners. It returns once
// the gateway accepts connections.
func (g *Gateway) Start(ctx context.Context) error {
	if err := g.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("server: redis: %w", err)
	}
	if err := g.client.Start(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	g.ln = ln
	if g.cfg.Admin != "off" {
		if err := g.startAdmin(); err != nil {
			ln.Close()
			return err
		}
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := g.ws.Serve(ln); err != nil {
			g.log.Error("websocket listener failed", "err", err)
		}
	}()
	g.ready.Store(true)
	g.log.Info("wsgate listening", "websocket", "ws://"+ln.Addr().String()+g.path(), "admin", g.AdminAddr(),
		"mode", g.cfg.Mode, "queue_timeout", g.cfg.QueueTimeout)
	return nil
}

func (g *Gateway) path() string {
	if g.cfg.Transport.Path == "" {
		return "/ws"
	}
	return g.cfg.Transport.Path
}

// Addr is the WebSocket listener's address (after Start).
func (g *Gateway) Addr() net.Addr { return g.ln.Addr() }

// URL is the WebSocket URL clients connect to (after Start).
func (g *Gateway) URL() string { return "ws://" + g.ln.Addr().String() + g.path() }

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
	Queue     redisq.ClientStats
}

// Stats reports the counters of the registry, the transport and the queue client.
func (g *Gateway) Stats() Stats {
	return Stats{Registry: g.registry.Stats(), Transport: g.ws.Stats(), Queue: g.client.Stats()}
}

func (g *Gateway) startAdmin() error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), time.Second)
		defer cancel()
		if !g.ready.Load() {
			http.Error(w, "not ready: shutting down or not started", http.StatusServiceUnavailable)
			return
		}
		if err := g.rdb.Ping(ctx).Err(); err != nil {
			http.Error(w, "not ready: redis: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", g.cfg.Admin)
	if err != nil {
		return fmt.Errorf("server: admin listen: %w", err)
	}
	g.adminLn = ln
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

// Run starts the gateway, serves until ctx ends, then shuts down gracefully.
func (g *Gateway) Run(ctx context.Context) error {
	if err := g.Start(ctx); err != nil {
		g.Shutdown(context.Background())
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), g.cfg.DrainTimeout+5*time.Second)
	defer cancel()
	return g.Shutdown(sctx)
}

// Shutdown stops accepting connections, waits for in-flight requests to be answered (up to DrainTimeout or
// ctx), closes every connection with 1001 and stops everything. Safe to call twice.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.shutdownOnce.Do(func() { g.shutdownErr = g.shutdown(ctx) })
	return g.shutdownErr
}

func (g *Gateway) shutdown(ctx context.Context) error {
	g.ready.Store(false)
	g.ws.StopAccepting()
	drain, cancel := context.WithTimeout(ctx, g.cfg.DrainTimeout)
	for g.registry.Stats().Pending > 0 && drain.Err() == nil { // in-flight requests get their answers
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	var errs []error
	if err := g.ws.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("websocket: %w", err))
	}
	if err := g.client.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("redisq: %w", err))
	}
	g.registry.Shutdown()
	if g.admin != nil {
		if err := g.admin.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("admin: %w", err))
		}
	}
	g.wg.Wait()
	g.system.Shutdown()
	if g.ownRedis {
		g.rdb.Close()
	}
	return errors.Join(errs...)
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
