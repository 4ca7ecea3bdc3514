package actors

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

func TestSanityCheck(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 300)
	tests := []struct {
		name, request string
		pass          bool
	}{
		// The spec's examples.
		{"punctuation", `{"echo":"hello, world!"}`, true},
		{"all ASCII punctuation", `{"echo":"a(b)#c%d*e?[x]~;"}`, true},
		{"CJK", `{"echo":"日本語"}`, true},
		{"euro sign and emoji", `{"echo":"price €5 😀"}`, true},
		{"letter one level down", `{"echo":{"a":"ü"}}`, true},
		{"fullwidth digits and minus (Common script)", `{"echo":"１−１−１"}`, true},
		{"301 characters", `{"echo":"` + long + `a"}`, false},
		{"NUL", `{"echo":"a\u0000b"}`, false},
		{"key with a space", `{"echo":1,"bad key":1}`, false},
		// Length is in characters, and Perl's $ allows one final newline beyond it.
		{"300 characters", `{"echo":"` + long + `"}`, true},
		{"300 three-byte characters", `{"echo":"` + strings.Repeat("語", 300) + `"}`, true},
		{"301 three-byte characters", `{"echo":"` + strings.Repeat("語", 301) + `"}`, false},
		{"300 characters and a final newline", `{"echo":"` + long + `\n"}`, true},
		{"300 characters and a final tab", `{"echo":"` + long + `\t"}`, false},
		{"escaped characters count once", `{"echo":"` + strings.Repeat(`\u00e9`, 300) + `"}`, true},
		{"surrogate pair", `{"echo":"\ud83d\ude00"}`, true},
		{"lone surrogate", `{"echo":"\ud83d"}`, false},
		// Perl's \s and \w are Unicode-aware.
		{"white space", "{\"echo\":\"a\\tb\\nc\\rd\\u000be\\ff\\u0085g\\u00a0h\\u3000\"}", true},
		{"combining mark", `{"echo":"é"}`, true},
		{"Devanagari with vowel signs", `{"echo":"नमस्ते"}`, true},
		{"zero-width joiner", `{"echo":"👩‍💻"}`, true},
		{"control character", `{"echo":"a\u0007b"}`, false},
		{"DEL", `{"echo":"a\u007fb"}`, false},
		{"C1 control", `{"echo":"a\u0090b"}`, false},
		{"private use", `{"echo":"a\ue000b"}`, false},
		{"noncharacter", `{"echo":"\uffff"}`, false},
		// Keys.
		{"key of 50", `{"` + strings.Repeat("k", 50) + `":1}`, true},
		{"key of 51", `{"` + strings.Repeat("k", 51) + `":1}`, false},
		{"key with a final newline", `{"ab\n":1}`, true},
		{"empty key", `{"":1}`, false},
		{"non-ASCII key", `{"clé":1}`, false},
		{"escaped key", `{"echo":{"\u0061b":"x"}}`, true},
		{"bad key one level down", `{"echo":{"a b":1}}`, false},
		{"bad key in front of an object is not checked (Perl)", `{"a b":{"c":1}}`, true},
		{"bad key in front of an empty array is not checked (Perl)", `{"a b":[]}`, true},
		{"bad key in front of an array is checked per element", `{"a b":[1]}`, false},
		// Falsy values are not checked; other scalars always pass.
		{"falsy values", `{"a":"","b":"0","c":0,"d":null,"e":false}`, true},
		{"numbers and true", `{"a":-1.5e3,"b":true}`, true},
		// Arrays: element-wise with the parent key.
		{"array of good strings", `{"echo":["a","日本",1,null]}`, true},
		{"array with a bad string", `{"echo":["a","x\u0001"]}`, false},
		// Deeper levels are references to Perl ("HASH(0x...)") and always pass.
		{"bad value two levels down", `{"echo":{"a":{"b":"\u0001"}}}`, true},
		{"bad key two levels down", `{"echo":{"a":{"b c":1}}}`, true},
		{"object in an array", `{"echo":[{"a b":"\u0001"}]}`, true},
		{"array in an object", `{"echo":{"a":["\u0001"]}}`, true},
		// The skip pattern.
		{"password is not checked", `{"echo":1,"new_password":"a\u0001b"}`, true},
		{"password one level down", `{"echo":{"password":"a\u0001b"}}`, true},
		{"password key is still checked", `{"echo":1,"pass word":"x"}`, false},
		{"passwords in an array", `{"passwords":["a\u0001"]}`, true},
	}
	s := DefaultSanityCheck()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fields map[string]json.RawMessage
			if err := json.Unmarshal([]byte(tt.request), &fields); err != nil {
				t.Fatalf("bad test request: %v", err)
			}
			if bad, ok := s.check(fields); ok != tt.pass {
				t.Fatalf("%s: failed key %q, want pass=%v", tt.request, bad, tt.pass)
			}
		})
	}
}

