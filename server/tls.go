package server

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsgate/wsgate/transport"
)

// ListenerTLS serves the WebSocket listener over TLS (wss://) with a certificate from PEM files. Its zero value
// means plain ws://. The files are read at New and again on Gateway.ReloadTLS (the binary calls it on SIGHUP).
//
// Each TLS connection costs the gateway a goroutine and crypto/tls's buffers, about 15 KB when idle against
// under 1 KB for a plain one (transport.TestConnectionFootprint). Where a load balancer can terminate TLS,
// let it: the gateway then keeps its lighter plain connections.
type ListenerTLS struct {
	// Cert is the PEM certificate chain, leaf first; "" means no TLS. Needs Key.
	Cert string `yaml:"cert"`
	// Key is the PEM private key of Cert; "" means no TLS. Needs Cert.
	Key string `yaml:"key"`
	// ClientCA, if set, is a PEM file of the CAs that sign client certificates, and clients must present one
	// (mutual TLS); "" means clients need no certificate.
	ClientCA string `yaml:"client_ca"`
}

// Enabled reports whether TLS is configured.
func (t ListenerTLS) Enabled() bool { return t.Cert != "" || t.Key != "" || t.ClientCA != "" }

func (t ListenerTLS) files() transport.TLSFiles {
	return transport.TLSFiles{Cert: t.Cert, Key: t.Key, ClientCA: t.ClientCA}
}

// Validate checks that the settings go together and that the files can be loaded.
func (t ListenerTLS) Validate() error {
	switch {
	case !t.Enabled():
		return nil
	case t.Cert == "":
		return errors.New("tls.cert (--tls-cert): needed with tls.key or tls.client_ca")
	case t.Key == "":
		return errors.New("tls.key (--tls-key): needed with tls.cert")
	}
	if err := transport.CheckTLSFiles(t.files()); err != nil {
		return fmt.Errorf("tls.cert (--tls-cert): %w", err)
	}
	return nil
}

// newCertReloader loads the listener's certificate, or returns nil without TLS.
func newCertReloader(t ListenerTLS) (*transport.CertReloader, error) {
	if !t.Enabled() {
		return nil, nil
	}
	r, err := transport.NewCertReloader(t.files())
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	return r, nil
}

// ErrNoTLS is what ReloadTLS returns when the listener has no TLS.
var ErrNoTLS = errors.New("server: the WebSocket listener has no TLS configured")

// ReloadTLS reads the certificate, key and client CA files again: TLS handshakes from now on use them, and
// connections already open go on with theirs. If the files cannot be loaded, the certificate in use stays
// and the error is logged and returned. Safe from any goroutine.
func (g *Gateway) ReloadTLS() error {
	if g.certs == nil {
		return ErrNoTLS
	}
	if err := g.certs.Reload(); err != nil {
		leaf := g.certs.Leaf()
		g.log.Error("TLS reload failed: keeping the certificate in use", "err", err,
			"subject", leaf.Subject.String(), "serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter)
		return err
	}
	leaf := g.certs.Leaf()
	g.log.Info("TLS certificate loaded", "cert", g.cfg.TLS.Cert, "subject", leaf.Subject.String(),
		"serial", leaf.SerialNumber.String(), "not_after", leaf.NotAfter, "client_ca", g.cfg.TLS.ClientCA != "")
	return nil
}

// scheme is the WebSocket URL's scheme.
func (g *Gateway) scheme() string {
	if g.certs != nil || g.cfg.Transport.TLS != nil {
		return "wss"
	}
	return "ws"
}

// tlsCollectors are the TLS metrics beyond the Stats ones: the expiry of the certificate in use.
func (g *Gateway) tlsCollectors() []prometheus.Collector {
	if g.certs == nil {
		return nil
	}
	return []prometheus.Collector{prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "wsgate",
		Name: "tls_certificate_expiry_timestamp_seconds", Help: "When the WebSocket listener's certificate in use expires (Unix time)."},
		func() float64 { return float64(g.certs.Leaf().NotAfter.Unix()) })}
}
