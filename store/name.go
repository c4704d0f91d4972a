package store

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

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
	if err := checkRunes(name); err != nil {
		return err
	}
	for i, seg := range strings.Split(name, "/") {
		switch {
		case seg == "":
			return invalid(name, "has an empty path segment")
		case seg[0] == '.':
			return invalid(name, fmt.Sprintf("has a segment %q that begins with a dot", seg))
		case len(seg) > MaxSegmentLen:
			return invalid(name, fmt.Sprintf("has a segment of %d bytes, over the %d-byte limit", len(seg), MaxSegmentLen))
		case strings.HasSuffix(seg, " ") || strings.HasSuffix(seg, "."):
			return invalid(name, fmt.Sprintf("has a segment %q that ends with a space or dot", seg))
		case i == 0 && isDrive(seg):
			return invalid(name, "begins with a drive letter")
		case isReservedDevice(seg):
			return invalid(name, fmt.Sprintf("has a segment %q that is a reserved device name", seg))
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
func checkRunes(name string) error {
	for _, r := range name {
		switch {
		case r == '\\':
			return invalid(name, "contains a backslash")
		case r == 0:
			return invalid(name, "contains NUL")
		case unicode.IsControl(r):
			return invalid(name, "contains a control character")
		case r == '\u2028' || r == '\u2029':
			// Line and paragraph separators break lines as a newline does.
			return invalid(name, fmt.Sprintf("contains the line break %U", r))
		case unicode.Is(unicode.Cf, r):
			// Bidi overrides, zero-width joiners and the like disguise
			// what a name really is.
			return invalid(name, fmt.Sprintf("contains the invisible format character %U", r))
		case unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r):
			// Invisible too, though not format characters: Hangul fillers,
			// the combining grapheme joiner.
			return invalid(name, fmt.Sprintf("contains the invisible character %U", r))
		case isLookalike(r):
			return invalid(name, fmt.Sprintf("contains %U, which looks like a path separator or dot", r))
		}
	}
	return nil
}

func invalid(name, why string) error {
	if name == "" {
		return fmt.Errorf("%w: name %s", ErrInvalidName, why)
	}
	return fmt.Errorf("%w: %q %s", ErrInvalidName, name, why)
}

func isLookalike(r rune) bool {
	switch r {
	case '\u2215', '\u2044', '\uFF0F', '\u29F8', '\u2571', '\u27CB', '\u2F03', // slashes
		'\u0337', '\u0338', // combining solidus overlays
		'\uFF3C', '\uFE68', '\u2216', '\u29F5', '\u29F9', '\u2572', '\u27CD', '\u20E5', // backslashes
		'\u2024', '\uFF0E', '\uFE52', '\u3002', '\uFF61', // full stops (IDNA maps the last four to ".")
		'\u2025', '\u2026': // two-dot leader and ellipsis: ".." and "..."
		return true
	}
	return false
}

func isDrive(seg string) bool {
	return len(seg) >= 2 && seg[1] == ':' &&
		('a' <= seg[0] && seg[0] <= 'z' || 'A' <= seg[0] && seg[0] <= 'Z')
}

// isReservedDevice reports Windows device names, with or without extension.
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
		case "1", "2", "3", "4", "5", "6", "7", "8", "9", "\u00b9", "\u00b2", "\u00b3":
			return true
		}
	}
	return false
}
