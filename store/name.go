package store

import (
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

//go:generate go run gen_lookalikes.go

// Limits on stored names, in bytes.
const (
	MaxNameLen    = 1024
	MaxSegmentLen = 255
)

// ValidateName reports whether name may be stored. A name is a relative,
// slash-separated path of UTF-8 segments. Every refusal wraps ErrInvalidName
// and says which rule was broken. The rules are deliberately stricter than
// any one filesystem: a name accepted here can be stored locally, in S3, and
// downloaded onto Windows or macOS without surprises.
//
// A name must be in Unicode Normalization Form C. It is refused, not
// normalised, so that the name a client sends is byte for byte the name
// stored, listed and served back; macOS and Windows keep and compare names
// in that form, so an NFD name would otherwise meet its NFC twin there.
func ValidateName(name string) error {
	switch {
	case name == "":
		return invalid(name, "is empty")
	case len(name) > MaxNameLen:
		return invalid("", fmt.Sprintf("is %d bytes, over the %d-byte limit", len(name), MaxNameLen))
	case !utf8.ValidString(name):
		return invalid(name, "is not valid UTF-8")
	case name[0] == '/':
		return invalid(name, "is absolute")
	}
	if !plainASCII(name) {
		if err := checkRunes(name); err != nil {
			return err
		}
		if !norm.NFC.IsNormalString(name) {
			return invalid(name, "is not in Unicode Normalization Form C (NFC)")
		}
	}
	for seg := range strings.SplitSeq(name, "/") {
		switch {
		case seg == "":
			return invalid(name, "has an empty path segment")
		case seg[0] == '.':
			return invalid(name, fmt.Sprintf("has a segment %q that begins with a dot", seg))
		case len(seg) > MaxSegmentLen:
			return invalid(name, fmt.Sprintf("has a segment of %d bytes, over the %d-byte limit", len(seg), MaxSegmentLen))
		case strings.HasSuffix(seg, " ") || strings.HasSuffix(seg, "."):
			return invalid(name, fmt.Sprintf("has a segment %q that ends with a space or dot", seg))
		case isReservedDevice(seg):
			return invalid(name, fmt.Sprintf("has a segment %q that is a reserved device name", seg))
		case onlyLookalikes(seg):
			return invalid(name, fmt.Sprintf("has a segment %q made of look-alikes of dots or slashes", seg))
		}
	}
	return nil
}

// ValidatePrefix reports whether prefix may select a listing: the empty
// prefix (everything), a folder such as "2026/" (everything below it), or
// the start of a name such as "2026/rep". A prefix is a plain string
// prefix of names, so "2026" also selects "2026-notes.txt". The folders
// before its last slash must pass ValidateName; the text after it, the
// start of a segment, may be anything a segment can begin with. A prefix
// that passes may still select nothing.
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	switch {
	case len(prefix) > MaxNameLen:
		return fmt.Errorf("%w: prefix is %d bytes, over the %d-byte limit", ErrInvalidName, len(prefix), MaxNameLen)
	case !utf8.ValidString(prefix):
		return invalid(prefix, "is not valid UTF-8")
	}
	if err := checkRunes(prefix); err != nil {
		return err
	}
	if !norm.NFC.IsNormalString(prefix) {
		return invalid(prefix, "is not in Unicode Normalization Form C (NFC)")
	}
	dir, start := "", prefix
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		dir, start = prefix[:i], prefix[i+1:]
		if err := ValidateName(dir); err != nil {
			return err
		}
	}
	switch {
	case strings.HasPrefix(start, "."):
		return invalid(prefix, "has a segment that begins with a dot")
	case len(start) > MaxSegmentLen:
		return invalid(prefix, fmt.Sprintf("has a segment of %d bytes, over the %d-byte limit", len(start), MaxSegmentLen))
	}
	return nil
}

// checkRunes refuses the characters no name may contain anywhere.
// plainASCII reports a name of printable ASCII characters that checkRunes
// accepts: such a name is NFC, and needs no look-up in Unicode's tables for
// each of its characters, which cost most of the check. Every name of a
// small upload is checked more than once on its way.
func plainASCII(name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < ' ' || c > '~' || c == '\\' || strings.IndexByte(windowsForbidden, c) >= 0 {
			return false
		}
	}
	return true
}

