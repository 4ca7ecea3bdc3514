package redisq

import (
	"bytes"
	"cmp"
	"compress/zlib"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/Sereal/Sereal/Go/sereal"
	"github.com/golang/snappy"
	"github.com/klauspost/compress/zstd"
)

// Sereal is the Perl side's default for structured job data (`sereal_<key>` fields). redisq decodes it with its
// own decoder (below) rather than the Sereal Go library's: that one knows protocol 1-4 only (current Perl
// writes 5), panics on some malformed input, and trusts length prefixes. redisq still uses the library to
// write Sereal (protocol 3), which every Perl decoder since 2013 reads.

// Errors of the Sereal decoder; the error of a failed decode wraps one of them and names the tag and offset.
var (
	// ErrSerealCorrupt: the document is not valid Sereal (bad header, truncated, a length past the end, a
	// reference to an offset that holds nothing, trailing bytes).
	ErrSerealCorrupt = errors.New("redisq: sereal: malformed document")
	// ErrSerealUnsupported: valid Sereal that redisq does not decode (protocol versions above 5, the
	// unimplemented MANY and EXTEND tags, reserved tags, cyclic structures, a COPY of anything but a scalar).
	ErrSerealUnsupported = errors.New("redisq: sereal: unsupported")
	// ErrSerealTooLarge: the document exceeds one of the decoder's bounds (serealMaxBody, serealMaxSize,
	// serealMaxDepth).
	ErrSerealTooLarge = errors.New("redisq: sereal: document too large")
)

// The decoder's bounds, so that a hostile document cannot make it allocate or recurse without limit.
const (
	// serealMaxBody bounds a decompressed body.
	serealMaxBody = 16 << 20
	// serealMaxSize bounds the size of the decoded value, roughly the memory it takes (see srlValueSize),
	// plus the bytes of its strings. Values reached again through REFP, ALIAS or COPY count
	// each time (JSON would write them each time), though they take no more memory.
	serealMaxSize = 64 << 20
	// srlValueSize is what a value counts towards serealMaxSize besides its string bytes (an interface and
	// what it boxes). An array adds srlArraySize plus srlValueSize per item it is declared to hold, a hash
	// srlHashSize plus srlHashEntry per pair: their memory is allocated before the items are read.
	srlValueSize = 16
	srlArraySize = 24
	srlHashSize  = 48
	srlHashEntry = 48
	// serealMaxDepth bounds nesting, as Sereal::Decoder's max_recursion_depth default does.
	serealMaxDepth = 10000
)

// PerlObject is what a blessed Perl reference (Sereal OBJECT, OBJECTV and their _FREEZE forms) decodes to: its
// class and the decoded referent. It encodes to JSON as its Value alone, as Perl's JSON encoders do with
// convert_blessed-less data, so Job.Decode sees the object's data.
type PerlObject struct {
	// Class is the Perl package the reference was blessed into.
	Class string
	// Value is the referent: usually a map[string]any (a hash-based object) or []any.
	Value any
	// Frozen means the class has a FREEZE method and Value is what it returned (a []any of its return
	// values); a Perl decoder would pass them to Class->THAW.
	Frozen bool
}

// MarshalJSON encodes the object's data; the class is dropped.
func (o PerlObject) MarshalJSON() ([]byte, error) { return json.Marshal(o.Value) }

// PerlRegexp is what a Perl regular expression (qr//, Sereal REGEXP) decodes to.
type PerlRegexp struct {
	// Pattern is the pattern's source; Flags its modifiers, such as "i" or "msix".
	Pattern, Flags string
}

// String returns the regexp as Perl stringifies it: (?^flags:pattern).
func (r PerlRegexp) String() string { return "(?^" + r.Flags + ":" + r.Pattern + ")" }

// MarshalJSON encodes the regexp as its Perl stringification.
func (r PerlRegexp) MarshalJSON() ([]byte, error) { return json.Marshal(r.String()) }

