package redisq_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/internal/redistest"
	"github.com/wsgate/wsgate/redisq"
)

// The golden tests compare what wsgate's client and worker send to Redis with what the real Perl modules sent
// (testdata/captures: redis-cli MONITOR of Job::Async::Redis 0.004). What
// must match is what a peer sees: per job and per role, the keys, the fields, the values, and the order of
// effects. IDs and times are replaced by placeholders.

// command is one captured command: the sender's role (W worker, C client) and its words.
type command struct {
	role string
	args []string
}

var monitorLine = regexp.MustCompile(`^\d+\.\d+ (?:([WC])\d+#\d+|\[[^\]]*\]) +(.*)$`)

// parseCapture reads a MONITOR capture.
func parseCapture(t *testing.T, name string) []command {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "captures", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []command
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := monitorLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		out = append(out, command{role: m[1], args: unquoteMonitor(t, m[2])})
	}
	return out
}

// unquoteMonitor splits MONITOR's `"a" "b\x00"` form into words.
func unquoteMonitor(t *testing.T, s string) []string {
	var words []string
	for i := 0; i < len(s); {
		if s[i] == ' ' {
			i++
			continue
		}
		if s[i] != '"' {
			t.Fatalf("bad MONITOR line %q", s)
		}
		var b strings.Builder
		i++
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] != '\\' {
				b.WriteByte(s[i])
				continue
			}
			i++
			switch s[i] {
			case 'x':
				v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
				b.WriteByte(byte(v))
				i += 2
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'a':
				b.WriteByte('\a')
			case 'b':
				b.WriteByte('\b')
			default:
				b.WriteByte(s[i])
			}
		}
		i++
		words = append(words, b.String())
	}
	return words
}

// wsgateExtensions are hash fields that wsgate adds; Perl code passes `_` fields through untouched.
var wsgateExtensions = map[string]bool{"_worker": true, "_deliveries": true, "_error": true,
	"_reply_with_result": true}

// withResult marks a notification that carried its job's result (the wsgate extension of PROTOCOL.md,
// "Results in the notification") rather than the bare ID.
const withResult = " +result"

// effects turns commands into a comparable form, per role and per job (in order of first appearance):
// names of equivalent commands unified (HMSET=HSET, BRPOPLPUSH=BLMOVE), IDs and times replaced, hash fields
// sorted (Perl writes them in hash order), results reduced to their type tag, and commands that change no data
// a peer reads dropped (HELLO, EXPIRE: wsgate sets TTLs, the Perl code does not).
func effects(cmds []command) map[string][]string {
	names := map[string]string{}
	counters := map[string]int{}
	name := func(kind, id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		counters[kind]++
		names[id] = fmt.Sprintf("%s%d", kind, counters[kind])
		return names[id]
	}
	isTime := regexp.MustCompile(`^\d{10}(\.\d+)?$`)
	out := map[string][]string{}
	for _, c := range cmds {
		a := slices.Clone(c.args)
		cmd := strings.ToUpper(a[0])
		job := ""
		for i := 1; i < len(a); i++ {
			switch {
			case strings.HasPrefix(a[i], "job::"):
				job = name("J", a[i][5:])
				a[i] = "job::" + job
			case strings.HasPrefix(a[i], "client::"):
				a[i] = "client::" + name("CID", a[i][8:])
			}
		}
		if len(a) > 1 && (strings.Contains(a[1], "::worker::") || strings.HasSuffix(a[1], "::workers") || strings.Contains(a[1], "::done::")) {
			continue // the heartbeat and the finished-jobs counter: wsgate extensions on keys of their own
		}
		if len(a) > 1 && strings.HasSuffix(a[1], "::simple") {
			continue // a worker's poll of the simple-mode list: a wsgate extension on a key of its own
		}
		switch cmd {
		case "HELLO", "EXPIRE", "FLUSHALL", "KEYS", "TYPE", "LRANGE", "EXISTS":
			continue // no effect a peer reads (EXISTS: the check inside wsgate's update script)
		case "HMSET", "HSET":
			cmd = "HSET"
			var kv []string
			for i := 2; i+1 < len(a); i += 2 {
				f, v := a[i], a[i+1]
				if wsgateExtensions[f] {
					continue
				}
				switch {
				case isTime.MatchString(v):
					v = "T"
				case f == "_reply_to":
					v = name("CID", v)
				case f == "result":
					v = v[:1] + "…"
				case strings.HasPrefix(f, "sereal_"):
					v = "<sereal>"
				}
				kv = append(kv, f+"="+v)
			}
			sort.Strings(kv)
			a = append([]string{cmd, a[1]}, kv...)
		case "HMGET":
			a = []string{"HMGET", a[1], "result"} // reads more fields than Perl's client (e.g. _error): no effect
		case "BRPOPLPUSH", "BLMOVE", "LMOVE", "RPOPLPUSH":
			cmd = "MOVE"
			a = []string{cmd, a[1], a[2]}
		case "PUBLISH":
			var rich struct{ ID, Result string }
			if strings.HasPrefix(a[2], "{") && json.Unmarshal([]byte(a[2]), &rich) == nil && rich.Result != "" {
				if jid, ok := names[rich.ID]; ok {
					a[2] = jid + withResult
					job = jid
				}
			} else if jid, ok := names[a[2]]; ok {
				a[2] = jid
				job = jid
			}
		case "LPUSH", "LREM":
			last := len(a) - 1
			a[last] = name("J", a[last])
			job = a[last]
		}
		a[0] = cmd
		key := c.role + "/" + job
		out[key] = append(out[key], strings.Join(a, " "))
	}
	return out
}

