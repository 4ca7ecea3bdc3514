package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The systemd units in deploy/ must pass `systemd-analyze verify` without a single warning, with the binary
// path pointing at a freshly built wsgate.
func TestSystemdUnitsVerify(t *testing.T) {
	t.Parallel()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	bin := buildBinary(t)
	for _, unit := range []string{"wsgate.service", "wsgate-worker.service"} {
		t.Run(unit, func(t *testing.T) {
			text, err := os.ReadFile(filepath.Join("..", "..", "deploy", unit))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(text), "/usr/local/bin/wsgate ") {
				t.Fatalf("%s does not run /usr/local/bin/wsgate", unit)
			}
			path := filepath.Join(t.TempDir(), unit)
			if err := os.WriteFile(path, []byte(strings.ReplaceAll(string(text), "/usr/local/bin/wsgate ", bin+" ")), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(analyze, "verify", path).CombinedOutput()
			if err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Fatalf("systemd-analyze verify %s: %v\n%s", unit, err, out)
			}
		})
	}
}