// Sereal tags (sereal_spec.pod, and Sereal::Encoder::Constants for the protocol-5 ones).
const (
	srlPosLow         = 0x00 // 0x00-0x0f: 0..15
	srlNegLow         = 0x10 // 0x10-0x1f: -16..-1
	srlVarint         = 0x20
	srlZigzag         = 0x21
	srlFloat          = 0x22
	srlDouble         = 0x23
	srlLongDouble     = 0x24
	srlUndef          = 0x25
	srlBinary         = 0x26
	srlStrUTF8        = 0x27
	srlRefN           = 0x28
	srlRefP           = 0x29
	srlHash           = 0x2a
	srlArray          = 0x2b
	srlObject         = 0x2c
	srlObjectV        = 0x2d
	srlAlias          = 0x2e
	srlCopy           = 0x2f
	srlWeaken         = 0x30
	srlRegexp         = 0x31
	srlObjectFreeze   = 0x32
	srlObjectVFreeze  = 0x33
	srlNo             = 0x34 // protocol 5
	srlYes            = 0x35 // protocol 5
	srlFloat128       = 0x38 // protocol 5
	srlCanonicalUndef = 0x39 // protocol 5
	srlFalse          = 0x3a
	srlTrue           = 0x3b
	srlMany           = 0x3c
	srlPacketStart    = 0x3d
	srlExtend         = 0x3e
	srlPad            = 0x3f
	srlArrayRef0      = 0x40 // 0x40-0x4f: ref to an array of 0..15 items
	srlHashRef0       = 0x50 // 0x50-0x5f: ref to a hash of 0..15 pairs
	srlShortBinary0   = 0x60 // 0x60-0x7f: a string of 0..31 bytes
	srlTrackFlag      = 0x80
)

// srlTagNames names the tags whose name an error message may need.
var srlTagNames = map[byte]string{
	srlVarint: "VARINT", srlZigzag: "ZIGZAG", srlFloat: "FLOAT", srlDouble: "DOUBLE", srlLongDouble: "LONG_DOUBLE",
	srlUndef: "UNDEF", srlBinary: "BINARY", srlStrUTF8: "STR_UTF8", srlRefN: "REFN", srlRefP: "REFP", srlHash: "HASH",
	srlArray: "ARRAY", srlObject: "OBJECT", srlObjectV: "OBJECTV", srlAlias: "ALIAS", srlCopy: "COPY",
	srlWeaken: "WEAKEN", srlRegexp: "REGEXP", srlObjectFreeze: "OBJECT_FREEZE", srlObjectVFreeze: "OBJECTV_FREEZE",
	srlNo: "NO", srlYes: "YES", 0x36: "RESERVED", 0x37: "RESERVED", srlFloat128: "FLOAT_128",
	srlCanonicalUndef: "CANONICAL_UNDEF", srlFalse: "FALSE", srlTrue: "TRUE", srlMany: "MANY",
	srlPacketStart: "PACKET_START", srlExtend: "EXTEND", srlPad: "PAD",
}

func srlTagName(tag byte) string {
	tag &^= srlTrackFlag
	switch {
	case tag < srlNegLow:
		return fmt.Sprintf("POS_%d", tag)
	case tag < srlVarint:
		return fmt.Sprintf("NEG_%d", 32-int(tag))
	case tag >= srlShortBinary0:
		return fmt.Sprintf("SHORT_BINARY_%d", tag-srlShortBinary0)
	case tag >= srlHashRef0:
		return fmt.Sprintf("HASHREF_%d", tag-srlHashRef0)
	case tag >= srlArrayRef0:
		return fmt.Sprintf("ARRAYREF_%d", tag-srlArrayRef0)
	}
	return srlTagNames[tag]
}