// runScenario runs wsgate's client and worker through the captured scenario (three jobs one after another,
// each with text fields a, b and name, and optionally a structured field) and returns what Redis saw.
func runScenario(t *testing.T, jobs int, multi, structured, bare bool, resultTag byte) []command {
	t.Helper()
	srv := redistest.Start(t)
	stop := srv.Monitor()
	clientConns := redis.NewClient(&redis.Options{Addr: srv.Addr, ClientName: "C"})
	workerConns := redis.NewClient(redisq.WorkerRedisOptions(&redis.Options{Addr: srv.Addr, ClientName: "W"}, 1))
	defer clientConns.Close()
	defer workerConns.Close()
	w, err := redisq.NewWorker(redisq.WorkerConfig{Redis: workerConns, Concurrency: 1, PollTimeout: 3 * time.Second,
		Multi: multi, Logger: quiet, Handler: redisq.HandlerFunc(func(ctx context.Context, job *redisq.Job) (redisq.Result, error) {
			if resultTag == redisq.TagJSON {
				return redisq.JSON(map[string]any{"sum": 1, "worker": "go"})
			}
			return redisq.Text("sum=11"), nil
		})})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	col := newCollector()
	c, err := redisq.NewClient(redisq.ClientConfig{Redis: clientConns, Multi: multi, Sereal: structured,
		BareNotifications: bare, OnComplete: col.add, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= jobs; i++ {
		fields := []redisq.Field{{Key: "a", Value: fmt.Sprint(i)}, {Key: "b", Value: fmt.Sprint(10 * i)},
			{Key: "name", Value: fmt.Sprintf("job-%d", i)}}
		if structured {
			fields = append(fields, redisq.Field{Key: "nested", Value: fmt.Sprintf(`{"list":[1,2,%d],"flag":"yes"}`, i), JSON: true})
		}
		c.Submit(redisq.Submission{ID: redisq.NewID(), Fields: fields})
		if got := col.wait(t, 1)[0]; got.Err != nil {
			t.Fatal(got.Err)
		}
	}
	c.Shutdown(context.Background())
	w.Shutdown(context.Background())
	// MONITOR names senders by address; go-redis names each connection (HELLO ... SETNAME, or CLIENT
	// SETNAME) as it opens, which maps addresses to roles.
	seen := stop()
	roles := map[string]string{}
	for _, m := range seen {
		words := unquoteMonitor(t, m.Words)
		for i, w := range words {
			if strings.EqualFold(w, "SETNAME") && i+1 < len(words) {
				roles[m.Addr] = words[i+1]
			}
		}
	}
	// Commands a script runs show as sent by "lua", right after the EVALSHA that ran it: they are effects of
	// the role that called the script (the script call itself is not).
	var out []command
	scriptRole := ""
	for _, m := range seen {
		words := unquoteMonitor(t, m.Words)
		if m.Addr == "lua" {
			out = append(out, command{role: scriptRole, args: words})
			continue
		}
		role, ok := roles[m.Addr]
		if !ok || strings.EqualFold(words[0], "CLIENT") {
			continue
		}
		if cmd := strings.ToUpper(words[0]); cmd == "EVALSHA" || cmd == "EVAL" || cmd == "SCRIPT" {
			scriptRole = role
			continue
		}
		out = append(out, command{role: role, args: words})
	}
	return out
}

// TestGoldenCaptures runs every capture twice: with BareNotifications, where the client asks for nothing the Perl
// client does not, every effect must match; and with the default client, which asks Go workers for the result
// in the notification (`_reply_with_result`), where the only differences allowed are that extension's: the
// worker's PUBLISH carries the result, and the client does not read the hash (it still deletes it).
func TestGoldenCaptures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		capture           string
		multi, structured bool
		tag               byte
	}{
		{"perl-reliable.txt", false, false, redisq.TagJSON},
		{"perl-reliable-multi.txt", true, false, redisq.TagJSON},
		{"perl-structured-text.txt", false, true, redisq.TagText},
		{"perl-modern-reliable.txt", false, false, redisq.TagJSON}, // RESP3: HELLO 3, same effects
	}
	for _, tt := range tests {
		for _, bare := range []bool{true, false} {
			notify := map[bool]string{true: "bare", false: "result"}[bare]
			t.Run(tt.capture+"/notify="+notify, func(t *testing.T) {
				want := effects(parseCapture(t, tt.capture))
				jobs := 0
				for k := range want {
					if strings.HasPrefix(k, "C/J") {
						jobs++
					}
				}
				if !bare {
					want = withResultInNotification(want)
				}
				got := effects(runScenario(t, jobs, tt.multi, tt.structured, bare, tt.tag))
				compareEffects(t, got, want)
			})
		}
	}
}

