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
	}
	return string(c)
}

// msgTypeError is the msg_type of replies to requests that name no action.
const msgTypeError = "error"
