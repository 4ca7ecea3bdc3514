package actors

import (
	"encoding/json"
	"testing"
)

// BenchmarkSanityCheck measures the check of one parsed request (the session parses it once for everything).
func BenchmarkSanityCheck(b *testing.B) {
	requests := map[string]string{
		"ascii":   `{"ticks_history":"R_50","count":10,"end":"latest","style":"candles","req_id":3,"passthrough":{"a":1,"b":"x"}}`,
		"unicode": `{"echo":"price €5 😀, 日本語 １−１−１","name":"Zoë Łukasz"}`,
		"nested":  `{"proposal":1,"amount":"10.5","basis":"stake","contract_type":"CALL","symbol":"R_50","duration":5,"duration_unit":"t","tags":["a","b","c"]}`,
	}
	for name, req := range requests {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(req), &fields); err != nil {
			b.Fatal(err)
		}
		s := DefaultSanityCheck()
		b.Run("req="+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if bad, ok := s.check(fields); !ok {
					b.Fatalf("%s failed on %q", req, bad)
				}
			}
		})
	}
}
