package redisq

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/Sereal/Sereal/Go/sereal"
)

// Sereal is the Perl side's default for structured job data (`sereal_<key>` fields).

// decodeSereal decodes a Sereal document into plain Go values (maps with string keys, slices, strings, numbers,
// bools, nil). The Go decoder knows protocol versions up to 4; current Perl encoders write version 5, whose
// body is version 4's plus a few tags (such as canonical undef), so a v5 document is read as v4 and one that
// uses a v5-only tag fails with a decode error.
func decodeSereal(b []byte) (any, error) {
	if len(b) > 4 && b[4]&0x0f == 5 {
		b = append([]byte(nil), b...)
		b[4] = b[4]&0xf0 | 4
	}
	var v any
	if err := sereal.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("redisq: sereal: %w", err)
	}
	return plain(v), nil
}

// plain turns the Sereal decoder's types into JSON-friendly ones: Perl strings arrive as []byte.
func plain(v any) any {
	switch x := v.(type) {
	case []byte:
		return string(x)
	case []any:
		for i := range x {
			x[i] = plain(x[i])
		}
		return x
	case map[string]any:
		for k := range x {
			x[k] = plain(x[k])
		}
		return x
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(plain(k))] = plain(e)
		}
		return m
	case *any:
		if x == nil {
			return nil
		}
		return plain(*x)
	}
	return v
}

// encodeSereal encodes a JSON document as Sereal (protocol version 3, which every Perl decoder since 2013
// reads). Whole numbers become integers, as Perl would have them.
func encodeSereal(jsonDoc string) ([]byte, error) {
	var v any
	d := json.NewDecoder(strings.NewReader(jsonDoc))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("redisq: sereal: field is not JSON: %w", err)
	}
	b, err := sereal.NewEncoderV3().Marshal(integers(v))
	if err != nil {
		return nil, fmt.Errorf("redisq: sereal: %w", err)
	}
	return b, nil
}

func integers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f)
		}
		return f
	case []any:
		for i := range x {
			x[i] = integers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = integers(x[k])
		}
	}
	return v
}