// decodeSereal decodes a Sereal document (protocol 1 to 5) into plain Go values:
//   - integers: int64 (uint64 above math.MaxInt64); FLOAT, DOUBLE, LONG_DOUBLE (x86 80-bit) and FLOAT_128:
//     float64, rounded to the nearest;
//   - strings: string. STR_UTF8 as is (invalid UTF-8 replaced by U+FFFD); BINARY and SHORT_BINARY (Perl
//     byte strings) as is when they are valid UTF-8 (Perl code that holds encoded text), else read as Latin-1
//     (what a Perl byte string means), so that a string is always valid UTF-8;
//   - TRUE/FALSE and protocol 5's YES/NO: bool; UNDEF and CANONICAL_UNDEF: nil;
//   - hashes: map[string]any; arrays: []any; references (REFN, REFP, WEAKEN) are transparent: a reference
//     decodes to its referent. A value reached twice (REFP, ALIAS) is the same Go map or slice both times;
//   - blessed references: PerlObject; regexps: PerlRegexp (a plain qr//, blessed into Regexp, is a PerlRegexp);
//   - cycles: a weakened reference to an enclosing value (a Perl parent link) decodes to nil; any other cycle
//     is an error, since JSON cannot hold one.
//   - COPY: the copied scalar. No encoder copies anything else, and a COPY of a container would let a small
//     document allocate a large value, so that is an ErrSerealUnsupported error.
//
// The header's user data (protocol 3+) is skipped. Snappy, Zlib and Zstd bodies are decompressed, up to
// serealMaxBody bytes.
func decodeSereal(b []byte) (any, error) {
	d, err := newSerealDecoder(b)
	if err != nil {
		return nil, err
	}
	v, pos, err := d.value(0, 0)
	if err != nil {
		return nil, err
	}
	for pos < len(d.body) && d.body[pos]&^srlTrackFlag == srlPad {
		pos++
	}
	if pos != len(d.body) {
		return nil, d.errf(ErrSerealCorrupt, pos, "%d bytes after the document's value", len(d.body)-pos)
	}
	return v, nil
}

// serealDecoder holds one document being decoded.
type serealDecoder struct {
	body []byte
	// base is the offset of body[0] as REFP, ALIAS, COPY and OBJECTV count offsets: 1 (protocol 2 and up
	// count from the body's first byte, which is 1) or the header's length (protocol 1 counts from the
	// document's first byte).
	base    int
	tracked map[int]*srlTracked // by body position
	copies  map[int]srlCopied   // COPY targets, by body position
	size    int                 // decoded size so far, bounded by serealMaxSize
}

// srlCopied is a scalar that a COPY refers to and its size.
type srlCopied struct {
	v    any
	size int
}

// srlTracked is a value whose tag had the track flag: REFP and ALIAS may refer to it.
type srlTracked struct {
	v    any
	size int
	done bool // false while its own children are being decoded
}

func (d *serealDecoder) errf(kind error, pos int, format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", kind, pos+d.base, fmt.Sprintf(format, args...))
}