func checkRunes(name string) error {
	for _, r := range name {
		switch {
		case r == '\\':
			return invalid(name, "contains a backslash")
		case r == 0:
			return invalid(name, "contains NUL")
		case unicode.IsControl(r):
			return invalid(name, "contains a control character")
		case strings.ContainsRune(windowsForbidden, r):
			return invalid(name, fmt.Sprintf("contains %q, which Windows does not allow in a name", r))
		case r == '\u2028' || r == '\u2029':
			// Line and paragraph separators break lines as a newline does.
			return invalid(name, fmt.Sprintf("contains the line break %U", r))
		case unicode.IsSpace(r) && r != ' ', unicode.Is(unicode.Zs, r) && r != ' ':
			// A no-break or wide space passes for a plain one: two
			// names would look the same.
			return invalid(name, fmt.Sprintf("contains the space %U, which passes for U+0020", r))
		case isInvisible(r):
			return invalid(name, fmt.Sprintf("contains the invisible character %U", r))
		case isLookalike(r) && !isLetterOrDigit(r):
			return invalid(name, fmt.Sprintf("contains %U, which looks like a path separator or dot", r))
		}
	}
	return nil
}

// windowsForbidden are the printable characters Windows refuses in a name.
// The colon also opens an NTFS stream ("a.txt:evil") or names a drive.
const windowsForbidden = `<>:"|?*`

// isInvisible reports the code points that draw nothing, or change how
// their neighbours are drawn, so that two different names look the same:
// format characters (Cf: bidi overrides, zero-width joiners and spaces, the
// byte-order mark), the rest of Unicode's Default_Ignorable_Code_Point
// (variation selectors, Mongolian free variation selectors, Hangul
// fillers, the combining grapheme joiner) and the braille pattern blank.
// Refusing the variation selectors and the zero-width joiner refuses emoji
// written with them ("❤️" is U+2764 U+FE0F); the same emoji without them
// ("❤") is accepted.
func isInvisible(r rune) bool {
	return unicode.Is(unicode.Cf, r) ||
		unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r) ||
		unicode.Is(unicode.Variation_Selector, r) ||
		r == '\u2800'
}

// isLookalike reports the code points that pass for ".", "/" or "\"
// (lookalikes_table.go).
func isLookalike(r rune) bool {
	_, ok := slices.BinarySearch(lookalikes, r)
	return ok
}

// isLetterOrDigit reports the look-alikes that are ordinary letters and
// digits of a script in use: the katakana ノ, the ideographs 丶 and 丿,
// the Arabic-Indic zeros. They are refused only where they could pass
// for a path on their own (onlyLookalikes), not inside words and numbers.
func isLetterOrDigit(r rune) bool {
	return unicode.In(r, unicode.Lu, unicode.Ll, unicode.Lt, unicode.Lo, unicode.Nd)
}

// onlyLookalikes reports a segment that could be read as dots or slashes:
// "٠٠" passes for "..".
func onlyLookalikes(seg string) bool {
	for _, r := range seg {
		if !isLookalike(r) {
			return false
		}
	}
	return true
}

func invalid(name, why string) error {
	if name == "" {
		return fmt.Errorf("%w: name %s", ErrInvalidName, why)
	}
	return fmt.Errorf("%w: %q %s", ErrInvalidName, name, why)
}

// isReservedDevice reports Windows device names, with or without extension,
// in any case. COM0 and LPT0 are included: Windows refuses them too.
// As Windows (and Go's filepath.IsLocal) does, it ignores whatever follows a
// dot or a colon ("NUL:x" is NUL), and takes superscript ¹, ² and ³ for
// digits ("COM¹" is a port).
func isReservedDevice(seg string) bool {
	base := seg
	if i := strings.IndexAny(seg, ".:"); i >= 0 {
		base = seg[:i]
	}
	base = strings.ToUpper(strings.TrimRight(base, " "))
	switch base {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if strings.HasPrefix(base, "COM") || strings.HasPrefix(base, "LPT") {
		switch base[3:] {
		case "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "\u00b9", "\u00b2", "\u00b3":
			return true
		}
	}
	return false
}
