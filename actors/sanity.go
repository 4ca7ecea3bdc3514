package actors

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/wsgate/wsgate/internal/jsonscan"
)

// SanityCheck is the request check of Mojo::WebSocketProxy::Parser (SanityCheckFailed), rule for rule.
//
// For each top-level member (k, v) of the request: a scalar v is checked as the pair (k, v); an object v has
// each of its members (l, w) checked as (l, w); an array v has each element e checked as (k, e). A pair
// (key, value) fails when the key is not 1 to 50 of [A-Za-z0-9_-]; otherwise, unless the key matches
// SkipValues, when the value is truthy and is not 0 to 300 characters (code points) of the Perl class
// [\p{Script=Common}\p{L}\s\w@_:!-~] with Perl's Unicode \w (letters, marks, digits, connector punctuation,
// join controls) and \s (Unicode white space). Falsy values ("", "0", 0, false, null) are not checked;
// an object or array one level further down is a reference that Perl stringifies (HASH(0x...)), which
// always passes. Perl's `$` also matches before a final newline, so a key or value may end with one "\n"
// beyond its length limit.
//
// One deliberate difference from Perl, which the spec asks for: control characters (Unicode category Cc)
// other than white space fail, although Perl lets them through as part of the Common script. Two accidental
// ones, both stricter: a key repeated inside an object has every value checked (Perl keeps the last), and a
// lone UTF-16 surrogate escape fails (Perl's JSON decoder refuses the whole request).
//
// The default rule runs without regexp and without allocating. The zero value is the Perl rule with no
// skipped keys.
type SanityCheck struct {
	// ValuePattern, if set, replaces the Perl value rule. It sees truthy scalars only: strings decoded,
	// numbers as written, true as "1"; deeper objects and arrays are never checked.
	ValuePattern *regexp.Regexp
	// SkipValues names the keys whose values are not checked (passwords); nil means none.
	SkipValues *regexp.Regexp
}

// DefaultSanityCheck is the Perl rule that skips the values of keys containing "password".
func DefaultSanityCheck() *SanityCheck {
	return &SanityCheck{SkipValues: regexp.MustCompile(`password`)}
}

// Limits of the Perl patterns, in characters.
const (
	sanityMaxKey   = 50
	sanityMaxValue = 300
)

// check reports whether the request passes, and if not, a key that failed.
func (s *SanityCheck) check(fields map[string]json.RawMessage) (bad string, ok bool) {
	for k, v := range fields {
		v = v[jsonscan.SkipSpace(v, 0):]
		if len(v) == 0 {
			continue
		}
		switch v[0] {
		case '{':
			if bad, ok := s.checkObject(v); !ok {
				return bad, false
			}
		case '[':
			if !s.checkArray(k, v) {
				return k, false
			}
		default:
			if !s.checkPair(k, nil, v) {
				return k, false
			}
		}
	}
	return "", true
}

// checkObject checks the members of an object one level down; bad is the key of the first that fails.
func (s *SanityCheck) checkObject(v []byte) (bad string, ok bool) {
	ok = true
	jsonscan.Members(v, func(m jsonscan.Member) bool {
		if key := v[m.KeyStart:m.KeyEnd]; !s.checkPair("", key, v[m.ValStart:m.ValEnd]) {
			bad, ok = string(key), false
		}
		return ok
	})
	return bad, ok
}

// checkArray checks each element of an array as a value of key k.
func (s *SanityCheck) checkArray(k string, v []byte) bool {
	ok := true
	jsonscan.Elements(v, func(start, end int) bool {
		ok = end > start && s.checkPair(k, nil, v[start:end])
		return ok
	})
	return ok
}

// checkPair checks one (key, value) pair; the key is k, or the raw content of a JSON string when rawKey is set.
func (s *SanityCheck) checkPair(k string, rawKey []byte, v []byte) bool {
	if rawKey != nil {
		key, ok := decodeKey(rawKey)
		if !ok || !keyOK(key) {
			return false
		}
		if s.SkipValues != nil && s.SkipValues.Match(key) {
			return true
		}
	} else {
		if !keyOK(k) {
			return false
		}
		if s.SkipValues != nil && s.SkipValues.MatchString(k) {
			return true
		}
	}
	if len(v) == 0 {
		return false
	}
	if s.ValuePattern != nil {
		return s.customValue(v)
	}
	if v[0] != '"' {
		return true // numbers and true are ASCII, false and null falsy, objects and arrays "HASH(0x...)"
	}
	return perlValueOK(v[1 : len(v)-1])
}

// decodeKey decodes the raw content of a JSON string if it is short and ASCII (else it fails keyOK anyway).
// Keys without escapes, the usual ones, are returned as they are.
func decodeKey(raw []byte) ([]byte, bool) {
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw, true
	}
	buf := make([]byte, 0, sanityMaxKey+1)
	for i := 0; i < len(raw); {
		r, next := nextRune(raw, i)
		if r < 0 || r >= utf8.RuneSelf || len(buf) == cap(buf) {
			return nil, false
		}
		buf = append(buf, byte(r))
		i = next
	}
	return buf, true
}

