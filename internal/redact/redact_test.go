package redact

import (
	"bytes"
	"errors"
	"log/slog"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"redis://127.0.0.1:6379", "redis://127.0.0.1:6379"},
		{"redis://:s3cret@10.0.0.1:6379/2", "redis://:xxxxx@10.0.0.1:6379/2"},
		{"rediss://app:s3cret@cache.example.com:6380", "rediss://app:xxxxx@cache.example.com:6380"},
		{"redis://app@host", "redis://app@host"}, // a user name alone is no secret
		{"redis://host/0?password=s3cret&dial_timeout=3", "redis://host/0?dial_timeout=3&password=xxxxx"},
		{"redis://u:p%40ss@host:bad", "redis://u:xxxxx@host:bad"}, // does not parse: masked as text
		{"not a url", "not a url"},
	}
	for _, tt := range tests {
		if got := URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestString(t *testing.T) {
	_, parseErr := redis.ParseURL("redis://app:s3cret@host:port/0")
	tests := []struct{ name, in, want string }{
		{"go-redis parse error quotes the URL", parseErr.Error(), `parse "redis://app:xxxxx@host:port/0": invalid port ":port" after host`},
		{"two URLs", "from rediss://:a@x to redis://b:c@y", "from rediss://:xxxxx@x to redis://b:xxxxx@y"},
		{"query secret", "GET /x?token=abc&n=1", "GET /x?token=xxxxx&n=1"},
		{"nothing secret", "dial tcp 127.0.0.1:6379: connection refused", "dial tcp 127.0.0.1:6379: connection refused"},
	}
	for _, tt := range tests {
		if got := String(tt.in); got != tt.want {
			t.Errorf("%s: String(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestArgs(t *testing.T) {
	tests := []struct{ in, want []string }{
		{[]string{"wsgate", "serve", "--redis", "redis://:pw@h:6379"}, []string{"wsgate", "serve", "--redis", "redis://:xxxxx@h:6379"}},
		{[]string{"wsgate", "serve", "--admin-token", "T0K", "--listen", ":1"}, []string{"wsgate", "serve", "--admin-token", "xxxxx", "--listen", ":1"}},
		{[]string{"wsgate", "-redis-password=pw", "-a"}, []string{"wsgate", "-redis-password=xxxxx", "-a"}},
	}
	for _, tt := range tests {
		if got := Args(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Args(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestReplaceAttrMasksEveryLogValue(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{ReplaceAttr: ReplaceAttr}))
	u, _ := url.Parse("redis://:pw1@h")
	log.Info("connecting to redis://:pw2@h", "url", "redis://:pw3@h", "err", errors.New("redis://u:pw4@h: refused"),
		"u", u, slog.Group("g", "inner", "rediss://:pw5@h"))
	out := buf.String()
	for _, secret := range []string{"pw1", "pw2", "pw3", "pw4", "pw5"} {
		if strings.Contains(out, secret) {
			t.Errorf("log line leaks %s: %s", secret, out)
		}
	}
	if strings.Count(out, Mask) != 5 {
		t.Errorf("want 5 masks: %s", out)
	}
}
