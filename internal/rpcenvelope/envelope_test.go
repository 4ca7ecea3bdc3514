package rpcenvelope

import (
	"errors"
	"testing"
)

func TestResult(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, payload, want string
		err                 error
	}{
		{"success", `{"success":1,"result":{"a":1}}`, `{"a":1}`, nil},
		{"null result", `{"success":1,"result":null}`, `null`, nil},
		{"leading space", " \n{\"result\":2}", `2`, nil},
		{"no result member", `{"success":0,"error":"boom"}`, "", ErrNoResult},
		{"not an object", `[1]`, "", ErrNotEnvelope},
		{"a string", `"x"`, "", ErrNotEnvelope},
		{"empty", ``, "", ErrNotEnvelope},
		{"broken JSON", `{"result":`, "", ErrNotEnvelope},
		{"trailing garbage", `{"result":1} x`, "", ErrNotEnvelope},
		{"the last result wins", `{"result":1,"x":{"result":3},"result":2}`, `2`, nil},
		{"matched as encoding/json matches a field", `{"RESULT":[1, 2]}`, `[1, 2]`, nil},
		{"an escaped key", `{"r\u0065sult":"e"}`, `"e"`, nil},
		{"not the nested one", `{"success":0,"error":{"result":1}}`, "", ErrNoResult},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Result([]byte(tt.payload))
			if !errors.Is(err, tt.err) || string(got) != tt.want {
				t.Fatalf("Result(%q) = %s, %v; want %s, %v", tt.payload, got, err, tt.want, tt.err)
			}
		})
	}
}