func TestSanityCheckCustomValuePattern(t *testing.T) {
	t.Parallel()
	s := &SanityCheck{ValuePattern: regexp.MustCompile(`^[a-z0-9]*$`)}
	tests := []struct {
		request string
		pass    bool
	}{
		{`{"a":"abc","b":12,"c":true,"d":null,"e":{"f":"x"},"g":["y"]}`, true},
		{`{"a":"ABC"}`, false},
		{`{"a":1.5}`, false},        // numbers are checked as written
		{`{"a":0.0,"b":"0"}`, true}, // falsy
		{`{"a":{"b":{"c":"X"}}}`, true},
	}
	for _, tt := range tests {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(tt.request), &fields); err != nil {
			t.Fatal(err)
		}
		if bad, ok := s.check(fields); ok != tt.pass {
			t.Errorf("%s: failed key %q, want pass=%v", tt.request, bad, tt.pass)
		}
	}
}

// TestSanityCheckMatchesPerl compares the value class, character by character, with perl's own regexp when
// perl is installed. The expected differences: control characters (the spec rejects them) and characters
// that perl's older Unicode tables do not know.
func TestSanityCheckMatchesPerl(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	t.Parallel()
	if _, err := exec.LookPath("perl"); err != nil {
		t.Skip("no perl")
	}
	// Prints each maximal range of assigned code points where the regexp's answer is the same: "lo hi 0|1".
	script := `
my ($lo, $v);
for my $c (0 .. 0x10FFFF) {
	next if $c >= 0xD800 && $c <= 0xDFFF;
	my $s = chr $c;
	my $cur = $s !~ /\p{Assigned}/ ? -1 : ($s =~ /^[\p{Script=Common}\p{L}\s\w\@_:!-~]{0,300}$/ ? 1 : 0);
	if (!defined $v || $cur != $v || $c != $hi + 1) { printf "%x %x %d\n", $lo, $hi, $v if defined $v && $v >= 0; ($lo, $v) = ($c, $cur) }
	$hi = $c;
}
printf "%x %x %d\n", $lo, $hi, $v if $v >= 0;
`
	out, err := exec.Command("perl", "-e", "our $hi;"+script).Output()
	if err != nil {
		t.Fatalf("perl: %v", err)
	}
	checked, diffs := 0, 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var lo, hi rune
		var want int
		if _, err := fmt.Sscanf(sc.Text(), "%x %x %d", &lo, &hi, &want); err != nil {
			t.Fatalf("perl output %q: %v", sc.Text(), err)
		}
		for r := lo; r <= hi; r++ {
			if unicode.Is(unicode.Cc, r) && !unicode.Is(unicode.White_Space, r) {
				if perlValueRune(r) {
					t.Errorf("control character %U passes", r)
				}
				continue
			}
			checked++
			if got := perlValueRune(r); got != (want == 1) {
				diffs++
				if diffs <= 20 {
					t.Errorf("%U (%s): perl %v, wsgate %v", r, strconv.QuoteRune(r), want == 1, got)
				}
			}
		}
	}
	if checked < 100000 {
		t.Fatalf("only %d characters compared", checked)
	}
	t.Logf("%d characters compared, %d differ", checked, diffs)
}
