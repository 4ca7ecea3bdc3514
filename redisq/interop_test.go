package redisq_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/redisq"
)

// perlScript returns the commands that one role of a capture sent for its first job, in order, with the job
// and client IDs replaced by {JOB} and {CID}: a Perl peer that the tests can replay against wsgate's code.
func perlScript(t *testing.T, capture, role string) [][]string {
	t.Helper()
	cmds := parseCapture(t, capture)
	var job, cid string
	for _, c := range cmds {
		if c.role == "C" && strings.EqualFold(c.args[0], "HMSET") {
			job = strings.TrimPrefix(c.args[1], "job::")
			for i := 2; i+1 < len(c.args); i += 2 {
				if c.args[i] == "_reply_to" {
					cid = c.args[i+1]
				}
			}
			break
		}
	}
	var script [][]string
	for _, c := range cmds {
		if c.role != role {
			continue
		}
		mentionsJob := false
		words := make([]string, len(c.args))
		for i, w := range c.args {
			mentionsJob = mentionsJob || strings.Contains(w, job)
			words[i] = strings.ReplaceAll(strings.ReplaceAll(w, job, "{JOB}"), cid, "{CID}")
		}
		isIdle := strings.EqualFold(c.args[0], "BRPOPLPUSH")
		if !mentionsJob && !(isIdle && len(script) == 0) && !strings.EqualFold(c.args[0], "SUBSCRIBE") {
			continue
		}
		script = append(script, words)
		if strings.EqualFold(c.args[0], "DEL") || (role == "W" && strings.EqualFold(c.args[0], "LREM")) {
			break
		}
	}
	if len(script) == 0 {
		t.Fatalf("no %s commands in %s", role, capture)
	}
	return script
}

func substitute(words []string, job, cid string) []any {
	out := make([]any, len(words))
	for i, w := range words {
		out[i] = strings.ReplaceAll(strings.ReplaceAll(w, "{JOB}", job), "{CID}", cid)
	}
	return out
}

// TestPerlWorkerServesWsgateClient replays the Perl worker (perl-reliable.txt, and the T-result worker of
// perl-structured-text.txt) against a job submitted by wsgate's client.
func TestPerlWorkerServesWsgateClient(t *testing.T) {
	t.Parallel()
	for _, capture := range []string{"perl-reliable.txt", "perl-structured-text.txt", "perl-modern-reliable.txt"} {
		t.Run(capture, func(t *testing.T) {
			srv := redistest.Start(t)
			c, col := startClient(t, srv, redisq.ClientConfig{})
			id := redisq.NewID()
			c.Submit(redisq.RPCSubmission(id, "job-1", []byte(`{"args":{"a":1}}`)))
			perl := srv.Client()
			ctx := context.Background()
			var want string
			for _, words := range perlScript(t, capture, "W") {
				args := substitute(words, id, c.ID())
				if strings.EqualFold(words[0], "BRPOPLPUSH") {
					got, err := perl.Do(ctx, args...).Text()
					if err != nil || got != id {
						t.Fatalf("BRPOPLPUSH: %q %v", got, err)
					}
					continue
				}
				if strings.EqualFold(words[0], "HMSET") && len(words) > 5 && words[4] == "result" {
					want = args[5].(string)
				}
				if err := perl.Do(ctx, args...).Err(); err != nil {
					t.Fatalf("%v: %v", args, err)
				}
			}
			got := col.wait(t, 1)[0]
			if got.JobID != id || got.Err != nil || string(got.Result.Tag)+string(got.Result.Payload) != want {
				t.Fatalf("completion %+v, want result %q", got, want)
			}
			if n, _ := perl.Exists(ctx, redisq.JobKey(id)).Result(); n != 0 {
				t.Fatal("the client did not delete the job hash")
			}
		})
	}
}

// TestWsgateWorkerServesPerlClient replays the Perl client (perl-reliable.txt and perl-structured-text.txt,
// the latter with a Sereal field) against wsgate's worker.
func TestWsgateWorkerServesPerlClient(t *testing.T) {
	t.Parallel()
	for _, capture := range []string{"perl-reliable.txt", "perl-structured-text.txt", "perl-reliable-multi.txt"} {
		t.Run(capture, func(t *testing.T) {
			srv := redistest.Start(t)
			startTestWorker(t, srv, redisq.WorkerConfig{Handler: redisq.HandlerFunc(
				func(ctx context.Context, job *redisq.Job) (redisq.Result, error) {
					return redisq.JSON(map[string]any{"echo": job.Data, "job_id": job.ID})
				})})
			perl := srv.Client()
			ctx := context.Background()
			id, cid := "perl-job-1", "perl-client-1"
			sub := srv.Client().Subscribe(ctx, redisq.ClientChannel(cid))
			defer sub.Close()
			if _, err := sub.Receive(ctx); err != nil {
				t.Fatal(err)
			}
			var result []any
			for _, words := range perlScript(t, capture, "C") {
				args := substitute(words, id, cid)
				switch strings.ToUpper(words[0]) {
				case "SUBSCRIBE":
					continue // done above
				case "HMGET":
					msg, err := sub.ReceiveTimeout(ctx, 10*time.Second)
					if err != nil || msg.(*redis.Message).Payload != id {
						t.Fatalf("notification: %v %v", msg, err)
					}
					result, err = perl.Do(ctx, args...).Slice()
					if err != nil {
						t.Fatal(err)
					}
					continue
				}
				if err := perl.Do(ctx, args...).Err(); err != nil {
					t.Fatalf("%v: %v", args, err)
				}
			}
			raw, _ := result[0].(string)
			if !strings.HasPrefix(raw, "J") {
				t.Fatalf("result %q, want a J result", raw)
			}
			var got struct {
				Echo  map[string]any `json:"echo"`
				JobID string         `json:"job_id"`
			}
			if err := json.Unmarshal([]byte(raw[1:]), &got); err != nil || got.JobID != id || got.Echo["name"] != "job-1" {
				t.Fatalf("result %s (%v)", raw, err)
			}
			if strings.Contains(capture, "structured") && got.Echo["nested"] == nil {
				t.Fatalf("the Sereal field did not reach the handler: %s", raw)
			}
		})
	}
}

// TestFailureIsReadableByThePerlBackend: the Perl JobAsync backend JSON-decodes the text of a T result; a
// failure written by wsgate's worker must fail that decode (so it answers WrongResponse at once), and carry
// the reason in `_error`, which Perl code ignores.
func TestFailureIsReadableByThePerlBackend(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	startTestWorker(t, srv, redisq.WorkerConfig{Handler: echoRPC})
	perl := srv.Client()
	ctx := context.Background()
	perl.HSet(ctx, "job::f1", "_reply_to", "nobody", "text_name", "fail", "text_params", `{"args":{}}`)
	perl.LPush(ctx, "jobs::pending", "f1")
	var h map[string]string
	waitFor(t, func() bool { h, _ = perl.HGetAll(ctx, "job::f1").Result(); return h["_processed"] != "" })
	if !strings.HasPrefix(h["result"], "T") || json.Valid([]byte(h["result"][1:])) {
		t.Fatalf("failure result %q: want T and text that is not JSON", h["result"])
	}
	if h["_error"] != "asked to fail" {
		t.Fatalf("_error = %q", h["_error"])
	}
}