// newSerealDecoder reads the header and returns a decoder over the (decompressed) body.
func newSerealDecoder(b []byte) (*serealDecoder, error) {
	if len(b) < 6 {
		return nil, fmt.Errorf("%w: %d bytes are too short for a header", ErrSerealCorrupt, len(b))
	}
	version, typ := b[4]&0x0f, b[4]>>4
	switch magic := string(b[:4]); {
	case magic == "=\xc3\xb3r":
		return nil, fmt.Errorf("%w: the document was UTF-8 encoded after it was written (magic =\\xc3\\xb3r)", ErrSerealCorrupt)
	case magic == "=srl" && (version == 1 || version == 2):
	case magic == "=\xf3rl" && version >= 3:
		if version > 5 {
			return nil, fmt.Errorf("%w: protocol version %d", ErrSerealUnsupported, version)
		}
	default:
		return nil, fmt.Errorf("%w: no Sereal header (magic %q, version %d)", ErrSerealCorrupt, b[:4], version)
	}
	suffix, n, err := readVarint(b, 5)
	if err != nil || suffix > uint64(len(b)-n) {
		return nil, fmt.Errorf("%w: header suffix length past the end", ErrSerealCorrupt)
	}
	// The suffix (protocol 3+: a flags byte, then the user data if flag bit 0 is set) is the encoder's
	// metadata, not the job's data: skipped.
	start := n + int(suffix)
	d := &serealDecoder{body: b[start:], base: 1, tracked: map[int]*srlTracked{}, copies: map[int]srlCopied{}}
	if version == 1 {
		d.base = start
	}
	switch typ {
	case 0:
	case 1, 2: // Snappy; 2 prefixes the compressed block with its length
		blob := d.body
		if typ == 2 {
			l, n, err := readVarint(d.body, 0)
			if err != nil || l > uint64(len(d.body)-n) {
				return nil, fmt.Errorf("%w: Snappy block length past the end", ErrSerealCorrupt)
			}
			blob = d.body[n : n+int(l)]
		}
		l, err := snappy.DecodedLen(blob)
		if err != nil {
			return nil, fmt.Errorf("%w: Snappy: %w", ErrSerealCorrupt, err)
		}
		if l > serealMaxBody {
			return nil, fmt.Errorf("%w: Snappy body of %d bytes", ErrSerealTooLarge, l)
		}
		if d.body, err = snappy.Decode(nil, blob); err != nil {
			return nil, fmt.Errorf("%w: Snappy: %w", ErrSerealCorrupt, err)
		}
	case 3: // Zlib: <uncompressed length> <compressed length> <zlib stream>
		if version < 3 {
			return nil, fmt.Errorf("%w: Zlib body in protocol %d", ErrSerealCorrupt, version)
		}
		ul, n, err := readVarint(d.body, 0)
		if err != nil {
			return nil, fmt.Errorf("%w: Zlib header: %w", ErrSerealCorrupt, err)
		}
		cl, n, err := readVarint(d.body, n)
		if err != nil || cl > uint64(len(d.body)-n) {
			return nil, fmt.Errorf("%w: Zlib block length past the end", ErrSerealCorrupt)
		}
		if ul > serealMaxBody {
			return nil, fmt.Errorf("%w: Zlib body of %d bytes", ErrSerealTooLarge, ul)
		}
		zr, err := zlib.NewReader(bytes.NewReader(d.body[n : n+int(cl)]))
		if err != nil {
			return nil, fmt.Errorf("%w: Zlib: %w", ErrSerealCorrupt, err)
		}
		var out bytes.Buffer // grows with the data actually inflated, not with the claimed length
		if _, err := io.Copy(&out, io.LimitReader(zr, int64(ul)+1)); err != nil {
			return nil, fmt.Errorf("%w: Zlib: %w", ErrSerealCorrupt, err)
		}
		if uint64(out.Len()) != ul {
			return nil, fmt.Errorf("%w: Zlib body is not of its stated length %d", ErrSerealCorrupt, ul)
		}
		d.body = out.Bytes()
	case 4: // Zstd: <compressed length> <zstd frame>
		if version < 4 {
			return nil, fmt.Errorf("%w: Zstd body in protocol %d", ErrSerealCorrupt, version)
		}
		cl, n, err := readVarint(d.body, 0)
		if err != nil || cl > uint64(len(d.body)-n) {
			return nil, fmt.Errorf("%w: Zstd block length past the end", ErrSerealCorrupt)
		}
		zd, err := zstdDecoder()
		if err != nil {
			return nil, fmt.Errorf("%w: Zstd: %w", ErrSerealUnsupported, err)
		}
		if d.body, err = zd.DecodeAll(d.body[n:n+int(cl)], nil); err != nil {
			if errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded) {
				return nil, fmt.Errorf("%w: Zstd: %w", ErrSerealTooLarge, err)
			}
			return nil, fmt.Errorf("%w: Zstd: %w", ErrSerealCorrupt, err)
		}
	default:
		return nil, fmt.Errorf("%w: document type %d", ErrSerealUnsupported, typ)
	}
	return d, nil
}

// zstdDecoder is shared by all decodes: concurrent DecodeAll calls take turns (Zstd bodies are rare: the Perl
// encoder compresses only when asked to). With a concurrency of 1 it starts no goroutines; its memory bound
// makes it refuse frames that would inflate past serealMaxBody.
var zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(serealMaxBody),
		zstd.WithDecoderMaxWindow(serealMaxBody))
})

// readVarint reads a varint at b[i:] and returns it and the position after it.
func readVarint(b []byte, i int) (uint64, int, error) {
	var v uint64
	for shift := 0; shift < 64; shift += 7 {
		if i >= len(b) {
			return 0, i, io.ErrUnexpectedEOF
		}
		c := b[i]
		i++
		if shift == 63 && c > 1 {
			break
		}
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return v, i, nil
		}
	}
	return 0, i, errors.New("varint overflows 64 bits")
}