// keyOK is ^[A-Za-z0-9_-]{1,50}$, where Perl's $ also allows one final "\n".
func keyOK[T string | []byte](k T) bool {
	n := len(k)
	if n > 0 && k[n-1] == '\n' {
		n--
	}
	if n < 1 || n > sanityMaxKey {
		return false
	}
	for i := 0; i < n; i++ {
		if c := k[i]; !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// perlValueOK is ^[\p{Script=Common}\p{L}\s\w@_:!-~]{0,300}$ (less control characters) on the raw content
// of a JSON string. "" and "0" pass it too, so their being falsy makes no difference here.
func perlValueOK(raw []byte) bool {
	n := 0
	var last rune
	for i := 0; i < len(raw); {
		c := raw[i]
		if c >= 0x20 && c < 0x7f && c != '\\' { // printable ASCII: the common case
			n, last, i = n+1, rune(c), i+1
		} else {
			var r rune
			r, i = nextRune(raw, i)
			if !perlValueRune(r) {
				return false
			}
			n, last = n+1, r
		}
		if n > sanityMaxValue+1 {
			return false
		}
	}
	return n <= sanityMaxValue || last == '\n' // Perl's $ matches before a final newline
}

// perlClass is the Perl class [\p{Script=Common}\p{L}\s\w] beyond ASCII. Perl's \w is \p{Alphabetic}
// (L, Nl, Other_Alphabetic), \p{M}, \p{Nd}, \p{Pc} and \p{Join_Control}; its \s is \p{White_Space}.
var perlClass = []*unicode.RangeTable{
	unicode.L, unicode.Common, unicode.M, unicode.Nd, unicode.Nl, unicode.Other_Alphabetic, unicode.Pc,
	unicode.White_Space, unicode.Join_Control,
}

// perlValueRune reports whether r may appear in a value; r < 0 stands for invalid UTF-8.
func perlValueRune(r rune) bool {
	switch {
	case r < 0:
		return false
	case r < utf8.RuneSelf:
		return r >= 0x20 && r < 0x7f || r >= '\t' && r <= '\r' // printable, or Perl's ASCII \s
	case unicode.Is(unicode.Cc, r): // the spec's one difference from Perl: control characters fail
		return r == 0x85 // NEL is white space
	}
	return unicode.In(r, perlClass...)
}

// customValue applies ValuePattern to a truthy scalar.
func (s *SanityCheck) customValue(v []byte) bool {
	switch v[0] {
	case '{', '[', 'n', 'f':
		return true
	case 't':
		return s.ValuePattern.MatchString("1")
	case '"':
		var str string
		if json.Unmarshal(v, &str) != nil {
			return false
		}
		return str == "" || str == "0" || s.ValuePattern.MatchString(str)
	}
	if f, err := strconv.ParseFloat(string(v), 64); err == nil && f == 0 {
		return true
	}
	return s.ValuePattern.Match(v)
}

// nextRune decodes the character at raw[i] of a JSON string's raw content and returns the index after it.
// r is -1 for invalid UTF-8 or a malformed escape; a lone surrogate is returned as is (and fails the class).
func nextRune(raw []byte, i int) (r rune, next int) {
	c := raw[i]
	if c < utf8.RuneSelf && c != '\\' {
		return rune(c), i + 1
	}
	if c != '\\' {
		r, size := utf8.DecodeRune(raw[i:])
		if r == utf8.RuneError && size == 1 {
			return -1, i + 1
		}
		return r, i + size
	}
	if i+1 >= len(raw) {
		return -1, len(raw)
	}
	switch raw[i+1] {
	case '"', '\\', '/':
		return rune(raw[i+1]), i + 2
	case 'b':
		return '\b', i + 2
	case 'f':
		return '\f', i + 2
	case 'n':
		return '\n', i + 2
	case 'r':
		return '\r', i + 2
	case 't':
		return '\t', i + 2
	case 'u':
		r = hex4(raw, i+2)
		if r < 0 {
			return -1, len(raw)
		}
		next = i + 6
		if utf16.IsSurrogate(r) && next+6 <= len(raw) && raw[next] == '\\' && raw[next+1] == 'u' {
			if r2 := hex4(raw, next+2); r2 >= 0 {
				if pair := utf16.DecodeRune(r, r2); pair != unicode.ReplacementChar {
					return pair, next + 6
				}
			}
		}
		return r, next
	}
	return -1, len(raw)
}

// hex4 parses the four hex digits at raw[i:], or returns -1.
func hex4(raw []byte, i int) rune {
	if i+4 > len(raw) {
		return -1
	}
	var r rune
	for _, c := range raw[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}
