package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// serverFrame builds an unmasked server text frame.
func serverFrame(payload string) []byte {
	b := []byte{0x81}
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	default:
		b = append(b, 126, byte(n>>8), byte(n))
	}
	return append(b, payload...)
}

func TestFramesMeasureFromReqID(t *testing.T) {
	l := &loader{start: time.Now().Add(-time.Second)}
	l.record.Store(true)
	w := &loadWorker{hist: hdrhistogram.New(1, 60_000_000, 3)}
	sent := l.micros(time.Now()) - 5000 // sent 5 ms ago
	long := `{"msg_type":"echo","echo":"` + string(make([]byte, 200)) + `","req_id":1}`
	stream := append(serverFrame(`{"msg_type":"ping","ping":"pong","req_id":`+itoa(sent)+`}`), serverFrame(long)...)
	stream = append(stream, serverFrame(`{"msg_type":"ping","error":{"code":"RequestTimeout"},"req_id":1}`)...)
	stream = append(stream, 0x89, 0x00) // a ping frame: ignored
	// Split in the middle of the second frame: the rest is kept for the next read.
	rest := l.frames(w, &loadConn{}, stream[:40])
	rest = l.frames(w, &loadConn{}, append(rest, stream[40:]...))
	if len(rest) != 0 {
		t.Fatalf("%d bytes left over", len(rest))
	}
	if w.ok.Load() != 2 || w.err.Load() != 1 {
		t.Fatalf("ok %d, errors %d; want 2 and 1", w.ok.Load(), w.err.Load())
	}
	if got := w.hist.Max(); got < 5000 || got > 6_000_000 {
		t.Fatalf("latency %d µs for a reply sent 5 ms ago", got)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestCPUTimeOfThisProcess(t *testing.T) {
	before := cpuTime(os.Getpid())
	for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); {
	}
	if after := cpuTime(os.Getpid()); after <= before {
		t.Fatalf("CPU time did not grow: %v then %v", before, after)
	}
}

// TestRPCScenarioEndToEnd runs the harness for real, briefly: it builds wsgate, starts redis-server, a worker and
// the gateway, drives two connections for a second and writes its results.
func TestRPCScenarioEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	out := t.TempDir()
	err := runRPC([]string{"--conns", "2", "--duration", "1s", "--warmup", "200ms", "--workers", "1",
		"--baselines=false", "--out", out}, false)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Runs []RPCRun `json:"runs"`
	}
	b, err := os.ReadFile(filepath.Join(out, "rpc.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 1 || res.Runs[0].Replies == 0 || res.Runs[0].Errors != 0 || res.Runs[0].P50us == 0 {
		t.Fatalf("runs %+v", res.Runs)
	}
	if _, err := os.Stat(filepath.Join(out, "rpc.png")); err != nil {
		t.Fatal(err)
	}
}
