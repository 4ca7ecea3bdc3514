package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/internal/testutil"
	"github.com/wsgate/wsgate/internal/wstest"
)

var wssURL = regexp.MustCompile(`wss://127\.0\.0\.1:\d+/ws`)

// TestSIGHUPReloadsTheCertificate: the binary serves wss:// with --tls-cert/--tls-key; after the files change,
// SIGHUP makes new connections get the new certificate while an open one goes on; after a broken file, SIGHUP
// logs an error and the certificate in use stays.
func TestSIGHUPReloadsTheCertificate(t *testing.T) {
	bin := buildBinary(t)
	srv := redistest.Start(t)
	certs, next := redistest.NewCerts(t), redistest.NewCerts(t)
	launch(t, bin, nil, "worker", "--demo", "--redis", srv.URL(), "--concurrency", "4")
	serve := launch(t, bin, []string{"WSGATE_TLS_KEY=" + certs.ServerKey}, "serve", "--redis", srv.URL(),
		"--admin", "off", "--listen", fmt.Sprintf("127.0.0.1:%d", redistest.FreePort(t)), "--tls-cert", certs.ServerCert)
	testutil.WaitFor(t, func() bool { return wssURL.MatchString(serve.out.String()) })
	url := wssURL.FindString(serve.out.String())

	tc := &tls.Config{RootCAs: redistest.CAPool(t, certs, next)}
	ping := func(c *wstest.Client) {
		t.Helper()
		if got := c.Call(`{"ping":1}`); got["ping"] != "pong" {
			t.Fatalf("ping: %v", got)
		}
	}
	old, first := wstest.DialTLS(t, url, tc)
	ping(old)

	certs.ReplaceServerCert(t, next)
	serve.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, func() bool { return strings.Count(serve.out.String(), `msg="TLS certificate loaded"`) == 1 })
	c, second := wstest.DialTLS(t, url, tc)
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatalf("a new connection got the old certificate after SIGHUP:\n%s", serve.out)
	}
	ping(c)
	ping(old)

	os.WriteFile(certs.ServerKey, []byte("not a key"), 0o600)
	serve.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, func() bool {
		return strings.Contains(serve.out.String(), `level=ERROR msg="TLS reload failed: keeping the certificate in use"`)
	})
	c, third := wstest.DialTLS(t, url, tc)
	if third.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Fatal("a failed reload changed the certificate")
	}
	ping(c)
	ping(old)
	serve.stop(t)
}
