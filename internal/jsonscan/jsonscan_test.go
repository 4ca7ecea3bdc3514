package jsonscan

import (
	"encoding/json"
	"reflect"
	"testing"
)

// members decodes the object with Members the way a map decode would (later duplicates win), unquoting keys
// that are not plain with encoding/json.
func members(t testing.TB, data []byte) (map[string]json.RawMessage, bool) {
	out := map[string]json.RawMessage{}
	ok := Members(data, func(m Member) bool {
		key := string(data[m.KeyStart:m.KeyEnd])
		if !m.Plain {
			if err := json.Unmarshal(data[m.KeyStart-1:m.KeyEnd+1], &key); err != nil {
				t.Fatalf("key %s: %v", data[m.KeyStart-1:m.KeyEnd+1], err)
			}
		}
		out[key] = data[m.ValStart:m.ValEnd]
		return true
	})
	return out, ok
}

var seeds = []string{
	`{}`, ` { } `, `{"a":1}`, `{"a" : "x\"}" , "b":[1,{"c":"]"}],"d":{"e":[]}, "f":true,"g":null,"h":-1.5e3}`,
	"{\n\t\"k\\u00e9y\":\"v\",\"\\\"\":2}", `{"a":1,"a":2}`, `{"ü":1}`, "{\"a\":\"\xff\"}", "{\"\xff\":1}",
	`[1]`, `"s"`, `1`, `null`, `{"a":{"b":{"c":{}}},"z":"}"}`, `{"a":""}`, `{"":0}`,
}

func FuzzMembers(f *testing.F) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !json.Valid(data) {
			return
		}
		var want map[string]json.RawMessage
		err := json.Unmarshal(data, &want)
		got, ok := members(t, data)
		if isObject := err == nil && want != nil; ok != isObject {
			t.Fatalf("%q: Members says object=%v, encoding/json %v (%v)", data, ok, isObject, err)
		}
		if ok && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %q\nwant %q", data, got, want)
		}
	})
}

func TestMembersStops(t *testing.T) {
	n := 0
	Members([]byte(`{"a":1,"b":2,"c":3}`), func(Member) bool { n++; return n < 2 })
	if n != 2 {
		t.Fatalf("fn called %d times after returning false", n)
	}
}
