package actors

// ErrorCode is a client-facing error code. The codes and their messages are those of Mojo::WebSocketProxy and
// its JobAsync backend, so clients written for that API work unchanged.
type ErrorCode string

// Gateway error codes.
const (
	BadRequest          ErrorCode = "BadRequest"
	SanityCheckFailed   ErrorCode = "SanityCheckFailed"
	UnrecognisedRequest ErrorCode = "UnrecognisedRequest"
	RateLimit           ErrorCode = "RateLimit"
	ResponseTooLarge    ErrorCode = "ResponseTooLarge"
	RequestTimeout      ErrorCode = "RequestTimeout"
	WrongResponse       ErrorCode = "WrongResponse"
	// ServiceUnavailable answers a request that arrives while the gateway drains before it stops (wsgate's
	// own; the Perl proxy had no drain). The client should reconnect (to another instance) and send it again:
	// it was not forwarded.
	ServiceUnavailable ErrorCode = "ServiceUnavailable"
)

// Message is the client-facing message of a gateway error code.
func (c ErrorCode) Message() string {
	switch c {
	case BadRequest:
		return "The application sent an invalid request."
	case SanityCheckFailed:
		return "Parameters sanity check failed."
	case UnrecognisedRequest:
		return "Unrecognised request"
	case RateLimit:
		return "You have reached the rate limit."
	case ResponseTooLarge:
		return "Response too large."
	case RequestTimeout:
		return "Request is timed out."
	case WrongResponse:
		return "Sorry, an error occurred while processing your request."
	case ServiceUnavailable:
		return "The server is shutting down, please reconnect."
	}
	return string(c)
}

// msgTypeError is the msg_type of replies to requests that name no action.
const msgTypeError = "error"
