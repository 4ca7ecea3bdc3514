package transport

import (
	"bytes"
	"compress/flate"
	"io"
	"sync"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws/wsflate"
)

// permessage-deflate (RFC 7692) with no context takeover in either direction: every message is compressed on
// its own, so a connection keeps no compressor state (a flate writer is ~600 KiB) and the pools below serve all
// connections.

// deflateParams is what the server answers: no context takeover in either direction. RFC 7692 lets a server
// ask for both whether or not the offer did (7.1.1.1, 7.1.1.2).
var deflateParams = wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}

// deflateNegotiator picks the first permessage-deflate offer of a handshake that the server can honour (offers
// are listed in the client's order of preference, RFC 7692 5). An offer it cannot honour or cannot parse is
// declined, never an error: the client then gets a WebSocket without compression, not a failed handshake.
type deflateNegotiator struct {
	accepted bool
}

// Negotiate is ws.Upgrader.Negotiate; it is called once per offered extension.
func (n *deflateNegotiator) Negotiate(opt httphead.Option) (httphead.Option, error) {
	if n.accepted || string(opt.Name) != wsflate.ExtensionName {
		return httphead.Option{}, nil
	}
	resp, ok := answerDeflateOffer(opt)
	if !ok {
		return httphead.Option{}, nil
	}
	n.accepted = true
	return resp.Option(), nil
}

// answerDeflateOffer returns the parameters the server answers an offer with, or false to decline it.
//
// What can be honoured: client_max_window_bits with or without a value (each message is inflated with a fresh
// 32 KiB window, which reads any smaller one; the answer need not mention it), both no_context_takeover flags
// (the server uses neither context anyway), and server_max_window_bits=15, which the answer must repeat
// (7.1.2.1). Go's compressor always uses a 32 KiB window, so server_max_window_bits below 15 is declined, as
// are unknown parameters, duplicates and values outside the RFC's syntax (7.1).
func answerDeflateOffer(opt httphead.Option) (wsflate.Parameters, bool) {
	resp := deflateParams
	ok := true
	var seen [4]bool
	opt.Parameters.ForEach(func(key, val []byte) bool {
		var i int
		switch string(key) {
		case "server_no_context_takeover":
			i, ok = 0, len(val) == 0
		case "client_no_context_takeover":
			i, ok = 1, len(val) == 0
		case "client_max_window_bits":
			i, ok = 2, len(val) == 0 || windowBits(val) > 0
		case "server_max_window_bits":
			i, ok = 3, windowBits(val) == 15
			resp.ServerMaxWindowBits = 15
		default:
			ok = false
		}
		ok = ok && !seen[i]
		seen[i] = true
		return ok
	})
	return resp, ok
}

// windowBits parses an RFC 7692 window size (8 to 15, no leading zero); 0 means invalid.
func windowBits(v []byte) wsflate.WindowBits {
	if len(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5' {
		return wsflate.WindowBits(10 + v[1] - '0')
	}
	if len(v) == 1 && v[0] >= '8' && v[0] <= '9' {
		return wsflate.WindowBits(v[0] - '0')
	}
	return 0
}

// deflateTail is the empty stored block that a sender strips from each compressed message (RFC 7692 7.2.1).
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff}

var (
	flateWriters = sync.Pool{New: func() any {
		w, _ := flate.NewWriter(nil, flate.BestSpeed)
		return w
	}}
	flateReaders = sync.Pool{New: func() any { return flate.NewReader(nil) }}
)

// compress returns the compressed form of msg, without the trailing empty block.
func compress(msg []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(msg)/2 + 16)
	w := flateWriters.Get().(*flate.Writer)
	w.Reset(&buf)
	_, _ = w.Write(msg) // bytes.Buffer writes cannot fail
	_ = w.Flush()
	flateWriters.Put(w)
	return bytes.TrimSuffix(buf.Bytes(), deflateTail)
}

// decompress inflates one message, refusing to produce more than limit bytes (a small frame can inflate to
// gigabytes).
func decompress(p []byte, limit int) ([]byte, error) {
	src := io.MultiReader(bytes.NewReader(p), bytes.NewReader(deflateTail))
	r := flateReaders.Get().(io.ReadCloser)
	defer flateReaders.Put(r)
	if err := r.(flate.Resetter).Reset(src, nil); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	n, err := out.ReadFrom(io.LimitReader(r, int64(limit)+1))
	if err != nil && err != io.ErrUnexpectedEOF {
		return nil, &closeError{code: CloseInvalidPayload, reason: "invalid compressed data"}
	}
	if n > int64(limit) {
		return nil, &closeError{code: CloseMessageTooBig, reason: "message too big once decompressed"}
	}
	return out.Bytes(), nil
}
