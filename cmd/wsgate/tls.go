package main

import (
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/wsgate/wsgate/server"
)

// tlsSettings are the flags and WSGATE_* variables of server.ListenerTLS (wss:// on the WebSocket listener).
func tlsSettings() []setting {
	str := func(p func(t *server.ListenerTLS) *string) func(*options, string) error {
		return func(o *options, v string) error { *p(&o.cfg.TLS) = v; return nil }
	}
	return []setting{
		{"tls-cert", "WSGATE_TLS_CERT", "PEM certificate chain for wss:// on the WebSocket listener (with --tls-key; reloaded on SIGHUP)",
			str(func(t *server.ListenerTLS) *string { return &t.Cert }), "none: ws://"},
		{"tls-key", "WSGATE_TLS_KEY", "PEM private key of --tls-cert",
			str(func(t *server.ListenerTLS) *string { return &t.Key }), "none"},
		{"tls-client-ca", "WSGATE_TLS_CLIENT_CA", "PEM file of CAs; clients must present a certificate they signed (mutual TLS)",
			str(func(t *server.ListenerTLS) *string { return &t.ClientCA }), "none"},
	}
}

// tlsReloader is the part of the gateway that SIGHUP drives.
type tlsReloader interface{ ReloadTLS() error }

// reloadOnSIGHUP reloads the listener's TLS certificate on every SIGHUP (a failed reload keeps the certificate
// in use; the gateway logs why) until stop is called; stop waits for its goroutine. Without TLS a SIGHUP is
// logged and otherwise ignored, rather than killing the process as it would by default.
func reloadOnSIGHUP(gw tlsReloader, log *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-hup:
				if err := gw.ReloadTLS(); errors.Is(err, server.ErrNoTLS) {
					log.Info("SIGHUP: no TLS configured, nothing to reload")
				}
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
		wg.Wait()
	}
}
