package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Certs are PEM files of a test certificate authority, a server certificate for 127.0.0.1 and a client
// certificate, all signed by that CA, written to a test's temporary directory.
type Certs struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string
}

// NewCerts generates a CA and a server and a client certificate signed by it (ECDSA P-256, valid for an hour).
func NewCerts(tb testing.TB) *Certs {
	tb.Helper()
	dir := tb.TempDir()
	caKey, caCert := newCert(tb, "wsgate test CA", nil, nil, func(t *x509.Certificate) {
		t.IsCA, t.BasicConstraintsValid = true, true
		t.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	})
	c := &Certs{CA: filepath.Join(dir, "ca.crt")}
	writePEM(tb, c.CA, "CERTIFICATE", caCert.Raw)
	for _, kind := range []string{"server", "client"} {
		key, cert := newCert(tb, "wsgate test "+kind, caKey, caCert, func(t *x509.Certificate) {
			t.KeyUsage = x509.KeyUsageDigitalSignature
			t.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
			t.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
			t.DNSNames = []string{"localhost"}
		})
		certFile, keyFile := filepath.Join(dir, kind+".crt"), filepath.Join(dir, kind+".key")
		writePEM(tb, certFile, "CERTIFICATE", cert.Raw)
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			tb.Fatal(err)
		}
		writePEM(tb, keyFile, "EC PRIVATE KEY", der)
		if kind == "server" {
			c.ServerCert, c.ServerKey = certFile, keyFile
		} else {
			c.ClientCert, c.ClientKey = certFile, keyFile
		}
	}
	return c
}

// newCert makes a certificate for name, self-signed when parent is nil.
func newCert(tb testing.TB, name string, parentKey *ecdsa.PrivateKey, parent *x509.Certificate,
	shape func(*x509.Certificate)) (*ecdsa.PrivateKey, *x509.Certificate) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour)}
	shape(tmpl)
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		tb.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return key, cert
}

func writePEM(tb testing.TB, path, kind string, der []byte) {
	tb.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
}

// StartTLS runs redis-server with a TLS port as well (certificates from certs; clients must present a
// certificate signed by the CA) and returns it with the TLS port's address. The plain port (Addr, Client)
// stays open for the test's own checks.
func StartTLS(tb testing.TB, certs *Certs, args ...string) (s *Server, tlsAddr string) {
	tb.Helper()
	port := FreePort(tb)
	s = Start(tb, append([]string{"--tls-port", strconv.Itoa(port), "--tls-cert-file", certs.ServerCert,
		"--tls-key-file", certs.ServerKey, "--tls-ca-cert-file", certs.CA, "--tls-auth-clients", "yes"}, args...)...)
	return s, "127.0.0.1:" + strconv.Itoa(port)
}

// CAPool is a certificate pool of the CAs of certs: what a client trusts to reach their servers.
func CAPool(tb testing.TB, certs ...*Certs) *x509.CertPool {
	tb.Helper()
	pool := x509.NewCertPool()
	for _, c := range certs {
		pem, err := os.ReadFile(c.CA)
		if err != nil {
			tb.Fatal(err)
		}
		pool.AppendCertsFromPEM(pem)
	}
	return pool
}

// ReplaceServerCert writes the server certificate and key of from over c's files (a certificate rotation, for
// reload tests).
func (c *Certs) ReplaceServerCert(tb testing.TB, from *Certs) {
	tb.Helper()
	for src, dst := range map[string]string{from.ServerCert: c.ServerCert, from.ServerKey: c.ServerKey} {
		b, err := os.ReadFile(src)
		if err != nil {
			tb.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			tb.Fatal(err)
		}
	}
}
