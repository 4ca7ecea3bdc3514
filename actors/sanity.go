package actors

import (
	"bytes"
	"encoding/json"
	"regexp"
)

// SanityCheck is the request check of the Perl API (SanityCheckFailed): every key must match KeyPattern and
// every string value ValuePattern, at the top level, inside objects one level down, and inside top-level
// arrays. Values of keys matching SkipValues (passwords) are not checked. Deeper levels are not checked (the
// Perl code rejected them outright, by stringifying references).
type SanityCheck struct {
	KeyPattern   *regexp.Regexp
	ValuePattern *regexp.Regexp
	SkipValues   *regexp.Regexp
}

// DefaultSanityCheck is the Perl API's rule, with the 300-character limit of our spec.
func DefaultSanityCheck() *SanityCheck {
	return &SanityCheck{
		KeyPattern:   regexp.MustCompile(`^[A-Za-z0-9_-]{1,50}$`),
		ValuePattern: regexp.MustCompile(`^[\s.A-Za-z0-9@_:+\-/='&$]{0,300}$`),
		SkipValues:   regexp.MustCompile(`password`),
	}
}

// check returns the first key that fails, or "".
func (s *SanityCheck) check(fields map[string]json.RawMessage) string {
	for k, v := range fields {
		if bad := s.checkPair(k, v, true); bad != "" {
			return bad
		}
	}
	return ""
}

func (s *SanityCheck) checkPair(k string, v json.RawMessage, descend bool) string {
	if !s.KeyPattern.MatchString(k) {
		return k
	}
	skip := s.SkipValues != nil && s.SkipValues.MatchString(k)
	v = trimJSON(v)
	if len(v) == 0 {
		return ""
	}
	switch v[0] {
	case '"':
		var str string
		if !skip && (json.Unmarshal(v, &str) != nil || !s.ValuePattern.MatchString(str)) {
			return k
		}
	case '{':
		if !descend {
			return ""
		}
		var inner map[string]json.RawMessage
		if json.Unmarshal(v, &inner) != nil {
			return k
		}
		for ik, iv := range inner {
			if bad := s.checkPair(ik, iv, false); bad != "" {
				return bad
			}
		}
	case '[':
		if !descend {
			return ""
		}
		var items []json.RawMessage
		if json.Unmarshal(v, &items) != nil {
			return k
		}
		for _, iv := range items {
			if bad := s.checkPair(k, iv, false); bad != "" {
				return bad
			}
		}
	}
	return ""
}

func trimJSON(b []byte) []byte { return bytes.TrimSpace(b) }
