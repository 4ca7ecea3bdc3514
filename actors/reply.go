package actors

import (
	"encoding/json"
)

// Replies are built by appending to a byte slice: the field order is fixed (msg_type first, as clients of the
// Perl API see it) and raw JSON from the request and the worker is copied in without decoding it again.

func appendSuccess(buf []byte, msgType string, result json.RawMessage, r *Request) []byte {
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

func appendMeta(buf []byte, r *Request) []byte {
	if r != nil {
		if r.echo != nil {
			buf = append(buf, `,"echo_req":`...)
			buf = append(buf, r.echo...)
		}
		if r.reqID != nil {
			buf = append(buf, `,"req_id":`...)
			buf = append(buf, r.reqID...)
		}
		if r.passthrough != nil {
			buf = append(buf, `,"passthrough":`...)
			buf = append(buf, r.passthrough...)
		}
	}
	return append(buf, '}')
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
