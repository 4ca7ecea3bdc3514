package transport

import (
	"bytes"
	"compress/flate"
	"io"
	"sync"

	"github.com/gobwas/ws/wsflate"
)

// permessage-deflate (RFC 7692) with no context takeover in either direction: every message is compressed on
// its own, so a connection keeps no compressor state (a flate writer is ~600 KiB) and the pools below serve all
// connections.

// deflateParams is what the server accepts and answers.
var deflateParams = wsflate.Parameters{ServerNoContextTakeover: true, ClientNoContextTakeover: true}

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
