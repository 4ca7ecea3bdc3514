package transport

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"
)

// Opcodes (RFC 6455 section 5.2).
const (
	opContinuation byte = 0x0
	opText         byte = 0x1
	opBinary       byte = 0x2
	opClose        byte = 0x8
	opPing         byte = 0x9
	opPong         byte = 0xA
)

// Close codes (RFC 6455 section 7.4.1).
const (
	CloseNormal          uint16 = 1000
	CloseGoingAway       uint16 = 1001
	CloseProtocolError   uint16 = 1002
	CloseUnsupported     uint16 = 1003
	CloseNoStatus        uint16 = 1005
	CloseInvalidPayload  uint16 = 1007
	ClosePolicyViolation uint16 = 1008
	CloseMessageTooBig   uint16 = 1009
	CloseInternalError   uint16 = 1011
	CloseTryAgainLater   uint16 = 1013
)

// rsv1 is the bit that marks a compressed message (RFC 7692), in the first byte of a frame.
const rsv1 byte = 0x40

// frameHeader is the parsed header of a client frame.
type frameHeader struct {
	fin        bool
	compressed bool // RSV1 on the first frame of a message, with permessage-deflate negotiated
	rsv        byte
	op         byte
	masked     bool
	length     int64
	mask       [4]byte
}

// maxHeaderSize is the size of the longest client frame header: 2 bytes, 8 of length, 4 of mask.
const maxHeaderSize = 14

var errShortHeader = errors.New("transport: incomplete frame header")

// parseHeader parses a frame header at the start of b and returns it with its size. errShortHeader means more
// bytes are needed; it never reads past len(b).
func parseHeader(b []byte) (h frameHeader, n int, err error) {
	if len(b) < 2 {
		return h, 0, errShortHeader
	}
	h.fin = b[0]&0x80 != 0
	h.rsv = b[0] & 0x70
	h.op = b[0] & 0x0f
	h.masked = b[1]&0x80 != 0
	n = 2
	switch l := b[1] & 0x7f; l {
	case 126:
		if len(b) < 4 {
			return h, 0, errShortHeader
		}
		h.length = int64(binary.BigEndian.Uint16(b[2:4]))
		n = 4
	case 127:
		if len(b) < 10 {
			return h, 0, errShortHeader
		}
		u := binary.BigEndian.Uint64(b[2:10])
		if u>>63 != 0 {
			return h, 0, errProtocol("frame length has the most significant bit set")
		}
		h.length = int64(u)
		n = 10
	default:
		h.length = int64(l)
	}
	if h.masked {
		if len(b) < n+4 {
			return h, 0, errShortHeader
		}
		copy(h.mask[:], b[n:n+4])
		n += 4
	}
	return h, n, nil
}

// appendHeader appends the header of an unmasked server frame.
func appendHeader(b []byte, fin bool, op byte, length int) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	switch {
	case length < 126:
		return append(b, b0, byte(length))
	case length <= 0xffff:
		return append(b, b0, 126, byte(length>>8), byte(length))
	default:
		b = append(b, b0, 127)
		return binary.BigEndian.AppendUint64(b, uint64(length))
	}
}

// closeError is a reason to close the connection with a code.
type closeError struct {
	code   uint16
	reason string
}

func (e *closeError) Error() string { return e.reason }

func errProtocol(reason string) error { return &closeError{code: CloseProtocolError, reason: reason} }

// validCloseCode reports whether a client may send code in a close frame (RFC 6455 section 7.4).
func validCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1011, code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// closePayload builds the body of a close frame: the code, then a reason cut to fit 125 bytes.
func closePayload(code uint16, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	b := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(reason)), code)
	return append(b, reason...)
}

// utf8Stream validates UTF-8 text that arrives in pieces: a rune cut at the end of a piece waits (up to 3
// bytes) for the next one, and a piece fails as soon as its bytes cannot begin valid text.
type utf8Stream struct {
	tail [utf8.UTFMax]byte
	n    int // bytes in tail: a valid, incomplete beginning of a rune
}

// write checks the next piece of text and reports whether everything so far can still be valid UTF-8. The
// text is complete and valid when, in addition, n is 0.
func (u *utf8Stream) write(p []byte) bool {
	if u.n > 0 {
		k := copy(u.tail[u.n:], p)
		r := u.tail[:u.n+k]
		if !utf8.FullRune(r) { // still the beginning of a rune (FullRune is true for an invalid one)
			u.n += k
			return true
		}
		c, size := utf8.DecodeRune(r)
		if c == utf8.RuneError && size == 1 {
			return false
		}
		p = p[size-u.n:]
		u.n = 0
	}
	// A rune cut at the end starts at one of the last three bytes.
	for i := len(p) - 1; i >= 0 && i >= len(p)-(utf8.UTFMax-1); i-- {
		if !utf8.RuneStart(p[i]) {
			continue
		}
		if utf8.FullRune(p[i:]) {
			break
		}
		if !utf8.Valid(p[:i]) {
			return false
		}
		u.n = copy(u.tail[:], p[i:])
		return true
	}
	return utf8.Valid(p)
}
