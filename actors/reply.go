package actors

import (
	"encoding/json"
)

// Replies are built by appending to a byte slice: the field order is fixed (msg_type first, as clients of the
// Perl API see it) and raw JSON from the request and the worker is copied in without decoding it again.

// appendSuccess appends a success reply; with a nil buf it allocates one of the reply's size.
func appendSuccess(buf []byte, msgType string, result json.RawMessage, r *Request) []byte {
	if buf == nil {
		buf = make([]byte, 0, len(`{"msg_type":"","":`)+2*len(msgType)+len(result)+metaLen(r, metaAll))
	}
	buf = append(buf, `{"msg_type":`...)
	buf = appendString(buf, msgType)
	buf = append(buf, ',')
	buf = appendString(buf, msgType)
	buf = append(buf, ':')
	buf = append(buf, result...)
	return appendMeta(buf, r)
}

func appendError(buf []byte, msgType string, code, message string, details json.RawMessage, r *Request) []byte {
	buf = append(buf, `{"msg_type":`...)
	buf = appendString(buf, msgType)
	buf = append(buf, `,"error":{"code":`...)
	buf = appendString(buf, code)
	buf = append(buf, `,"message":`...)
	buf = appendString(buf, message)
	if len(details) > 0 && string(details) != "{}" && string(details) != "null" {
		buf = append(buf, `,"details":`...)
		buf = append(buf, details...)
	}
	buf = append(buf, '}')
	return appendMeta(buf, r)
}

func appendMeta(buf []byte, r *Request) []byte { return appendMetaUpTo(buf, r, metaAll) }

// metaLevel is how much of the request a reply carries back. An error reply that would exceed
// max_response_size sheds it in this order: echo_req first (it can be as big as the request), then
// passthrough, then req_id; the error itself (code, message, details) is kept.
type metaLevel int

const (
	metaAll    metaLevel = iota // echo_req, req_id, passthrough
	metaNoEcho                  // req_id, passthrough
	metaReqID                   // req_id
	metaNone                    // nothing
)

func appendMetaUpTo(buf []byte, r *Request, level metaLevel) []byte {
	if r != nil {
		if r.echo != nil && level <= metaAll {
			buf = append(buf, `,"echo_req":`...)
			buf = append(buf, r.echo...)
		}
		if r.reqID != nil && level <= metaReqID {
			buf = append(buf, `,"req_id":`...)
			buf = append(buf, r.reqID...)
		}
		if r.passthrough != nil && level <= metaNoEcho {
			buf = append(buf, `,"passthrough":`...)
			buf = append(buf, r.passthrough...)
		}
	}
	return append(buf, '}')
}

// metaLen is the length appendMetaUpTo adds, closing brace included.
func metaLen(r *Request, level metaLevel) int {
	n := 1
	if r != nil {
		if r.echo != nil && level <= metaAll {
			n += len(`,"echo_req":`) + len(r.echo)
		}
		if r.reqID != nil && level <= metaReqID {
			n += len(`,"req_id":`) + len(r.reqID)
		}
		if r.passthrough != nil && level <= metaNoEcho {
			n += len(`,"passthrough":`) + len(r.passthrough)
		}
	}
	return n
}

// appendFittedError is appendError with as much of the request as fits in max bytes (see metaLevel). It
// returns nil, and the size of the whole reply, when even the bare error does not fit.
func appendFittedError(msgType string, code, message string, details json.RawMessage, r *Request, max int) ([]byte, int) {
	body := appendError(nil, msgType, code, message, details, nil)
	body = body[:len(body)-1] // without its closing brace: the request's members follow
	full := len(body) + metaLen(r, metaAll)
	for level := metaAll; level <= metaNone; level++ {
		if n := len(body) + metaLen(r, level); n <= max {
			buf := make([]byte, 0, n)
			return appendMetaUpTo(append(buf, body...), r, level), full
		}
	}
	return nil, full
}

// appendString appends s as a JSON string.
func appendString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			b, _ := json.Marshal(s) // rare: escape the general way
			return append(buf, b...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}
