package main

import (
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"testing"
)

func TestApplyMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1)) // restore the test process's limit
	for _, tt := range []struct {
		setting, gomemlimit string
		budget              int
		want                int64 // 0: unchanged
		err                 string
	}{
		{"auto", "", 0, 2*512<<20 + 256<<20, ""},
		{"", "", 128 << 20, 2*128<<20 + 256<<20, ""},
		{"auto", "1GiB", 0, 0, ""}, // the runtime's own variable wins over auto
		{"off", "", 0, 0, ""},
		{"1000000000", "1GiB", 0, 1000000000, ""}, // an explicit value wins over GOMEMLIMIT
		{"lots", "", 0, 0, "not a number of bytes"},
		{"-5", "", 0, 0, "not a number of bytes"},
	} {
		t.Run(tt.setting+"/"+tt.gomemlimit, func(t *testing.T) {
			t.Setenv("GOMEMLIMIT", tt.gomemlimit)
			const sentinel = 1 << 62
			debug.SetMemoryLimit(sentinel)
			o := &options{memoryLimit: tt.setting, logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
			o.cfg.Transport.BufferBudget = tt.budget
			err := applyMemoryLimit(o)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, want := debug.SetMemoryLimit(-1), tt.want
			if want == 0 {
				want = sentinel
			}
			if got != want {
				t.Fatalf("memory limit %d, want %d", got, want)
			}
		})
	}
}
