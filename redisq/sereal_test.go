package redisq

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"os/exec"
	"reflect"
	"strings"
	"testing"
)

// serealPerl is the Perl one-liner that produced the fixtures with a perl field: Sereal::Encoder 5.003 on
// Perl 5.36 (Debian bookworm's libsereal-encoder-perl), with the fixture's perl expression after the comma.
// TestSerealFixturesMatchPerl re-runs it where that module is installed.
const serealPerl = `perl -MSereal::Encoder -MScalar::Util=weaken -e 'sub Frz::FREEZE { $_[0]{v} } print unpack "H*", EXPR'`

// serealFixture is one Sereal document and what decodeSereal makes of it.
type serealFixture struct {
	name string
	// perl is the expression given to serealPerl that produced doc; "" marks a document written by hand from
	// sereal_spec.pod and Sereal::Encoder::Constants (tags the Debian encoder does not write).
	perl string
	doc  string // hex
	want any
}

var serealFixtures = []serealFixture{
	// Written by Sereal::Encoder 5.003.
	{"YES NO", `encode_sereal([!!1, !!0])`, "3df3726c0500423534", []any{true, false}},
	{"CANONICAL_UNDEF", `encode_sereal(undef)`, "3df3726c050039", nil},
	{"REFN CANONICAL_UNDEF", `encode_sereal([\undef])`, "3df3726c0500412839", []any{nil}},
	{"UNDEF", `encode_sereal([undef, my $u, \my $v])`, "3df3726c05004325252825", []any{nil, nil, nil}},
	{"POS NEG VARINT ZIGZAG",
		`encode_sereal([0,15,-1,-16,16,300,-300,18446744073709551615,9223372036854775807,-9223372036854775807])`,
		"3df3726c05004a000f1f10201020ac0221d70420ffffffffffffffffff0120ffffffffffffffff7f21fdffffffffffffffff01",
		[]any{int64(0), int64(15), int64(-1), int64(-16), int64(16), int64(300), int64(-300), uint64(math.MaxUint64),
			int64(math.MaxInt64), int64(-math.MaxInt64)}},
	{"FLOAT DOUBLE", `encode_sereal([1.5, 0.1, -2.25e300])`,
		"3df3726c050043220000c03f239a9999999999b93f234f840019c4e04afe", []any{1.5, 0.1, -2.25e300}},
	{"SHORT_BINARY BINARY STR_UTF8", `encode_sereal(["abc", "x" x 40, "caf\x{e9}", "\x{263a}", "caf\xc3\xa9"])`,
		"3df3726c05004563616263262878787878787878787878787878787878787878787878787878787878787878787878787878787878" +
			"64636166e92703e298ba65636166c3a9",
		[]any{"abc", strings.Repeat("x", 40), "café", "☺", "café"}},
	{"BINARY 200", `encode_sereal("x" x 200)`, "3df3726c050026c801" + strings.Repeat("78", 200), strings.Repeat("x", 200)},
	{"REFN ARRAY", `encode_sereal([1..20])`,
		"3df3726c0500282b140102030405060708090a0b0c0d0e0f20102011201220132014",
		[]any{int64(1), int64(2), int64(3), int64(4), int64(5), int64(6), int64(7), int64(8), int64(9), int64(10),
			int64(11), int64(12), int64(13), int64(14), int64(15), int64(16), int64(17), int64(18), int64(19), int64(20)}},
	{"REFN HASH", `encode_sereal({map {("k$_" => $_)} 1..16}, {sort_keys=>1})`,
		"3df3726c0500282a10626b3101626b3202626b3303626b3404626b3505626b3606626b3707626b3808626b3909636b31300a" +
			"636b31310b636b31320c636b31330d636b31340e636b31350f636b31362010",
		map[string]any{"k1": int64(1), "k2": int64(2), "k3": int64(3), "k4": int64(4), "k5": int64(5), "k6": int64(6),
			"k7": int64(7), "k8": int64(8), "k9": int64(9), "k10": int64(10), "k11": int64(11), "k12": int64(12),
			"k13": int64(13), "k14": int64(14), "k15": int64(15), "k16": int64(16)}},
	{"canonical_refs", `encode_sereal({a=>[1]}, {canonical_refs=>1})`, "3df3726c0500282a016161282b0101",
		map[string]any{"a": []any{int64(1)}}},
	{"COPY hash key", `encode_sereal([{abc=>1}, {abc=>2}])`, "3df3726c050042282a016361626301282a012f0502",
		[]any{map[string]any{"abc": int64(1)}, map[string]any{"abc": int64(2)}}},
	{"COPY value", `encode_sereal(["abcd", "abcd"], {dedupe_strings=>1})`, "3df3726c05004264616263642f02",
		[]any{"abcd", "abcd"}},
	{"ALIAS", `encode_sereal(["abcd", "abcd"], {aliased_dedupe_strings=>1})`, "3df3726c050042e4616263642e02",
		[]any{"abcd", "abcd"}},
	{"REFP", `encode_sereal(do { my $x = {a=>1}; [$x, $x] })`, "3df3726c05004228aa016161012903",
		[]any{map[string]any{"a": int64(1)}, map[string]any{"a": int64(1)}}},
	{"REFP scalar", `encode_sereal(do { my $s = 5; [\$s, \$s] })`, "3df3726c05004228852903", []any{int64(5), int64(5)}},
	{"REFN of REFN", `encode_sereal([\1, \\"s"])`, "3df3726c050042280128286173", []any{int64(1), "s"}},
	{"WEAKEN", `encode_sereal(do { my $x = {a=>1}; my $y = [$x, $x]; weaken($y->[1]); $y })`,
		"3df3726c05004228aa01616101302903", []any{map[string]any{"a": int64(1)}, map[string]any{"a": int64(1)}}},
	{"WEAKEN parent link",
		`encode_sereal(do { my $p = {kids=>[]}; my $k = {parent=>$p}; weaken($k->{parent}); push @{$p->{kids}}, $k; $p })`,
		"3df3726c050028aa01646b696473415166706172656e74302902",
		map[string]any{"kids": []any{map[string]any{"parent": nil}}}},
	{"OBJECT OBJECTV", `encode_sereal([bless({a=>1}, "Foo"), bless([2], "Foo"), bless(\(my $s = "x"), "Bar")])`,
		"3df3726c0500432c63466f6f282a016161012d03282b01022c63426172286178",
		[]any{PerlObject{Class: "Foo", Value: map[string]any{"a": int64(1)}}, PerlObject{Class: "Foo", Value: []any{int64(2)}},
			PerlObject{Class: "Bar", Value: "x"}}},
	{"OBJECT_FREEZE OBJECTV_FREEZE",
		`encode_sereal([bless({v=>"a"}, "Frz"), bless({v=>[1]}, "Frz")], {freeze_callbacks=>1})`,
		"3df3726c050042326346727a282b0161613303282b01282b0101",
		[]any{PerlObject{Class: "Frz", Value: []any{"a"}, Frozen: true},
			PerlObject{Class: "Frz", Value: []any{[]any{int64(1)}}, Frozen: true}}},
	{"REGEXP", `encode_sereal([qr/ab+c/i, qr/x/])`, "3df3726c0500422c6652656765787028316461622b6361692d032831617860",
		[]any{PerlRegexp{Pattern: "ab+c", Flags: "i"}, PerlRegexp{Pattern: "x"}}},
	{"header user data", `encode_sereal_with_header_data({a=>1}, {meta=>"m"})`,
		"3df3726c05090151646d657461616d51616101", map[string]any{"a": int64(1)}},
	{"Snappy", `encode_sereal([("abcdefgh") x 200], {compress=>SRL_SNAPPY, compress_threshold=>0})`,
		"3df3726c2500e4008c0e30282bc801686162636465666768" + strings.Repeat("fe0900", 27) + "fa0900",
		repeatAny("abcdefgh", 200)},
	{"Zlib", `encode_sereal([("abcdefgh") x 200], {compress=>SRL_ZLIB, compress_threshold=>0})`,
		"3df3726c35008c0ea800789cedc6490d00200c00c1e0860455f4965a5915d2fdcd7d7dea8b9a4716000000b010039b97c69b",
		repeatAny("abcdefgh", 200)},
	{"Zstd", `encode_sereal([("abcdefgh") x 200], {compress=>SRL_ZSTD, compress_threshold=>0})`,
		"3df3726c45009e0028b52ffd600c06a5000068282bc8016861626364656667680100fcf22f5f", repeatAny("abcdefgh", 200)},
	{"Snappy protocol 1", `encode_sereal([("abcdefgh") x 200], {snappy=>1, compress_threshold=>0, protocol_version=>1})`,
		"3d73726c11008c0e30282bc801686162636465666768" + strings.Repeat("fe0900", 27) + "fa0900",
		repeatAny("abcdefgh", 200)},
	{"protocol 1", `encode_sereal({n=>[1, "b"]}, {protocol_version=>1})`, "3d73726c010051616e282b02016162",
		map[string]any{"n": []any{int64(1), "b"}}},
	{"protocol 2", `encode_sereal({n=>[1, "b"]}, {protocol_version=>2})`, "3d73726c020051616e282b02016162",
		map[string]any{"n": []any{int64(1), "b"}}},
	{"protocol 3", `encode_sereal({n=>[1, "b"]}, {protocol_version=>3})`, "3df3726c030051616e282b02016162",
		map[string]any{"n": []any{int64(1), "b"}}},
	{"protocol 4", `encode_sereal({n=>[1, "b"]}, {protocol_version=>4})`, "3df3726c040051616e282b02016162",
		map[string]any{"n": []any{int64(1), "b"}}},
	{"protocol 1 REFP", `encode_sereal(do { my $x = {a=>1}; [$x, $x] }, {protocol_version=>1})`,
		"3d73726c01004228aa016161012908", []any{map[string]any{"a": int64(1)}, map[string]any{"a": int64(1)}}},
	{"protocol 1 OBJECTV", `encode_sereal([bless({a=>1}, "Foo"), bless([2], "Foo")], {protocol_version=>1})`,
		"3d73726c0100422c63466f6f282a016161012d08282b0102",
		[]any{PerlObject{Class: "Foo", Value: map[string]any{"a": int64(1)}}, PerlObject{Class: "Foo", Value: []any{int64(2)}}}},

	// Written by hand from the specification.
	{"PAD", "", "3df3726c05003f3f413f013f", []any{int64(1)}},
	{"tracked POS and REFP", "", "3df3726c050042812902", []any{int64(1), int64(1)}},
	{"LONG_DOUBLE x87 1.5", "", "3df3726c050024" + "000000000000 00c0 ff3f 000000000000", 1.5},
	{"LONG_DOUBLE x87 -0.1", "", "3df3726c050024" + "cdcccccccccccccc fbbf 000000000000", -0.1},
	{"FLOAT_128 1.5", "", "3df3726c050038" + "0000000000000000 0000000000 80ff3f", 1.5},
	{"FLOAT_128 -0.1", "", "3df3726c050038" + "9a9999999999999999999999 9999fbbf", -0.1},
	{"Latin-1 BINARY", "", "3df3726c05002604636166e9", "café"},
	{"STR_UTF8 not UTF-8", "", "3df3726c050027026fff", "o\uFFFD"},
	{"protocol 3 suffix without user data", "", "3df3726c0301006161", "a"},
	{"regexp blessed elsewhere", "", "3df3726c05002c634f7468283161786169", PerlObject{Class: "Oth", Value: PerlRegexp{"x", "i"}}},
	{"the existing protocol 5 capture", "", hex.EncodeToString([]byte("=\xf3rl\x05\x00(*\x02dlistC\x01\x02\x01dflagcyes")),
		map[string]any{"list": []any{int64(1), int64(2), int64(1)}, "flag": "yes"}},
}