// grow adds n to the decoded size.
func (d *serealDecoder) grow(pos, n int) error {
	if d.size += n; d.size > serealMaxSize {
		return d.errf(ErrSerealTooLarge, pos, "decoded value exceeds %d bytes", serealMaxSize)
	}
	return nil
}

// varint reads a varint operand at pos.
func (d *serealDecoder) varint(pos int, what string) (uint64, int, error) {
	v, next, err := readVarint(d.body, pos)
	if err != nil {
		return 0, 0, d.errf(ErrSerealCorrupt, pos, "%s: %v", what, err)
	}
	return v, next, nil
}

// length reads a varint length or count at pos that needs at least min bytes per unit after it.
func (d *serealDecoder) length(pos, min int, what string) (int, int, error) {
	l, next, err := d.varint(pos, what)
	if err != nil {
		return 0, 0, err
	}
	if l > uint64(len(d.body)-next)/uint64(min) {
		return 0, 0, d.errf(ErrSerealCorrupt, pos, "%s %d runs past the end", what, l)
	}
	return int(l), next, nil
}

// offset reads an OFFSET-VARINT at pos and returns the body position it names, which must lie before the tag
// at tagPos.
func (d *serealDecoder) offset(pos, tagPos int) (int, int, error) {
	o, next, err := d.varint(pos, "offset")
	if err != nil {
		return 0, 0, err
	}
	if o < uint64(d.base) || o-uint64(d.base) >= uint64(tagPos) {
		return 0, 0, d.errf(ErrSerealCorrupt, tagPos, "%s refers to offset %d, not before it", srlTagName(d.body[tagPos]), o)
	}
	return int(o - uint64(d.base)), next, nil
}

// bytesAt returns the n bytes at pos.
func (d *serealDecoder) bytesAt(pos, n int) ([]byte, int, error) {
	if n > len(d.body)-pos {
		return nil, 0, d.errf(ErrSerealCorrupt, pos, "%d bytes past the end", n)
	}
	return d.body[pos : pos+n], pos + n, nil
}

// value decodes the value whose tag is at pos (after any PAD) and returns it and the position after it. depth
// is the nesting depth.
func (d *serealDecoder) value(pos, depth int) (any, int, error) {
	if depth > serealMaxDepth {
		return nil, 0, d.errf(ErrSerealTooLarge, pos, "nested deeper than %d", serealMaxDepth)
	}
	for pos < len(d.body) && d.body[pos]&^srlTrackFlag == srlPad {
		pos++
	}
	if pos >= len(d.body) {
		return nil, 0, d.errf(ErrSerealCorrupt, pos, "truncated: a value was expected")
	}
	raw := d.body[pos]
	var t *srlTracked
	if raw&srlTrackFlag != 0 {
		t = &srlTracked{}
		d.tracked[pos] = t
	}
	before := d.size
	if err := d.grow(pos, srlValueSize); err != nil {
		return nil, 0, err
	}
	v, next, err := d.untracked(pos, depth)
	if err != nil {
		return nil, 0, err
	}
	if t != nil {
		t.v, t.size, t.done = v, d.size-before, true
	}
	return v, next, nil
}

