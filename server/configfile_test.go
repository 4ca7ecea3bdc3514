package server_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wsgate/wsgate/server"
)

func TestExampleConfigFileLoads(t *testing.T) {
	t.Parallel()
	cfg, file, err := server.LoadFile("../wsgate.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err = cfg.WithDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.QueueTimeout != 300*time.Second || cfg.Transport.IdleTimeout != 120*time.Second || file.Log.Level != "info" {
		t.Fatalf("durations: %v %v", cfg.QueueTimeout, cfg.Transport.IdleTimeout)
	}
	if len(cfg.Actions) != 5 || cfg.Actions[4].StashParams[0] != "user" || cfg.Queues["priority"].Name != "priority" {
		t.Fatalf("actions/queues: %+v %+v", cfg.Actions, cfg.Queues)
	}
	if cfg.RateLimit == nil || cfg.RateLimit.PerSecond != 20 || !cfg.Transport.Compression {
		t.Fatalf("limits: %+v", cfg)
	}
	if tc := cfg.Transport; tc.BufferBudget != 512<<20 || tc.MessageTimeout != 30*time.Second || tc.MaxMessageSize != 256<<10 {
		t.Fatalf("memory limits: %+v", tc)
	}
}

func TestConfigFileErrorsNameTheLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "listen: x\nlisen: y\n", `cfg.yaml:2: unknown key "lisen" (known here: listen, admin,`},
		{"unknown nested key", "listen: x\nlimits:\n  max_in_flight: 3\n  max_conections: 1\n", `cfg.yaml:4: unknown key "limits.max_conections"`},
		{"unknown key of an action", "actions:\n  - ping\n  - {name: x, tiemout: 5}\n", `cfg.yaml:3: unknown key "actions[1].tiemout"`},
		{"unknown key of a queue", "queues:\n  fast:\n    prefx: x\n", `cfg.yaml:3: unknown key "queues.fast.prefx"`},
		{"tab indentation", "listen: x\nlimits:\n\tmax_in_flight: 3\n", "cfg.yaml:3: a tab in the indentation"},
		{"tab after spaces", "limits:\n  max_in_flight: 3\n \tmax_connections: 5\n", "cfg.yaml:3: a tab in the indentation"},
		{"bad duration", "queue_timeout: soon\n", "cfg.yaml:1:"},
		{"negative action timeout", "actions:\n  - ping\n  - name: echo\n    timeout: -5\n", "cfg.yaml:4: actions[1].timeout: must not be negative"},
		{"unknown queue", "actions:\n  - {name: ping, queue: nope}\n", "cfg.yaml:2: actions[0].queue: no queue named \"nope\""},
		{"bad mode", "mode: turbo\n", "cfg.yaml:1: mode:"},
		{"duplicate action", "actions: [ping, ping]\n", "cfg.yaml:1: actions[1].name: action \"ping\" is listed twice"},
		{"bad rate", "limits:\n  rate_limit: {per_second: 0, burst: 1}\n", "cfg.yaml:2: limits.rate_limit:"},
		{"bad pattern", "sanity_check: {value_pattern: \"(\"}\n", "sanity_check.value_pattern"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := server.ParseFile("cfg.yaml", []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "server.") || strings.Contains(err.Error(), "struct {") {
				t.Errorf("the error names a Go type: %v", err)
			}
		})
	}
	if _, _, err := server.ParseFile("empty.yaml", nil); err != nil {
		t.Fatalf("an empty file is valid: %v", err)
	}
}

// The library reads no environment: QUEUE_TIMEOUT is the command line's (cmd/wsgate), and a gateway without
// actions is an error, not the demo.
func TestConfigDefaultsReadNoEnvironment(t *testing.T) {
	t.Setenv("QUEUE_TIMEOUT", "2.5")
	cfg, err := server.Config{}.WithDefaults()
	if err != nil || cfg.QueueTimeout != server.DefaultQueueTimeout || cfg.Actions != nil {
		t.Fatalf("%v %v %v", cfg.QueueTimeout, cfg.Actions, err)
	}
	if _, err := server.New(server.Config{Logger: quiet}); !errors.Is(err, server.ErrNoActions) {
		t.Fatalf("New without actions: %v, want ErrNoActions", err)
	}
}

func TestHandshakeAndDescriptorLimitsFromFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml          string
		timeout             time.Duration
		total, perIP, fdRes int
	}{
		{"unset: the transport's defaults", "", 0, 0, 0, 0},
		{"set", "limits:\n  handshake_timeout: 2\n  max_handshakes: 4096\n  max_handshakes_per_ip: 16\n  fd_reserve: 512\n",
			2 * time.Second, 4096, 16, 512},
		{"reserve off", "limits: {fd_reserve: -1}\n", 0, 0, 0, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := server.ParseFile("cfg.yaml", []byte(tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			tc := cfg.Transport
			if tc.HandshakeTimeout != tt.timeout || tc.MaxHandshakes != tt.total || tc.MaxHandshakesPerIP != tt.perIP ||
				tc.FDReserve != tt.fdRes {
				t.Fatalf("got %v %d %d %d", tc.HandshakeTimeout, tc.MaxHandshakes, tc.MaxHandshakesPerIP, tc.FDReserve)
			}
		})
	}
	if _, _, err := server.ParseFile("cfg.yaml", []byte("limits: {max_handshakes_per_ip: -1}\n")); err == nil {
		t.Fatal("negative max_handshakes_per_ip accepted")
	}
}
