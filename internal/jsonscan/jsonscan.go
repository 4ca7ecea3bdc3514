// Package jsonscan walks the top-level members of a JSON object in one pass, without decoding or copying
// them: the request and result paths need a few members, and encoding/json's map decoding costs an allocation
// per member (its key and a copy of its value) plus a second pass to validate. It is safe for concurrent use:
// it has no state.
package jsonscan

// Member is one top-level member of an object: data[KeyStart:KeyEnd] is its key between the quotes (escapes
// not decoded), data[ValStart:ValEnd] its value without surrounding whitespace.
type Member struct {
	KeyStart, KeyEnd, ValStart, ValEnd int
	// Plain reports that the key is ASCII without escapes: its bytes are its decoded value.
	Plain bool
}

// Members calls fn for each top-level member of the object in data, in order, until fn returns false. data
// must be valid JSON (check it with json.Valid first: Members does not validate and may misread or panic on
// malformed input). It reports whether data is an object.
func Members(data []byte, fn func(m Member) bool) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return false
	}
	i = skipSpace(data, i+1)
	if data[i] == '}' {
		return true
	}
	for {
		var m Member
		m.KeyStart = i + 1
		i, m.Plain = endOfString(data, i)
		m.KeyEnd = i - 1
		i = skipSpace(data, i)
		i = skipSpace(data, i+1) // the colon
		m.ValStart = i
		i = endOfValue(data, i)
		m.ValEnd = i
		if !fn(m) {
			return true
		}
		i = skipSpace(data, i)
		if data[i] == '}' {
			return true
		}
		i = skipSpace(data, i+1) // the comma
	}
}

// Elements calls fn with the bounds of each element of the array in data (which must be valid JSON), in order,
// until fn returns false. It reports whether data is an array.
func Elements(data []byte, fn func(start, end int) bool) bool {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return false
	}
	for i = skipSpace(data, i+1); i < len(data) && data[i] != ']'; {
		end := endOfValue(data, i)
		if !fn(i, end) {
			return true
		}
		if i = skipSpace(data, end); i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
	return true
}

// SkipSpace returns the index of the first byte at or after i that is not JSON whitespace.
func SkipSpace(data []byte, i int) int { return skipSpace(data, i) }

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// endOfString returns the index after the string that starts (with its quote) at i, and whether it is ASCII
// without escapes.
func endOfString(data []byte, i int) (int, bool) {
	plain := true
	for i++; i < len(data); i++ {
		switch c := data[i]; {
		case c == '"':
			return i + 1, plain
		case c == '\\':
			plain = false
			i++
		case c >= 0x80:
			plain = false
		}
	}
	return i, plain
}

// endOfValue returns the index after the value that starts at i.
func endOfValue(data []byte, i int) int {
	switch data[i] {
	case '"':
		end, _ := endOfString(data, i)
		return end
	case '{', '[':
		depth := 0
		for i < len(data) {
			switch data[i] {
			case '"':
				i, _ = endOfString(data, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // a number, true, false or null
		for i < len(data) {
			switch data[i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return i
			}
			i++
		}
		return i
	}
}