// untracked decodes the value whose tag is at pos, ignoring the tag's track flag.
func (d *serealDecoder) untracked(pos, depth int) (any, int, error) {
	tag := d.body[pos] &^ srlTrackFlag
	p := pos + 1
	switch {
	case tag < srlNegLow:
		return int64(tag), p, nil
	case tag < srlVarint:
		return int64(tag) - 32, p, nil
	case tag >= srlShortBinary0:
		b, next, err := d.bytesAt(p, int(tag-srlShortBinary0))
		if err != nil {
			return nil, 0, err
		}
		return d.str(pos, b, false, next)
	case tag >= srlHashRef0:
		return d.hash(pos, p, int(tag-srlHashRef0), depth)
	case tag >= srlArrayRef0:
		return d.array(pos, p, int(tag-srlArrayRef0), depth)
	}
	switch tag {
	case srlVarint:
		u, next, err := d.varint(p, "VARINT")
		if err != nil {
			return nil, 0, err
		}
		if u > math.MaxInt64 {
			return u, next, nil
		}
		return int64(u), next, nil
	case srlZigzag:
		u, next, err := d.varint(p, "ZIGZAG")
		if err != nil {
			return nil, 0, err
		}
		return int64(u>>1) ^ -int64(u&1), next, nil
	case srlFloat:
		b, next, err := d.bytesAt(p, 4)
		if err != nil {
			return nil, 0, err
		}
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b))), next, nil
	case srlDouble:
		b, next, err := d.bytesAt(p, 8)
		if err != nil {
			return nil, 0, err
		}
		return math.Float64frombits(binary.LittleEndian.Uint64(b)), next, nil
	case srlLongDouble, srlFloat128:
		b, next, err := d.bytesAt(p, 16)
		if err != nil {
			return nil, 0, err
		}
		if tag == srlLongDouble {
			return x87ToFloat64(b), next, nil
		}
		return float128ToFloat64(b), next, nil
	case srlUndef, srlCanonicalUndef:
		return nil, p, nil
	case srlTrue, srlYes:
		return true, p, nil
	case srlFalse, srlNo:
		return false, p, nil
	case srlBinary, srlStrUTF8:
		n, next, err := d.length(p, 1, "string length")
		if err != nil {
			return nil, 0, err
		}
		return d.str(pos, d.body[next:next+n], tag == srlStrUTF8, next+n)
	case srlHash, srlArray:
		n, next, err := d.length(p, 1, "item count")
		if err != nil {
			return nil, 0, err
		}
		if tag == srlHash {
			return d.hash(pos, next, n, depth)
		}
		return d.array(pos, next, n, depth)
	case srlRefN:
		return d.value(p, depth+1)
	case srlWeaken:
		return d.weakRef(p, depth)
	case srlRefP, srlAlias:
		target, next, err := d.offset(p, pos)
		if err != nil {
			return nil, 0, err
		}
		v, err := d.reuse(pos, target, false)
		return v, next, err
	case srlCopy:
		target, next, err := d.offset(p, pos)
		if err != nil {
			return nil, 0, err
		}
		v, err := d.copyOf(pos, target)
		return v, next, err
	case srlObject, srlObjectFreeze:
		class, next, err := d.key(p)
		if err != nil {
			return nil, 0, err
		}
		return d.object(pos, class, next, tag == srlObjectFreeze, depth)
	case srlObjectV, srlObjectVFreeze:
		target, next, err := d.offset(p, pos)
		if err != nil {
			return nil, 0, err
		}
		class, _, err := d.key(target)
		if err != nil {
			return nil, 0, err
		}
		return d.object(pos, class, next, tag == srlObjectVFreeze, depth)
	case srlRegexp:
		pattern, next, err := d.key(p)
		if err != nil {
			return nil, 0, err
		}
		flags, next, err := d.key(next)
		if err != nil {
			return nil, 0, err
		}
		return PerlRegexp{Pattern: pattern, Flags: flags}, next, nil
	}
	return nil, 0, d.errf(ErrSerealUnsupported, pos, "tag 0x%02x (%s)", tag, cmp.Or(srlTagName(tag), "unknown"))
}

// str returns a string value (see decodeSereal for BINARY strings that are not UTF-8).
func (d *serealDecoder) str(pos int, b []byte, isUTF8 bool, next int) (any, int, error) {
	if err := d.grow(pos, len(b)); err != nil {
		return nil, 0, err
	}
	switch {
	case utf8.Valid(b):
		return string(b), next, nil
	case isUTF8: // not what it says it is: as encoding/json would
		return strings.ToValidUTF8(string(b), "\uFFFD"), next, nil
	}
	var s strings.Builder
	s.Grow(2 * len(b))
	for _, c := range b {
		s.WriteRune(rune(c))
	}
	return s.String(), next, nil
}

