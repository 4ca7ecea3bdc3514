package redisq_test

import (
	"context"
	"errors"
	"testing"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/redisq"
)

// TestRPCParamsInEveryFormat: redisq.RPC reads `params` whether the client wrote it as text, JSON or Sereal
// (the Perl client's default for a structure), and fails a job whose params are not an object.
func TestRPCParamsInEveryFormat(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	c, col := startClient(t, srv, redisq.ClientConfig{})
	startTestWorker(t, srv, redisq.WorkerConfig{Handler: echoRPC})
	// {"args":{"a":1},"stash":"s"} as Sereal protocol 5 (the version current Perl writes): REFN HASH(2)
	// "args" => REFN HASH(1) "a" => 1, "stash" => "s".
	const serealParams = "=\xf3rl\x05\x00(*\x02dargs(*\x01aa\x01estashas"
	cases := []struct {
		name    string
		fields  []any
		want    string // the echoed args
		wantErr bool
	}{
		{name: "text", fields: []any{"text_name", "echo", "text_params", `{"args":{"a":1}}`}, want: `{"a":1}`},
		{name: "json", fields: []any{"text_name", "echo", "json_params", `{"args":{"a":1}}`}, want: `{"a":1}`},
		{name: "sereal", fields: []any{"text_name", "echo", "sereal_params", serealParams}, want: `{"a":1}`},
		{name: "none", fields: []any{"text_name", "echo"}, want: `null`},
		{name: "text-not-an-object", fields: []any{"text_name", "echo", "text_params", `[1]`}, wantErr: true},
		{name: "text-not-json", fields: []any{"text_name", "echo", "text_params", `args`}, wantErr: true},
		{name: "sereal-not-an-object", fields: []any{"text_name", "echo", "sereal_params", "=\xf3rl\x05\x00\x01"},
			wantErr: true},
	}
	ctx := context.Background()
	rdb := srv.Client()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := redisq.NewID()
			if err := rdb.HSet(ctx, redisq.JobKey(id), tc.fields...).Err(); err != nil {
				t.Fatal(err)
			}
			c.Submit(redisq.Submission{ID: id}) // adds _reply_to and the TTL, and queues the ID
			got := col.wait(t, 1)[0]
			if got.JobID != id {
				t.Fatalf("completion for %s, want %s", got.JobID, id)
			}
			if tc.wantErr {
				if !errors.Is(got.Err, redisq.ErrJobFailed) {
					t.Fatalf("%+v, want ErrJobFailed", got)
				}
				return
			}
			if got.Err != nil {
				t.Fatal(got.Err)
			}
			args, err := redisq.RPCResult(got.Result)
			if err != nil || string(args) != tc.want {
				t.Fatalf("echoed args %s (%v), want %s", args, err, tc.want)
			}
		})
	}
}
