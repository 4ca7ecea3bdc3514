package transport

import (
	"testing"
	"unicode/utf8"
)

func TestUTF8StreamAgreesWithValidAtEverySplit(t *testing.T) {
	tests := []struct {
		name string
		text string
	}{
		{"ascii", "hello"},
		{"two-byte", "héllo wörld"},
		{"three-byte", "€uro ☃"},
		{"four-byte", "𝄞 music 😀"},
		{"replacement char itself", "a\uFFFDb"},
		{"lone continuation", "a\x80b"},
		{"overlong", "\xc0\xaf"},
		{"surrogate", "\xed\xa0\x80"},
		{"above U+10FFFF", "\xf4\x90\x80\x80"},
		{"truncated at the end", "ab\xe2\x82"},
		{"truncated in the middle", "a\xe2\x82b"},
		{"five bytes", "\xf8\x88\x80\x80\x80"},
		{"valid then invalid", "κόσμε\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := []byte(tt.text)
			want := utf8.Valid(p)
			for i := 0; i <= len(p); i++ {
				for j := i; j <= len(p); j++ {
					var u utf8Stream
					ok := u.write(p[:i]) && u.write(p[i:j]) && u.write(p[j:])
					if got := ok && u.n == 0; got != want {
						t.Fatalf("split at %d and %d: valid %v, want %v", i, j, got, want)
					}
					// A prefix fails only if no continuation can make it valid: never for valid text.
					var v utf8Stream
					if want && !v.write(p[:j]) {
						t.Fatalf("valid text failed at its prefix of %d bytes", j)
					}
				}
			}
		})
	}
}

// TestInvalidUTF8FailsAtOnce: invalid text closes the connection with 1007 as soon as the bytes that make it
// invalid arrive (Autobahn 6.4.1-6.4.4), not when the message ends, which here it never does.
func TestInvalidUTF8FailsAtOnce(t *testing.T) {
	_, _, addr := startServer(t, Config{})
	bad := []byte("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64")
	tests := []struct {
		name   string
		stream []byte
	}{
		{"in the second fragment", append(rawFrame(0x01, true, bad[:11]), rawFrame(0x00, true, bad[11:13])...)},
		{"at the start of the second fragment", append(rawFrame(0x01, true, bad[:11]), rawFrame(0x00, true, bad[11:])...)},
		{"in a frame that has not all arrived", rawFrame(0x81, true, bad)[:6+13]},
		{"in a fragment that has not all arrived", append(rawFrame(0x01, true, bad[:5]), rawFrame(0x00, true, bad[5:])[:6+8]...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn := dial(t, addr)
			if _, err := conn.Write(tt.stream); err != nil {
				t.Fatal(err)
			}
			if got := readClose(t, conn); got != CloseInvalidPayload {
				t.Fatalf("close code %d, want %d", got, CloseInvalidPayload)
			}
		})
	}
}
