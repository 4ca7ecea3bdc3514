package redisq

import (
	"bytes"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"
)

// FuzzDecodeSereal: decodeSereal never panics, fails with one of its sentinel errors, and allocates in
// proportion to its input: at most serealAllocPerByte per byte of an uncompressed document (a length
// prefix of 2^60 allocates nothing), or what its bounds allow for a compressed one. A decoded value encodes
// to JSON (the handler's Job.Decode does that) unless it holds a NaN or an infinity.
func FuzzDecodeSereal(f *testing.F) {
	for _, tc := range serealFixtures {
		f.Add(unhex(f, tc.doc))
	}
	for _, doc := range []string{
		"3df3726c05002b808080808080808010", // ARRAY of 2^60
		"3df3726c050026808080808080808010", // BINARY of 2^60 bytes
		"3df3726c3500808080808080808010" + "00",
		"3df3726c050028ab012902",           // cycle
		"3df3726c05004264616263642f022f02", // COPY
		"3df3726c0500" + shareChain(30),
	} {
		f.Add(unhex(f, doc))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		limit := uint64(min(serealAllocPerByte*len(doc), 2*serealMaxSize) + 64<<10)
		if len(doc) > 4 && doc[4]>>4 != 0 { // compressed
			limit = 2*serealMaxBody + 4*serealMaxSize
		}
		var v any
		var err error
		// TotalAlloc counts the whole process: a goroutine left winding down by an earlier test may allocate
		// meanwhile, so only an excess seen three times running is the decoder's.
		for try := 0; ; try++ {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			v, err = decodeSereal(doc)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			if alloc <= limit {
				break
			}
			if try == 2 {
				t.Fatalf("%d bytes allocated for a document of %d bytes (limit %d)", alloc, len(doc), limit)
			}
		}
		if err != nil {
			if v != nil || !errors.Is(err, ErrSerealCorrupt) && !errors.Is(err, ErrSerealUnsupported) && !errors.Is(err, ErrSerealTooLarge) {
				t.Fatalf("decoded %#v with error %v", v, err)
			}
			return
		}
		if _, err := json.Marshal(v); err != nil {
			var unsupported *json.UnsupportedValueError
			if !errors.As(err, &unsupported) || !strings.Contains(err.Error(), "Inf") && !strings.Contains(err.Error(), "NaN") {
				t.Fatalf("decoded %#v, which does not encode as JSON: %v", v, err)
			}
		}
	})
}

// serealAllocPerByte bounds what decoding allocates per byte of an uncompressed document. The worst case is
// a truncated nest of HASHREF_15 or ARRAYREF_15 tags: each level allocates room for 15 items (about 600 bytes
// for a map, 264 for an array) for its one or two bytes, before the truncation is found. serealMaxSize caps
// the total whatever the input's length.
const serealAllocPerByte = 512

// FuzzParseJob: a job hash as a worker reads it (HGETALL) never makes parseJob or Job.Decode panic; every data
// field it accepts is one of the hash's fields without its format prefix.
func FuzzParseJob(f *testing.F) {
	perl := unhex(f, "3df3726c050053626f6b35636f666634646e6f6e6525")
	f.Add("text_name", []byte("ping"), "text_params", []byte(`{"args":{"ping":1}}`), "sereal_doc", perl)
	f.Add("json_j", []byte(`{"k":[1]}`), "_reply_to", []byte("c1"), "_queued", []byte("1795879873.61014"))
	f.Add("sereal_x", []byte("=\xf3rl\x05\x00(*\x02dlistC\x01\x02\x01dflagcyes"), "frozen_x", []byte("?"), "result", []byte("Tx"))
	f.Add("json_", []byte(`nul`), "text_", []byte{}, "sereal_", []byte{})
	f.Fuzz(func(t *testing.T, k1 string, v1 []byte, k2 string, v2 []byte, k3 string, v3 []byte) {
		h := map[string]string{k1: string(v1), k2: string(v2), k3: string(v3)}
		j, err := parseJob("fuzz", h)
		if err != nil {
			if j != nil {
				t.Fatalf("a job and an error: %v", err)
			}
			return
		}
		for k := range j.Data {
			if _, ok := h["text_"+k]; ok {
				continue
			}
			if _, ok := h["json_"+k]; ok {
				continue
			}
			if _, ok := h["sereal_"+k]; !ok {
				t.Fatalf("data field %q from no hash field of %q", k, h)
			}
			_ = j.Text(k)
			var v any
			_ = j.Decode(k, &v)
		}
	})
}

// FuzzResultEnvelope: a stored `result` (T… or J…) and the JobAsync envelope in it never make decodeResult or
// RPCResult panic; a decoded result encodes back to the same bytes, and an envelope's result is valid JSON.
func FuzzResultEnvelope(f *testing.F) {
	for _, s := range []string{`T{"success":1,"result":{"ping":"pong"}}`, `J{"success":1,"result":[1,2]}`,
		`Twsgate: job failed: boom`, `T{"success":1}`, `X{}`, ``, `J`, `T{"result":null}`, `T{"success":0,"error":"..."}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		r, err := decodeResult(raw)
		if err != nil {
			return
		}
		if r.Tag != TagText && r.Tag != TagJSON {
			t.Fatalf("%q: tag %q", raw, r.Tag)
		}
		if got := r.encode(); !bytes.Equal(got, []byte(raw)) {
			t.Fatalf("%q encodes back as %q", raw, got)
		}
		res, err := RPCResult(r)
		if err != nil {
			if !errors.Is(err, ErrBadEnvelope) {
				t.Fatalf("%q: %v is not ErrBadEnvelope", raw, err)
			}
			return
		}
		if !json.Valid(res) {
			t.Fatalf("%q: result %q is not JSON", raw, res)
		}
	})
}