func repeatAny(s string, n int) []any {
	a := make([]any, n)
	for i := range a {
		a[i] = s
	}
	return a
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeSereal(t *testing.T) {
	t.Parallel()
	for _, tc := range serealFixtures {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeSereal(unhex(t, tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got  %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

// TestDecodeSerealTruncated: every proper prefix of every fixture is an error, never a panic.
func TestDecodeSerealTruncated(t *testing.T) {
	t.Parallel()
	for _, tc := range serealFixtures {
		doc := unhex(t, tc.doc)
		for n := range len(doc) {
			if v, err := decodeSereal(doc[:n]); err == nil && n < len(doc) && !strings.HasPrefix(tc.name, "PAD") {
				t.Errorf("%s: the first %d of %d bytes decode to %#v", tc.name, n, len(doc), v)
			}
		}
	}
}

func TestDecodeSerealErrors(t *testing.T) {
	t.Parallel()
	const v5 = "3df3726c0500"
	const huge = "808080808080808010" // varint 2^60
	tests := []struct {
		name, doc string
		want      error
		msg       string // in the error's text
	}{
		{"MANY", v5 + "3c0100", ErrSerealUnsupported, "tag 0x3c (MANY)"},
		{"EXTEND", v5 + "3e00", ErrSerealUnsupported, "tag 0x3e (EXTEND)"},
		{"PACKET_START", v5 + "3d", ErrSerealUnsupported, "tag 0x3d (PACKET_START)"},
		{"reserved", v5 + "41b6", ErrSerealUnsupported, "offset 2: tag 0x36 (RESERVED)"},
		{"protocol 6", "3df3726c0600" + "01", ErrSerealUnsupported, "protocol version 6"},
		{"document type 5", "3df3726c5500" + "01", ErrSerealUnsupported, "document type 5"},
		{"cycle", "3df3726c050028ab012902", ErrSerealUnsupported, "cyclic"},
		{"UTF-8 encoded document", "3dc3b3726c050001", ErrSerealCorrupt, "UTF-8 encoded"},
		{"old magic with protocol 5", "3d73726c050001", ErrSerealCorrupt, "no Sereal header"},
		{"not Sereal", hex.EncodeToString([]byte(`{"a":1}`)), ErrSerealCorrupt, "no Sereal header"},
		{"empty", "", ErrSerealCorrupt, "too short"},
		{"trailing bytes", v5 + "0101", ErrSerealCorrupt, "1 bytes after"},
		{"REFP forward", v5 + "42290501", ErrSerealCorrupt, "not before it"},
		{"REFP to an untracked value", v5 + "42012902", ErrSerealCorrupt, "holds no tracked value"},
		{"ALIAS to offset 0", v5 + "422e00", ErrSerealCorrupt, "not before it"},
		{"COPY of a COPY", v5 + "43612f022f03", ErrSerealUnsupported, "COPY of tag 0x2f (COPY) at offset 3"},
		{"COPY of an array", v5 + "4241012f02", ErrSerealUnsupported, "COPY of tag 0x41 (ARRAYREF_1)"},
		{"hash key COPY of a number", v5 + "4201512f0201", ErrSerealCorrupt, "COPY of a int64 where a string"},
		{"hash key not a string", v5 + "5101" + "01", ErrSerealCorrupt, "where a string was expected"},
		{"OBJECTV naming no string", v5 + "422c616128002d0500", ErrSerealCorrupt, "where a string was expected"},
		{"FREEZE data not an array", v5 + "3261610000", ErrSerealCorrupt, "not an array"},
		{"varint overflow", v5 + "20ffffffffffffffffff02", ErrSerealCorrupt, "overflows"},
		// Hostile lengths: rejected before anything is allocated (FuzzDecodeSereal checks the allocation).
		{"array count 2^60", v5 + "2b" + huge, ErrSerealCorrupt, "runs past the end"},
		{"hash count 2^60", v5 + "2a" + huge, ErrSerealCorrupt, "runs past the end"},
		{"string length 2^60", v5 + "26" + huge, ErrSerealCorrupt, "runs past the end"},
		{"suffix length 2^60", "3df3726c05" + huge, ErrSerealCorrupt, "suffix length"},
		{"Snappy block 2^60", "3df3726c2500" + huge, ErrSerealCorrupt, "Snappy block"},
		{"Snappy body 2^30", "3df3726c250006" + "8080808004" + "00", ErrSerealTooLarge, "Snappy body"},
		{"Zlib body 2^60", "3df3726c3500" + huge + "00", ErrSerealTooLarge, "Zlib body"},
		{"Zlib body shorter than stated", "3df3726c3500" + "0a" + "09" + "789c63040000020002", ErrSerealCorrupt, "stated length"},
		{"Zstd content size 2^40", "3df3726c4500" + "10" + "28b52ffd" + "e0" + "0000000000010000" + "0b0000" + "78",
			ErrSerealTooLarge, "Zstd"},
		{"Zstd block length 2^60", "3df3726c4500" + huge, ErrSerealCorrupt, "Zstd block"},
		{"nested too deep", v5 + strings.Repeat("28", serealMaxDepth+2) + "01", ErrSerealTooLarge, "nested deeper"},
		{"REFP doubling", v5 + shareChain(40), ErrSerealTooLarge, "exceeds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := decodeSereal(unhex(t, tc.doc))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("decoded %#v, err %v; want %v containing %q", v, err, tc.want, tc.msg)
			}
		})
	}
}

// shareChain writes an array of n arrays, each holding the one before it twice (by REFP): a document of O(n)
// bytes whose value would be 2^n values in JSON.
func shareChain(n int) string {
	b := binary.AppendUvarint([]byte{0x2b}, uint64(n+1)) // ARRAY of n+1
	prev := len(b) + 2                                   // 1-based offset of the first tracked ARRAY
	b = append(b, 0x28, 0x80|0x2b, 2, 1, 1)              // REFN, tracked ARRAY [1, 1]
	for range n {
		off := len(b) + 2
		b = append(b, 0x28, 0x80|0x2b, 2, 0x29)
		b = binary.AppendUvarint(b, uint64(prev))
		b = append(b, 0x29)
		b = binary.AppendUvarint(b, uint64(prev))
		prev = off
	}
	return hex.EncodeToString(b)
}

// TestSerealRoundTrip: what ClientConfig.Sereal writes (protocol 3, by the Sereal Go library) decodes to the
// JSON it was made from.
func TestSerealRoundTrip(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{
		`{"n":3,"s":["x","y"],"f":1.5,"neg":-300,"big":9007199254740993,"t":true,"nil":null,"o":{"k":{}},"e":[]}`,
		`"just a string ☺"`, `[1,2.5,"three",[4],{"five":5}]`, `-1`, `{"s":"` + strings.Repeat("é", 100) + `"}`,
	} {
		b, err := encodeSereal(doc)
		if err != nil {
			t.Fatal(err)
		}
		if b[4] != 3 {
			t.Errorf("%s: written as protocol %d, want 3", doc, b[4])
		}
		v, err := decodeSereal(b)
		if err != nil {
			t.Fatalf("%s: %v (document %x)", doc, err, b)
		}
		var want any
		d := json.NewDecoder(strings.NewReader(doc))
		d.UseNumber()
		if err := d.Decode(&want); err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(v)
		if wantJSON, _ := json.Marshal(want); string(got) != string(wantJSON) {
			t.Errorf("%s came back as %s", wantJSON, got)
		}
	}
}

// TestSerealWritesReferences: hashes and arrays are written as references (REFN HASH, REFN ARRAY), at the top
// and nested, as Perl needs them; the Sereal Go library writes bare ones unless PerlCompat is set, which
// Sereal::Decoder turns into "Bizarre copy of HASH". The expected bytes were checked with
// perl -MSereal::Decoder=decode_sereal -MData::Dumper -e 'print Dumper(decode_sereal(pack "H*", "<hex>"))'
// (Sereal::Decoder 5.003), which prints $VAR1 = {'a' => [1,{'b' => undef}]};
func TestSerealWritesReferences(t *testing.T) {
	t.Parallel()
	b, err := encodeSereal(`{"a":[1,{"b":null}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hex.EncodeToString(b), "3df3726c0300282a01270161282b0201282a0127016225"; got != want {
		t.Fatalf("wrote %s, want %s", got, want)
	}
}

// TestPerlObjectJSON: blessed objects and regexps reach a handler's Job.Decode as their data.
func TestPerlObjectJSON(t *testing.T) {
	t.Parallel()
	v, err := decodeSereal(unhex(t, "3df3726c0500422c63466f6f282a0161610131617860")) // [bless({a=>1},"Foo"), REGEXP x//]
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) != `[{"a":1},"(?^:x)"]` {
		t.Fatalf("%s, %v", b, err)
	}
}

// TestSerealFixturesMatchPerl re-runs the one-liner of each Perl-made fixture where Sereal::Encoder is
// installed (apt-get install libsereal-encoder-perl), so the provenance above can be checked.
func TestSerealFixturesMatchPerl(t *testing.T) {
	t.Parallel()
	if err := exec.Command("perl", "-MSereal::Encoder", "-e1").Run(); err != nil {
		t.Skip("Perl's Sereal::Encoder is not installed")
	}
	for _, tc := range serealFixtures {
		if tc.perl == "" {
			continue
		}
		script := strings.TrimPrefix(strings.TrimSuffix(serealPerl, `'`), `perl -MSereal::Encoder -MScalar::Util=weaken -e '`)
		out, err := exec.Command("perl", "-MSereal::Encoder", "-MScalar::Util=weaken", "-e",
			strings.Replace(script, "EXPR", tc.perl, 1)).Output()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if want := strings.ReplaceAll(tc.doc, " ", ""); string(out) != want {
			t.Errorf("%s: Perl writes %s, the fixture says %s", tc.name, out, want)
		}
	}
}

// TestParseJobSerealProtocol5: a job whose Sereal field holds Perl 5.36 booleans (protocol 5 YES/NO, which
// failed the whole job before) reaches the handler (issue 9, item 5).
func TestParseJobSerealProtocol5(t *testing.T) {
	t.Parallel()
	// encode_sereal({ok=>!!1, off=>!!0, none=>undef}, {sort_keys=>1}) by Sereal::Encoder 5.003.
	doc := unhex(t, "3df3726c050053626f6b35636f666634646e6f6e6525")
	j, err := parseJob("j1", map[string]string{"_reply_to": "c", "sereal_flags": string(doc)})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]*bool
	if err := j.Decode("flags", &got); err != nil {
		t.Fatal(err)
	}
	if *got["ok"] != true || *got["off"] != false || got["none"] != nil || len(got) != 3 {
		t.Fatalf("flags = %v", got)
	}
}

// TestSerealWrittenIsReadByPerl: what ClientConfig.Sereal writes decodes in Perl's Sereal::Decoder to the
// same data (where that module is installed: apt-get install libsereal-decoder-perl).
func TestSerealWrittenIsReadByPerl(t *testing.T) {
	t.Parallel()
	if err := exec.Command("perl", "-MSereal::Decoder", "-MJSON::PP", "-e1").Run(); err != nil {
		t.Skip("Perl's Sereal::Decoder is not installed")
	}
	for _, doc := range []string{`{"n":3,"s":["x","y"],"f":1.5,"neg":-300,"t":true,"nil":null,"o":{"k":{}},"e":[]}`,
		`"☺"`, `[1,[2,[3]]]`} {
		b, err := encodeSereal(doc)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("perl", "-MSereal::Decoder=decode_sereal", "-MJSON::PP", "-e",
			`print JSON::PP->new->canonical->allow_nonref->utf8->encode(decode_sereal(pack "H*", $ARGV[0]))`,
			hex.EncodeToString(b)).Output()
		if err != nil {
			t.Fatalf("%s: %v", doc, err)
		}
		var want, got any
		if err := json.Unmarshal([]byte(doc), &want); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("%s: Perl wrote %s: %v", doc, out, err)
		}
		if !reflect.DeepEqual(normalizeBools(got), want) {
			t.Errorf("%s: Perl read %s", doc, out)
		}
	}
}

// normalizeBools maps the 1/0 (or "1"/"") that Perl makes of JSON booleans written as Sereal TRUE/FALSE back
// to bools where the test expects them: only the "t" key holds one.
func normalizeBools(v any) any {
	if m, ok := v.(map[string]any); ok {
		if t, ok := m["t"]; ok {
			m["t"] = t == true || t == 1.0 || t == "1"
		}
	}
	return v
}