// key decodes a string that must be one: a hash key, a class name, a regexp's pattern or flags; it may be a
// COPY of one.
func (d *serealDecoder) key(pos int) (string, int, error) {
	for pos < len(d.body) && d.body[pos]&^srlTrackFlag == srlPad {
		pos++
	}
	if pos >= len(d.body) {
		return "", 0, d.errf(ErrSerealCorrupt, pos, "truncated: a string was expected")
	}
	var v any
	var next int
	var err error
	switch tag := d.body[pos] &^ srlTrackFlag; {
	case tag == srlCopy:
		var target int
		if target, next, err = d.offset(pos+1, pos); err == nil {
			v, err = d.copyOf(pos, target)
		}
	case tag == srlBinary, tag == srlStrUTF8, tag >= srlShortBinary0:
		v, next, err = d.value(pos, 0)
	default:
		err = d.errf(ErrSerealCorrupt, pos, "tag 0x%02x (%s) where a string was expected", tag, cmp.Or(srlTagName(tag), "unknown"))
	}
	if err != nil {
		return "", 0, err
	}
	s, ok := v.(string)
	if !ok {
		return "", 0, d.errf(ErrSerealCorrupt, pos, "COPY of a %T where a string was expected", v)
	}
	return s, next, nil
}

// copyOf returns the value of the COPY at pos, whose target is at target. Only scalars are copied (the Perl
// encoder copies strings only: hash keys, class names, dedupe_strings), so a COPY can neither nest nor make a
// small document allocate a large value; the copy is the same Go value each time.
func (d *serealDecoder) copyOf(pos, target int) (any, error) {
	for target < pos && d.body[target]&^srlTrackFlag == srlPad {
		target++
	}
	c, ok := d.copies[target]
	if !ok {
		switch tag := d.body[target] &^ srlTrackFlag; {
		case tag < srlRefN, tag >= srlShortBinary0, tag == srlFloat128, tag == srlCanonicalUndef,
			tag == srlNo, tag == srlYes, tag == srlTrue, tag == srlFalse:
		default:
			return nil, d.errf(ErrSerealUnsupported, pos, "COPY of tag 0x%02x (%s) at offset %d: only scalars are copied",
				tag, cmp.Or(srlTagName(tag), "unknown"), target+d.base)
		}
		before := d.size
		v, _, err := d.untracked(target, 0)
		if err != nil {
			return nil, err
		}
		c = srlCopied{v: v, size: d.size - before}
		d.copies[target] = c
		return c.v, nil
	}
	return c.v, d.grow(pos, c.size)
}

// hash decodes n key/value pairs at pos (for the HASH or HASHREF tag at tagPos).
func (d *serealDecoder) hash(tagPos, pos, n, depth int) (any, int, error) {
	if n > (len(d.body)-pos)/2 {
		return nil, 0, d.errf(ErrSerealCorrupt, tagPos, "%d pairs run past the end", n)
	}
	if err := d.grow(tagPos, srlHashSize+n*srlHashEntry); err != nil {
		return nil, 0, err
	}
	m := make(map[string]any, n)
	for range n {
		k, next, err := d.key(pos)
		if err != nil {
			return nil, 0, err
		}
		if m[k], pos, err = d.value(next, depth+1); err != nil {
			return nil, 0, err
		}
	}
	return m, pos, nil
}

// array decodes n items at pos (for the ARRAY or ARRAYREF tag at tagPos).
func (d *serealDecoder) array(tagPos, pos, n, depth int) (any, int, error) {
	if n > len(d.body)-pos {
		return nil, 0, d.errf(ErrSerealCorrupt, tagPos, "%d items run past the end", n)
	}
	if err := d.grow(tagPos, srlArraySize+n*srlValueSize); err != nil {
		return nil, 0, err
	}
	a := make([]any, n)
	for i := range a {
		var err error
		if a[i], pos, err = d.value(pos, depth+1); err != nil {
			return nil, 0, err
		}
	}
	return a, pos, nil
}

// object decodes the referent of a blessed reference at pos.
func (d *serealDecoder) object(tagPos int, class string, pos int, frozen bool, depth int) (any, int, error) {
	v, next, err := d.value(pos, depth+1)
	if err != nil {
		return nil, 0, err
	}
	if re, ok := v.(PerlRegexp); ok && class == "Regexp" && !frozen {
		return re, next, nil // qr//
	}
	if _, ok := v.([]any); frozen && !ok {
		return nil, 0, d.errf(ErrSerealCorrupt, tagPos, "FREEZE data of class %q is not an array", class)
	}
	return PerlObject{Class: class, Value: v, Frozen: frozen}, next, nil
}

