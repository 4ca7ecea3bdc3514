// Package redact removes credentials from text that is about to be logged, returned in an error or served:
// the password of URLs (redis://user:password@host, rediss://:password@host, any scheme) and the values of
// flags and query parameters whose name says they hold a secret (password, token, secret).
//
// Use URL for a value known to be a URL, String for free text such as an error message, Args for a command
// line, and ReplaceAttr as a slog.HandlerOptions.ReplaceAttr so that no log line carries one by accident.
package redact

import (
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces a secret.
const Mask = "xxxxx"

// URL returns raw with its password (and any secret query parameter) masked. Text that does not parse as a
// URL is masked the way String masks it.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return String(raw)
	}
	changed := false
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), Mask)
		changed = true
	}
	if q := u.Query(); len(q) > 0 {
		for k := range q {
			if secretName(k) {
				q.Set(k, Mask)
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	if !changed {
		return raw
	}
	return u.String()
}

// urlUserinfo matches the user:password@ part of a URL inside free text (also one that does not parse, which
// url.Parse quotes whole in its errors).
var (
	urlUserinfo = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)([^\s/@"'?#]*?):([^\s/@"']*)@`)
	secretParam = regexp.MustCompile(`(?i)([?&;][\w.-]*(?:password|passwd|pass|token|secret)[\w.-]*=)[^\s&;"']*`)
)

// String masks every URL password and secret query parameter in s.
func String(s string) string {
	if !strings.Contains(s, "://") && !strings.Contains(s, "=") {
		return s
	}
	s = urlUserinfo.ReplaceAllString(s, "${1}${2}:"+Mask+"@")
	return secretParam.ReplaceAllString(s, "${1}"+Mask)
}

// Error is String of err's message, or "" for nil.
func Error(err error) string {
	if err == nil {
		return ""
	}
	return String(err.Error())
}

// secretName reports whether a flag or parameter name says its value is a secret.
func secretName(name string) bool {
	n := strings.ToLower(strings.TrimLeft(name, "-"))
	for _, w := range []string{"password", "passwd", "pass", "token", "secret"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// Args masks a command line: URL passwords everywhere, and the value of every flag whose name says it is a
// secret (--admin-token T, --redis-password=P).
func Args(args []string) []string {
	out := make([]string, len(args))
	maskNext := false
	for i, a := range args {
		switch {
		case maskNext:
			out[i], maskNext = Mask, false
			continue
		case strings.HasPrefix(a, "-"):
			name, _, hasValue := strings.Cut(a, "=")
			if secretName(name) {
				if hasValue {
					out[i] = name + "=" + Mask
				} else {
					out[i], maskNext = a, true
				}
				continue
			}
		}
		out[i] = String(a)
	}
	return out
}

// ReplaceAttr is a slog.HandlerOptions.ReplaceAttr that masks credentials in the message and in every string,
// error or fmt.Stringer value (a *url.URL prints its password).
func ReplaceAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if s := a.Value.String(); String(s) != s {
			a.Value = slog.StringValue(String(s))
		}
	case slog.KindAny:
		var s string
		switch v := a.Value.Any().(type) {
		case error:
			s = v.Error()
		case fmt.Stringer:
			s = v.String()
		default:
			return a
		}
		if r := String(s); r != s {
			a.Value = slog.StringValue(r)
		}
	}
	return a
}
