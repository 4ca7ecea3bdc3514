package actors

// Inbound is one message from the client. The session takes ownership of Data.
type Inbound struct {
	Data        []byte
	Binary      bool // a binary frame; text otherwise
	InvalidUTF8 bool // a text frame that is not valid UTF-8
	// Done, if set, is told when the session has handled the message (the sender's backpressure).
	Done InboundDone
	// Quiet says that the connection was quiet before this message (its first, or the first after a long
	// pause): a session with a Host then passivates as soon as it has answered it and is idle, instead of
	// waiting to be asked (see Host). A connection that talks steadily never pays a respawn.
	Quiet bool
}

// InboundDone is told that an Inbound message was handled.
type InboundDone interface{ Handled() }

// JobOutcome is what became of a job: the worker's result payload (a JobAsync envelope), or an error.
type JobOutcome struct {
	Payload []byte
	Err     error
}

// attach hands a new session its connection; it is the session's first message. With resume, the session
// resumes after a passivation (with the state it left, if any).
type attach struct {
	conn    Conn
	host    Host
	resumed *SessionState
	resume  bool
}

// verdictLater carries a deferred hook's verdict back into the session.
type verdictLater struct {
	r         *Request
	v         Verdict
	insteadOf bool // the verdict of the action's InsteadOfForward, not of a BeforeForward hook
}

// Registry shard messages (a registration is the *pendingJob itself).
type (
	complete struct {
		jobID   string
		outcome JobOutcome
	}
	forget    struct{ jobIDs []string }
	expireAll struct{} // every pending job times out now (a drain's end)
	tick      struct{ now int64 }
)