// withResultInNotification turns the effects of a Perl capture into those expected from a wsgate client and
// worker that use the result-in-notification extension.
func withResultInNotification(want map[string][]string) map[string][]string {
	out := map[string][]string{}
	for key, cmds := range want {
		for _, c := range cmds {
			switch {
			case strings.HasPrefix(key, "C/J") && strings.HasPrefix(c, "HMGET "):
				continue // the result came in the notification
			case strings.HasPrefix(key, "W/J") && strings.HasPrefix(c, "PUBLISH "):
				c += withResult
			}
			out[key] = append(out[key], c)
		}
	}
	return out
}

func compareEffects(t *testing.T, got, want map[string][]string) {
	t.Helper()
	for _, key := range sortedKeys(want) {
		if key == "C/" || key == "W/" {
			continue // connection-level commands, compared below
		}
		if !slices.Equal(got[key], want[key]) {
			t.Errorf("%s:\n got  %q\n want %q", key, got[key], want[key])
		}
	}
	if !slices.Equal(got["C/"], want["C/"]) {
		t.Errorf("client connection commands:\n got  %q\n want %q", got["C/"], want["C/"])
	}
	// The worker's idle waits (and, with MULTI, empty groups around them) repeat as often as timing
	// makes them: compare the distinct commands.
	if g, w := distinct(got["W/"]), distinct(want["W/"]); !slices.Equal(g, w) {
		t.Errorf("worker connection commands:\n got  %q\n want %q", g, w)
	}
	if len(got) != len(want) {
		t.Errorf("roles/jobs: got %v, want %v", sortedKeys(got), sortedKeys(want))
	}
}

func sortedKeys(m map[string][]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func distinct(xs []string) []string {
	out := slices.Clone(xs)
	sort.Strings(out)
	return slices.Compact(out)
}
