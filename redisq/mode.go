package redisq

import "fmt"

// Mode is how jobs travel through Redis. A client and the workers of its queue must use the same mode.
type Mode string

// The three modes (see PROTOCOL.md).
const (
	// ModeSimple pushes the job itself (JSON) on a list of its own (Keys.Simple); the worker BRPOPs it and
	// publishes the result in the pub/sub message. Fewest Redis operations; a job in flight is lost if its worker
	// dies (at most once). Not readable by Perl. Go workers of every mode serve both lists (see lists.go).
	ModeSimple Mode = "simple"
	// ModeRecoverable is the Perl-compatible job hash, ID list and pub/sub notification, fetched with BRPOP.
	// A client that missed notifications (pub/sub reconnect) recovers them from the hashes of its pending jobs.
	ModeRecoverable Mode = "recoverable"
	// ModeReliable is recoverable plus the in-process list (BRPOPLPUSH/BLMOVE, the Perl worker's own sequence)
	// with worker heartbeats: a reaper requeues the jobs of dead workers, counting deliveries and moving a job to
	// the dead-letter list after MaxDeliveries (at least once: handlers should be idempotent; Job.ID and
	// Job.Deliveries help).
	ModeReliable Mode = "reliable"
)

// DefaultMode is the mode of a zero config: the Perl protocol.
const DefaultMode = ModeReliable

// ParseMode checks a mode name; "" means DefaultMode.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return DefaultMode, nil
	case ModeSimple, ModeRecoverable, ModeReliable:
		return m, nil
	}
	return "", fmt.Errorf("redisq: unknown mode %q (simple, recoverable or reliable)", s)
}

func (m Mode) usesHash() bool { return m != ModeSimple }

// simpleJob is a job on the list in simple mode.
type simpleJob struct {
	ID      string            `json:"id"`
	ReplyTo string            `json:"reply_to"`
	Queued  float64           `json:"queued"`
	Expires float64           `json:"expires,omitempty"` // epoch seconds after which nobody waits for it
	Text    map[string]string `json:"text,omitempty"`
	JSON    map[string]any    `json:"json,omitempty"`
}

// simpleResult is the pub/sub message that answers a job in simple mode.
type simpleResult struct {
	ID     string `json:"id"`
	Result string `json:"result,omitempty"` // tag + payload, as the `result` hash field
	Error  string `json:"error,omitempty"`
}
