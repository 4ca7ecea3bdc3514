package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/wsgate/wsgate/redisq"
	"github.com/wsgate/wsgate/server"
)

const queueUsage = `Usage: wsgate queue <command> [flags] [IDs]

See and manage the queues on a live Redis (the same --config, --redis, --redis-* and --prefix as serve).

Commands:
  stats                  per queue: pending, processing, dead letters, oldest pending age, live workers, jobs/s
  jobs [--list L]        the next jobs of a list (pending, processing or dead), decoded
  show ID...             one job's hash, decoded: params, result, timestamps, deliveries, TTL
  workers                the Go workers whose heartbeat is alive
  dead list              the dead-letter list, decoded
  dead requeue [ID...]   put dead jobs (all, or those named) back on the pending list      (needs --yes)
  dead purge             delete every dead job                                             (needs --yes)
  pending purge          take every waiting job off the queue; each caller gets an error   (needs --yes)
`

// queueCommand is `wsgate queue`'s own part of the command line; the Redis and queue settings are the shared
// ones (parseFlags).
type queueCommand struct {
	words   []string // the command, e.g. ["dead", "requeue"]
	ids     []string
	queue   string
	list    string
	limit   int
	json    bool
	yes     bool
	timeout time.Duration
	queues  map[string]server.Queue
}

// queueFlags registers the queue command's own flags.
func queueFlags(fs *flag.FlagSet) *queueCommand {
	qc := &queueCommand{}
	fs.StringVar(&qc.queue, "queue", "", "only this configured queue (default: every queue of the configuration)")
	fs.StringVar(&qc.list, "list", "pending", "jobs: the list to read: pending, processing or dead")
	fs.IntVar(&qc.limit, "limit", 20, "jobs, dead list: how many to show")
	fs.BoolVar(&qc.json, "json", false, "print JSON for scripts")
	fs.BoolVar(&qc.yes, "yes", false, "really do what a destructive command says")
	fs.DurationVar(&qc.timeout, "timeout", 10*time.Second, "give up on Redis after this long")
	return qc
}

// splitQueueWords takes the command words (one, or two for dead and pending) off the front of args.
func splitQueueWords(args []string) (words, rest []string) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return nil, args
	}
	words, rest = args[:1], args[1:]
	if (words[0] == "dead" || words[0] == "pending") && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		words, rest = append(words, rest[0]), rest[1:]
	}
	return words, rest
}

// queueKeys turns a configured queue into its redisq keys.
func queueKeys(q server.Queue) redisq.Keys {
	return redisq.Keys{Prefix: q.Prefix, NoPrefix: q.NoPrefix, Queue: q.Name}
}

// names lists the queues in a stable order, the default first.
func (qc *queueCommand) names() []string {
	out := make([]string, 0, len(qc.queues))
	for k := range qc.queues {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i] == server.DefaultQueueName) != (out[j] == server.DefaultQueueName) {
			return out[i] == server.DefaultQueueName
		}
		return out[i] < out[j]
	})
	return out
}