// weakRef decodes the reference after a WEAKEN tag: a weakened reference to a value that encloses it (a parent
// link in a Perl tree) is nil, since Go values cannot hold the cycle.
func (d *serealDecoder) weakRef(pos, depth int) (any, int, error) {
	for pos < len(d.body) && d.body[pos]&^srlTrackFlag == srlPad {
		pos++
	}
	if pos < len(d.body) && d.body[pos]&^srlTrackFlag == srlRefP {
		target, next, err := d.offset(pos+1, pos)
		if err != nil {
			return nil, 0, err
		}
		v, err := d.reuse(pos, target, true)
		return v, next, err
	}
	return d.value(pos, depth+1)
}

// reuse returns the tracked value at target for the REFP or ALIAS at pos.
func (d *serealDecoder) reuse(pos, target int, weak bool) (any, error) {
	t := d.tracked[target]
	switch {
	case t == nil:
		return nil, d.errf(ErrSerealCorrupt, pos, "%s refers to offset %d, which holds no tracked value", srlTagName(d.body[pos]), target+d.base)
	case !t.done && weak:
		return nil, nil
	case !t.done:
		return nil, d.errf(ErrSerealUnsupported, pos, "cyclic structure: %s refers to the enclosing value at offset %d", srlTagName(d.body[pos]), target+d.base)
	}
	return t.v, d.grow(pos, t.size)
}

// x87ToFloat64 converts an x86 80-bit extended float (LONG_DOUBLE from a Perl built with uselongdouble on
// x86-64, stored in 16 bytes, little-endian) to the nearest float64.
func x87ToFloat64(b []byte) float64 {
	mant := binary.LittleEndian.Uint64(b[:8]) // with its explicit integer bit
	se := binary.LittleEndian.Uint16(b[8:10])
	neg, exp := se&0x8000 != 0, int(se&0x7fff)
	var f float64
	switch {
	case exp == 0x7fff && mant<<1 == 0:
		f = math.Inf(1)
	case exp == 0x7fff:
		return math.NaN()
	default:
		if exp == 0 {
			exp = 1 // denormal
		}
		f, _ = new(big.Float).SetMantExp(new(big.Float).SetUint64(mant), exp-16383-63).Float64()
	}
	if neg {
		f = -f
	}
	return f
}

// float128ToFloat64 converts an IEEE 754 binary128 (FLOAT_128 from a Perl built with quadmath, little-endian)
// to the nearest float64.
func float128ToFloat64(b []byte) float64 {
	lo := binary.LittleEndian.Uint64(b[:8])
	hi := binary.LittleEndian.Uint64(b[8:])
	neg, exp := hi>>63 != 0, int(hi>>48&0x7fff)
	hi &= 1<<48 - 1
	var f float64
	switch {
	case exp == 0x7fff && hi == 0 && lo == 0:
		f = math.Inf(1)
	case exp == 0x7fff:
		return math.NaN()
	default:
		m := new(big.Int).Lsh(new(big.Int).SetUint64(hi), 64)
		m.Or(m, new(big.Int).SetUint64(lo))
		if exp == 0 {
			exp = 1 // subnormal: no implicit bit
		} else {
			m.SetBit(m, 112, 1)
		}
		f, _ = new(big.Float).SetMantExp(new(big.Float).SetInt(m), exp-16383-112).Float64()
	}
	if neg {
		f = -f
	}
	return f
}

// encodeSereal encodes a JSON document as Sereal (protocol version 3, which every Perl decoder since 2013
// reads). Whole numbers become integers, as Perl would have them.
func encodeSereal(jsonDoc string) ([]byte, error) {
	var v any
	d := json.NewDecoder(strings.NewReader(jsonDoc))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		return nil, fmt.Errorf("redisq: sereal: field is not JSON: %w", err)
	}
	enc := sereal.NewEncoderV3()
	enc.PerlCompat = true // hashes and arrays as references (REFN HASH): Perl cannot hold a bare hash in a scalar
	b, err := enc.Marshal(integers(v))
	if err != nil {
		return nil, fmt.Errorf("redisq: sereal: %w", err)
	}
	return b, nil
}

func integers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f)
		}
		return f
	case []any:
		for i := range x {
			x[i] = integers(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = integers(x[k])
		}
	}
	return v
}
