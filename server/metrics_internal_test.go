package server

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// A scrape reads the gateway's Stats once, however many metrics come from them.
func TestStatsReadOncePerScrape(t *testing.T) {
	t.Parallel()
	calls := 0
	reg := prometheus.NewRegistry()
	reg.MustRegister(newStatsCollector(func() Stats {
		calls++
		var st Stats
		st.Transport.Connections, st.Queue.Late, st.Registry.Late = 3, 1, 2
		return st
	}))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || len(families) < 10 {
		t.Fatalf("%d Stats calls for %d metrics, want 1", calls, len(families))
	}
	values := map[string]float64{}
	for _, f := range families {
		m := f.GetMetric()[0]
		values[f.GetName()] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
	}
	if values["wsgate_connections"] != 3 || values["wsgate_late_results_total"] != 3 {
		t.Fatalf("values %v", values)
	}
}