func runQueue(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	words, rest := splitQueueWords(args)
	o, err := parseFlags("queue", rest, stderr)
	if err != nil {
		return err
	}
	qc := o.queue
	qc.words = words
	if len(qc.words) == 0 {
		return errors.New("queue: no command given (see 'wsgate queue --help')")
	}
	cfg, err := o.cfg.WithDefaults() // fills the default queue (and on a cluster its {jobs} prefix)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	qc.queues = cfg.Queues
	if qc.queue != "" {
		q, ok := qc.queues[qc.queue]
		if !ok {
			return fmt.Errorf("queue: no queue named %q in the configuration", qc.queue)
		}
		qc.queues = map[string]server.Queue{qc.queue: q}
	}
	rdb, err := cfg.RedisConfig.NewClient(0)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	defer rdb.Close()
	// A command-line tool answers at once: its errors are its output, not go-redis's retry log.
	useRedisLogger(slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(ctx, qc.timeout)
	defer cancel()
	pctx, pcancel := context.WithTimeout(ctx, 3*time.Second)
	err = server.PingRedis(pctx, rdb)
	pcancel()
	if err != nil {
		return fmt.Errorf("queue: cannot reach Redis (%s): %w", cfg.RedisConfig.Kind(), err)
	}
	return qc.run(ctx, rdb, stdout)
}

// destructive is the list of commands that change the queue.
var destructive = map[string]bool{"dead requeue": true, "dead purge": true, "pending purge": true}

func (qc *queueCommand) run(ctx context.Context, rdb redis.UniversalClient, out io.Writer) error {
	cmd := strings.Join(qc.words, " ")
	if destructive[cmd] && !qc.yes {
		return fmt.Errorf("queue: %q changes the queue: add --yes to do it", cmd)
	}
	if destructive[cmd] || cmd == "jobs" || cmd == "show" || cmd == "dead list" {
		if len(qc.queues) > 1 && cmd != "show" {
			return fmt.Errorf("queue: %q works on one queue: name it with --queue (%s)", cmd, strings.Join(qc.names(), ", "))
		}
	}
	inspector := func(name string) *redisq.Inspector { return redisq.NewInspector(rdb, queueKeys(qc.queues[name])) }
	one := qc.names()[0]
	switch cmd {
	case "stats":
		return qc.stats(ctx, inspector, out)
	case "workers":
		return qc.workers(ctx, inspector, out)
	case "jobs":
		jobs, err := inspector(one).Jobs(ctx, redisq.List(qc.list), qc.limit)
		if err != nil {
			return err
		}
		return qc.printJobs(out, jobs)
	case "dead list":
		jobs, err := inspector(one).Jobs(ctx, redisq.ListDead, qc.limit)
		if err != nil {
			return err
		}
		return qc.printJobs(out, jobs)
	case "show":
		if len(qc.ids) == 0 {
			return errors.New("queue: show needs one or more job IDs")
		}
		jobs := make([]redisq.JobInfo, 0, len(qc.ids))
		for _, id := range qc.ids {
			j, err := inspector(one).Job(ctx, id) // a job's hash does not depend on its queue
			if err != nil {
				return err
			}
			jobs = append(jobs, j)
		}
		return qc.printJobs(out, jobs)
	case "dead requeue":
		ids := qc.ids
		if len(ids) == 0 {
			ids = nil // all
		}
		requeued, dropped, err := inspector(one).RequeueDead(ctx, ids)
		if err != nil {
			return err
		}
		return qc.printCount(out, map[string]int{"requeued": requeued, "dropped": dropped},
			fmt.Sprintf("requeued %d dead jobs (%d dropped: their hash had expired, nobody waits for them)", requeued, dropped))
	case "dead purge":
		n, err := inspector(one).PurgeDead(ctx)
		if err != nil {
			return err
		}
		return qc.printCount(out, map[string]int{"purged": n}, fmt.Sprintf("purged %d dead jobs", n))
	case "pending purge":
		n, err := inspector(one).PurgePending(ctx)
		if err != nil {
			return err
		}
		return qc.printCount(out, map[string]int{"purged": n},
			fmt.Sprintf("purged %d pending jobs (their callers were answered with an error)", n))
	}
	return fmt.Errorf("queue: unknown command %q (run 'wsgate queue -h')", cmd)
}

func (qc *queueCommand) stats(ctx context.Context, inspector func(string) *redisq.Inspector, out io.Writer) error {
	type row struct {
		Name string `json:"name"`
		redisq.QueueStats
	}
	var rows []row
	for _, name := range qc.names() {
		st, err := inspector(name).Stats(ctx)
		if err != nil {
			return err
		}
		rows = append(rows, row{name, st})
	}
	if qc.json {
		return json.NewEncoder(out).Encode(rows)
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "QUEUE\tLIST\tPENDING\tSIMPLE\tPROCESSING\tDEAD\tOLDEST\tWORKERS\tJOBS/S\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%d\t%.1f\t\n", r.Name, r.Queue, r.Pending, r.Simple,
			r.Processing, r.Dead, age(r.OldestPendingAge), r.LiveWorkers, r.JobsPerSecond)
	}
	return tw.Flush()
}

func (qc *queueCommand) workers(ctx context.Context, inspector func(string) *redisq.Inspector, out io.Writer) error {
	all := map[string][]string{}
	for _, name := range qc.names() {
		ids, err := inspector(name).Workers(ctx)
		if err != nil {
			return err
		}
		all[name] = ids
	}
	if qc.json {
		return json.NewEncoder(out).Encode(all)
	}
	for _, name := range qc.names() {
		fmt.Fprintf(out, "%s: %d live workers\n", name, len(all[name]))
		for _, id := range all[name] {
			fmt.Fprintln(out, "  "+id)
		}
	}
	return nil
}

// age prints a duration for people: "-" for none, else rounded to what matters.
func age(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Hour:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func (qc *queueCommand) printJobs(out io.Writer, jobs []redisq.JobInfo) error {
	if qc.json {
		if jobs == nil {
			jobs = []redisq.JobInfo{}
		}
		return json.NewEncoder(out).Encode(jobs)
	}
	if len(jobs) == 0 {
		fmt.Fprintln(out, "no jobs")
		return nil
	}
	now := time.Now()
	for _, j := range jobs {
		fmt.Fprintf(out, "job %s\n", j.ID)
		if !j.Exists {
			fmt.Fprintln(out, "  (no hash: answered, expired or purged)")
			continue
		}
		line := func(k, v string) {
			if v != "" {
				fmt.Fprintf(out, "  %-11s %s\n", k+":", v)
			}
		}
		when := func(t time.Time) string {
			if t.IsZero() {
				return ""
			}
			return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339Nano), age(now.Sub(t)))
		}
		line("reply to", j.ReplyTo)
		line("queued", when(j.Queued))
		line("started", when(j.Started))
		line("processed", when(j.Processed))
		line("worker", j.Worker)
		if j.Deliveries > 0 {
			line("deliveries", fmt.Sprint(j.Deliveries))
		}
		switch {
		case j.TTL < 0:
			line("ttl", "none (this key never expires)")
		case j.TTL > 0:
			line("ttl", j.TTL.Round(time.Second).String())
		}
		keys := make([]string, 0, len(j.Data))
		for k := range j.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			line(k, dataString(j.Data[k]))
		}
		line("result", j.Result)
		line("error", j.Error)
		line("bad data", j.DecodeError)
		for k, v := range j.Other {
			line(k, v)
		}
	}
	return nil
}

func (qc *queueCommand) printCount(out io.Writer, counts map[string]int, human string) error {
	if qc.json {
		return json.NewEncoder(out).Encode(counts)
	}
	_, err := fmt.Fprintln(out, human)
	return err
}

// dataString shows a job's data field: a text field as it is (the gateway's params hold JSON text), anything
// else as JSON.
func dataString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
