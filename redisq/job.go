package redisq

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Result tags: the first byte of the `result` field says how the rest is encoded.
const (
	TagText byte = 'T'
	TagJSON byte = 'J'
)

// Hash fields that the protocol itself uses. Fields that start with "_" pass through Perl workers untouched.
const (
	fieldReplyTo   = "_reply_to"
	fieldQueued    = "_queued"
	fieldStarted   = "_started"
	fieldProcessed = "_processed"
	fieldResult    = "result"
	// fieldWorker names the worker holding a job (a wsgate extension, for the reaper).
	fieldWorker = "_worker"
	// fieldDeliveries counts the deliveries that ended with a dead worker (a wsgate extension).
	fieldDeliveries = "_deliveries"
	// fieldError marks a failed job (a wsgate extension; Perl code ignores it). The Perl worker writes nothing
	// for a failed job, which leaves its caller waiting for a timeout.
	fieldError = "_error"
	// fieldReplyWithResult, written by a wsgate client, asks a Go worker to publish the result itself instead
	// of the bare job ID (a wsgate extension; Perl workers ignore it, and Perl clients never write it, as they
	// would take the richer message for a job ID).
	fieldReplyWithResult = "_reply_with_result"
)

// failedResult is the `result` written with fieldError. It is not JSON, so the Perl JobAsync backend fails to
// decode it and answers WrongResponse at once instead of hanging until QUEUE_TIMEOUT.
const failedResultPrefix = "wsgate: job failed: "

// ErrJobFailed is wrapped by Completion.Err when the worker reported that the job failed.
var ErrJobFailed = errors.New("redisq: job failed")

// Result is what a worker answers: a tag (TagText or TagJSON) and the payload.
type Result struct {
	Tag     byte
	Payload []byte
}

// Text returns a TagText result.
func Text(s string) Result { return Result{Tag: TagText, Payload: []byte(s)} }

// TextBytes returns a TagText result that holds b.
func TextBytes(b []byte) Result { return Result{Tag: TagText, Payload: b} }

// JSON encodes v as a TagJSON result.
func JSON(v any) (Result, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return Result{}, fmt.Errorf("redisq: encode result: %w", err)
	}
	return Result{Tag: TagJSON, Payload: b}, nil
}

func (r Result) encode() []byte {
	tag := r.Tag
	if tag == 0 {
		tag = TagText
	}
	out := make([]byte, 0, 1+len(r.Payload))
	return append(append(out, tag), r.Payload...)
}

// decodeResult splits a stored `result` into its tag and payload.
func decodeResult(raw string) (Result, error) {
	if raw == "" {
		return Result{}, errors.New("redisq: empty result")
	}
	switch raw[0] {
	case TagText, TagJSON:
		return Result{Tag: raw[0], Payload: []byte(raw[1:])}, nil
	}
	return Result{}, fmt.Errorf("redisq: result has unknown type tag %q", raw[0])
}

// Job is a job as a worker sees it.
type Job struct {
	// ID is the job's ID; it is also the suffix of its hash key.
	ID string
	// ReplyTo is the ID of the client that waits for the result.
	ReplyTo string
	// Data holds the job's data fields by name, without their format prefix: a string for `text_<k>`,
	// a json.RawMessage for `json_<k>`, plain Go values (map[string]any, []any, string, int64, float64, bool,
	// nil, PerlObject, PerlRegexp: see PROTOCOL.md) for `sereal_<k>`.
	Data map[string]any
	// Queued is when the client queued the job (zero if unknown).
	Queued time.Time
	// Deliveries counts how many times the job has been handed to a worker, this time included: more than 1
	// means an earlier worker died while running it (reliable mode).
	Deliveries int

	// replyWithResult: the client asked for the result in the notification (fieldReplyWithResult).
	replyWithResult bool
}

// Text returns a text field of the job's data, or "" if there is none.
func (j *Job) Text(key string) string {
	switch v := j.Data[key].(type) {
	case string:
		return v
	case json.RawMessage:
		return string(v)
	}
	return ""
}

// Decode decodes a data field of any format into v, as encoding/json would.
func (j *Job) Decode(key string, v any) error {
	var raw []byte
	switch x := j.Data[key].(type) {
	case nil:
		return fmt.Errorf("redisq: job %s has no field %q", j.ID, key)
	case json.RawMessage:
		raw = x
	case string:
		if json.Valid([]byte(x)) { // a text field that holds JSON, as the gateway's `params`
			raw = []byte(x)
		} else {
			raw, _ = json.Marshal(x)
		}
	default:
		var err error
		if raw, err = json.Marshal(x); err != nil {
			return fmt.Errorf("redisq: job %s: field %q: %w", j.ID, key, err)
		}
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("redisq: job %s: field %q: %w", j.ID, key, err)
	}
	return nil
}

// parseJob decodes a job hash (HGETALL) as the Perl worker does: `text_`, `json_` fields are data, `_` fields are
// protocol fields, and any other lowercase-initial field is an error.
func parseJob(id string, h map[string]string) (*Job, error) {
	j := &Job{ID: id, Data: make(map[string]any, len(h))}
	for k, v := range h {
		switch {
		case k == fieldReplyTo:
			j.ReplyTo = v
		case k == fieldQueued:
			j.Queued = parseEpoch(v)
		case strings.HasPrefix(k, "_"), k == fieldResult:
		case strings.HasPrefix(k, "text_"):
			j.Data[k[len("text_"):]] = v
		case strings.HasPrefix(k, "json_"):
			if !json.Valid([]byte(v)) {
				return nil, fmt.Errorf("redisq: job %s: field %s is not valid JSON", id, k)
			}
			j.Data[k[len("json_"):]] = json.RawMessage(v)
		case strings.HasPrefix(k, "sereal_"):
			val, err := decodeSereal([]byte(v))
			if err != nil {
				return nil, fmt.Errorf("redisq: job %s: field %s: %w", id, k, err)
			}
			j.Data[k[len("sereal_"):]] = val
		default:
			return nil, fmt.Errorf("redisq: job %s: field %s has an invalid format", id, k)
		}
	}
	return j, nil
}

// epoch formats t as the Perl code does: seconds with a fraction.
func epoch(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMicro())/1e6, 'f', -1, 64)
}

func parseEpoch(s string) time.Time {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMicro(int64(f * 1e6))
}
