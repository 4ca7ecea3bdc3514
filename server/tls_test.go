package server_test

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/wstest"
	"github.com/wsgate/wsgate/server"
)

func pingOver(t *testing.T, c *wstest.Client) {
	t.Helper()
	if got := c.Call(`{"ping":1}`); got["ping"] != "pong" {
		t.Fatalf("ping: %v", got)
	}
}

// TestGatewayOverTLS: wss:// through the whole gateway, a plain client refused, and ReloadTLS: new handshakes
// get the new certificate while an open connection goes on; broken files keep the certificate in use.
func TestGatewayOverTLS(t *testing.T) {
	srv := redistest.Start(t)
	startWorker(t, srv)
	certs, next := redistest.NewCerts(t), redistest.NewCerts(t)
	gw := startGateway(t, srv, server.Config{Admin: "127.0.0.1:0",
		TLS: server.ListenerTLS{Cert: certs.ServerCert, Key: certs.ServerKey}})
	if !strings.HasPrefix(gw.URL(), "wss://") {
		t.Fatalf("URL %s, want wss://", gw.URL())
	}
	tc := &tls.Config{RootCAs: redistest.CAPool(t, certs, next)}
	old, first := wstest.DialTLS(t, gw.URL(), tc)
	pingOver(t, old)

	plain := "ws://" + strings.TrimPrefix(gw.URL(), "wss://")
	if _, _, _, err := ws.Dial(context.Background(), plain); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("plain ws:// client on the TLS port: %v, want 400", err)
	}

	certs.ReplaceServerCert(t, next)
	if err := gw.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	c, second := wstest.DialTLS(t, gw.URL(), tc)
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("a new connection got the old certificate after the reload")
	}
	pingOver(t, c)
	pingOver(t, old)

	os.WriteFile(certs.ServerKey, []byte("-----BEGIN EC PRIVATE KEY-----\nbroken\n"), 0o600)
	if err := gw.ReloadTLS(); err == nil {
		t.Fatal("a reload from a broken key succeeded")
	}
	c, third := wstest.DialTLS(t, gw.URL(), tc)
	if third.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Fatal("a failed reload changed the certificate")
	}
	pingOver(t, c)
	pingOver(t, old)

	resp, err := http.Get("http://" + gw.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{"wsgate_tls_handshake_errors_total 1", "wsgate_tls_certificate_expiry_timestamp_seconds "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestGatewayMutualTLS(t *testing.T) {
	srv := redistest.Start(t)
	startWorker(t, srv)
	certs := redistest.NewCerts(t)
	gw := startGateway(t, srv, server.Config{TLS: server.ListenerTLS{Cert: certs.ServerCert, Key: certs.ServerKey,
		ClientCA: certs.CA}})
	tc := &tls.Config{RootCAs: redistest.CAPool(t, certs)}
	if _, _, err := wstest.TryDialTLS(t, gw.URL(), tc); err == nil {
		t.Fatal("a client without a certificate connected")
	}
	pair, err := tls.LoadX509KeyPair(certs.ClientCert, certs.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	tc.Certificates = []tls.Certificate{pair}
	c, _ := wstest.DialTLS(t, gw.URL(), tc)
	pingOver(t, c)
}

func TestReloadTLSWithoutTLS(t *testing.T) {
	srv := redistest.Start(t)
	gw := startGateway(t, srv, server.Config{})
	if err := gw.ReloadTLS(); !errors.Is(err, server.ErrNoTLS) {
		t.Fatalf("ReloadTLS without TLS: %v, want ErrNoTLS", err)
	}
	if !strings.HasPrefix(gw.URL(), "ws://") {
		t.Fatalf("URL %s", gw.URL())
	}
}

func TestListenerTLSValidate(t *testing.T) {
	certs := redistest.NewCerts(t)
	tests := []struct {
		name string
		tls  server.ListenerTLS
		want string // "" for no error
	}{
		{"off", server.ListenerTLS{}, ""},
		{"cert and key", server.ListenerTLS{Cert: certs.ServerCert, Key: certs.ServerKey}, ""},
		{"with a client CA", server.ListenerTLS{Cert: certs.ServerCert, Key: certs.ServerKey, ClientCA: certs.CA}, ""},
		{"cert alone", server.ListenerTLS{Cert: certs.ServerCert}, "tls.key (--tls-key): needed with tls.cert"},
		{"key alone", server.ListenerTLS{Key: certs.ServerKey}, "tls.cert (--tls-cert): needed"},
		{"client CA alone", server.ListenerTLS{ClientCA: certs.CA}, "tls.cert (--tls-cert): needed"},
		{"missing file", server.ListenerTLS{Cert: certs.ServerCert + ".gone", Key: certs.ServerKey}, "no such file"},
		{"key of another certificate", server.ListenerTLS{Cert: certs.ServerCert, Key: certs.ClientKey}, "does not match"},
		{"client CA that is not PEM", server.ListenerTLS{Cert: certs.ServerCert, Key: certs.ServerKey, ClientCA: certs.ServerKey}, "no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.tls.Validate()
			if (tt.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestConfigFileTLS(t *testing.T) {
	certs := redistest.NewCerts(t)
	cfg, _, err := server.ParseFile("cfg.yaml", []byte("tls:\n  cert: "+certs.ServerCert+"\n  key: "+certs.ServerKey+
		"\n  client_ca: "+certs.CA+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TLS != (server.ListenerTLS{Cert: certs.ServerCert, Key: certs.ServerKey, ClientCA: certs.CA}) {
		t.Fatalf("TLS: %+v", cfg.TLS)
	}
	for yaml, want := range map[string]string{
		"listen: x\ntls:\n  cert: " + certs.ServerCert + "\n":       "cfg.yaml:2: tls.key (--tls-key): needed with tls.cert",
		"tls:\n  cert: /nonexistent.pem\n  key: /nonexistent.key\n": "cfg.yaml:2: tls.cert (--tls-cert):",
		"tls:\n  certificate: x\n":                                  `cfg.yaml:2: unknown key "tls.certificate"`,
	} {
		if _, _, err := server.ParseFile("cfg.yaml", []byte(yaml)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", yaml, err, want)
		}
	}
}
