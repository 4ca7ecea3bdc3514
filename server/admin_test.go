package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/server"
)

// TestAdminListenerAccess: pprof only when asked for; with an admin token, everything but /healthz and
// /readyz wants `Authorization: Bearer <token>`.
func TestAdminListenerAccess(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	const token = "s3cr3t-t0ken"
	gateways := map[string]*server.Gateway{
		"default": startGateway(t, srv, server.Config{Admin: "127.0.0.1:0"}),
		"pprof":   startGateway(t, srv, server.Config{Admin: "127.0.0.1:0", Pprof: true}),
		"token":   startGateway(t, srv, server.Config{Admin: "127.0.0.1:0", Pprof: true, AdminToken: token}),
	}
	tests := []struct {
		gateway, path, auth string
		want                int
		body                string // a part of the body, if given
		notBody             string
	}{
		{"default", "/healthz", "", 200, "ok", ""},
		{"pprof", "/debug/pprof/goroutine?debug=1", "", 200, "goroutine profile:", ""},
		{"pprof", "/debug/pprof/nosuchprofile", "", 404, "", ""},
		{"pprof", "/debug/pprof/profile?seconds=0.1", "", 200, "", ""},
		{"default", "/readyz", "", 200, "ready", ""},
		{"default", "/metrics", "", 200, "wsgate_", ""},
		{"default", "/debug/pprof/", "", 404, "", ""},
		{"default", "/debug/pprof/cmdline", "", 404, "", ""},
		{"pprof", "/debug/pprof/", "", 200, "goroutine", ""},
		{"pprof", "/debug/pprof/cmdline", "", 200, "", ""},
		{"token", "/healthz", "", 200, "ok", ""},
		{"token", "/readyz", "", 200, "ready", ""},
		{"token", "/metrics", "", 401, "", "wsgate_"},
		{"token", "/metrics", "Bearer wrong", 401, "", "wsgate_"},
		{"token", "/metrics", token, 401, "", "wsgate_"}, // no "Bearer "
		{"token", "/metrics", "Bearer " + token, 200, "wsgate_", ""},
		{"token", "/debug/pprof/", "", 401, "", ""},
		{"token", "/debug/pprof/", "Bearer " + token, 200, "goroutine", ""},
	}
	for _, tt := range tests {
		t.Run(tt.gateway+tt.path+"/"+tt.auth, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+gateways[tt.gateway].AdminAddr()+tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.want || !strings.Contains(string(b), tt.body) ||
				tt.notBody != "" && strings.Contains(string(b), tt.notBody) {
				t.Fatalf("GET %s (%q): %d %.200q, want %d with %q", tt.path, tt.auth, resp.StatusCode, b, tt.want, tt.body)
			}
			if tt.want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
}

// The gateway serves pprof on its admin mux only: the embedding program's http.DefaultServeMux stays its own
// (importing net/http/pprof would have registered /debug/pprof/ there).
func TestPprofLeavesTheDefaultMuxAlone(t *testing.T) {
	req, _ := http.NewRequest("GET", "http://example.com/debug/pprof/", nil)
	if _, pattern := http.DefaultServeMux.Handler(req); pattern != "" {
		t.Fatalf("http.DefaultServeMux serves /debug/pprof/ (pattern %q)", pattern)
	}
}
