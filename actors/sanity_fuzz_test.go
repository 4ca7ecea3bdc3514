package actors

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzSanityCheck compares the allocation-free scanner with a plain reading of the rule over the request
// decoded by encoding/json (the character class itself is compared with perl in TestSanityCheckMatchesPerl).
func FuzzSanityCheck(f *testing.F) {
	for _, seed := range []string{
		`{"echo":"hello, world!"}`, `{"echo":{"a":"ü","b":[1,{"c":"\u0001"}]}}`, `{"a b":[],"c":["x","\u0000"]}`,
		`{"k":"\ud83d\ude00 \u00e9\n","new_password":"\u0001"}`, `{"ab\n":{"\u0061 ":1}}`, `{"x":[[],{},"",0,null,true]}`,
	} {
		f.Add(seed)
	}
	s := DefaultSanityCheck()
	f.Fuzz(func(t *testing.T, req string) {
		var fields map[string]json.RawMessage
		if json.Unmarshal([]byte(req), &fields) != nil || !utf8.ValidString(req) ||
			strings.Contains(strings.ToLower(req), `\ud`) { // encoding/json turns lone surrogates into U+FFFD
			return
		}
		var decoded map[string]any
		if err := json.Unmarshal([]byte(req), &decoded); err != nil {
			t.Fatal(err)
		}
		if _, ok := s.check(fields); ok != referenceSanity(s, decoded) {
			t.Fatalf("%s: scanner %v, reference %v", req, ok, !ok)
		}
	})
}

func referenceSanity(s *SanityCheck, req map[string]any) bool {
	pair := func(k string, v any) bool {
		if !keyOK(k) {
			return false
		}
		if s.SkipValues.MatchString(k) {
			return true
		}
		str, ok := v.(string)
		if !ok {
			return true // numbers, booleans, null, and the "HASH(0x...)" of deeper levels
		}
		n := utf8.RuneCountInString(str)
		for _, r := range str {
			if !perlValueRune(r) {
				return false
			}
		}
		return n <= sanityMaxValue || n == sanityMaxValue+1 && strings.HasSuffix(str, "\n")
	}
	for k, v := range req {
		switch v := v.(type) {
		case map[string]any:
			for l, w := range v {
				if !pair(l, w) {
					return false
				}
			}
		case []any:
			for _, e := range v {
				if !pair(k, e) {
					return false
				}
			}
		default:
			if !pair(k, v) {
				return false
			}
		}
	}
	return true
}
