package formdata

import (
	"fmt"
	"mime"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DispositionFileName returns the file name a part's Content-Disposition
// header value gives, undecoded by filepath.Base, or "" for a part that is
// not a file. Unlike Part.FileName, which mirrors mime/multipart, it never
// drops a file name it cannot decode: mime.ParseMediaType decodes an RFC
// 8187 (RFC 2231) "filename*" only in UTF-8 and US-ASCII, and silently
// drops any other, a malformed one, or a continuation with a gap, which
// turns a file part into a form field.
//
// The rules:
//   - A part is a file when the value has a parameter "filename", or one
//     whose name begins with "filename*", whatever its value. Only when
//     every such value decodes empty is it not a file (a browser's file
//     input with no file chosen sends filename="").
//   - "filename*" (or its RFC 2231 continuation "filename*0", "filename*0*",
//     "filename*1", …) wins over "filename" (RFC 6266, section 4.3); when it
//     decodes empty, "filename" is used.
//   - Its charset may be UTF-8, US-ASCII (decoded as mime.ParseMediaType
//     does: the bytes as they are) or ISO-8859-1 (each byte the code point
//     of the same number).
//   - Any other charset, a value without its two quotes, a bad
//     percent-escape, a continuation with a gap or a bad number, or both
//     forms of "filename*" at once is an error wrapping ErrMalformed. So is
//     a value mime.ParseMediaType refuses.
func DispositionFileName(v string) (string, error) {
	if _, _, err := mime.ParseMediaType(v); err != nil {
		return "", fmt.Errorf("%w: bad Content-Disposition: %w", ErrMalformed, err)
	}
	var (
		plain, ext       string
		hasPlain, hasExt bool
		pieces           = map[int]string{} // continuations by number
		encoded          = map[int]bool{}   // those sent as filename*N*
		seen             = map[string]bool{}
	)
	// mime.ParseMediaType accepted v, so this walk, which follows its own,
	// sees the same parameters.
	for key, value := range mediaParams(v) {
		rest, ok := strings.CutPrefix(key, "filename")
		switch {
		case !ok || seen[key]:
			// mime.ParseMediaType allows a parameter twice only with the
			// same value.
			continue
		case rest == "":
			plain, hasPlain = value, true
			continue
		case rest == "*":
			ext, hasExt = value, true
			continue
		case rest[0] != '*':
			continue // "filenames", say: another parameter
		}
		num, enc := strings.CutSuffix(rest[1:], "*")
		n, err := strconv.Atoi(num)
		if err != nil || n < 0 || strconv.Itoa(n) != num {
			return "", fmt.Errorf("%w: Content-Disposition has a parameter %q that is no filename continuation", ErrMalformed, clip([]byte(key)))
		}
		if _, dup := pieces[n]; dup {
			return "", fmt.Errorf("%w: Content-Disposition has filename continuation %d twice", ErrMalformed, n)
		}
		pieces[n], encoded[n] = value, enc
		seen[key] = true
	}
	if hasExt && len(pieces) > 0 {
		return "", fmt.Errorf("%w: Content-Disposition has both filename* and its continuations", ErrMalformed)
	}
	if len(pieces) > 0 {
		var err error
		if ext, err = joinContinuation(pieces, encoded); err != nil {
			return "", err
		}
		hasExt = true
	} else if hasExt {
		charset, raw, err := splitExtValue(ext)
		if err != nil {
			return "", err
		}
		b, ok := percentUnescape(raw)
		if !ok {
			return "", fmt.Errorf("%w: filename* has a bad percent-escape", ErrMalformed)
		}
		ext = decodeCharset(charset, b)
	}
	if hasExt && ext != "" {
		return ext, nil
	}
	if hasPlain {
		return plain, nil
	}
	return "", nil
}

// joinContinuation joins RFC 2231 continuations numbered from 0 without a
// gap. An encoded piece is percent-decoded; the first piece, when encoded,
// carries the charset, which applies to all of them, and a later encoded
// piece needs one.
func joinContinuation(pieces map[int]string, encoded map[int]bool) (string, error) {
	charset := ""
	var b []byte
	for n := range len(pieces) {
		v, ok := pieces[n]
		if !ok {
			return "", fmt.Errorf("%w: filename continuations skip %d", ErrMalformed, n)
		}
		if !encoded[n] {
			b = append(b, v...)
			continue
		}
		if n == 0 {
			cs, raw, err := splitExtValue(v)
			if err != nil {
				return "", err
			}
			charset, v = cs, raw
		} else if charset == "" {
			return "", fmt.Errorf("%w: filename continuation %d is encoded but the first one names no charset", ErrMalformed, n)
		}
		d, ok := percentUnescape(v)
		if !ok {
			return "", fmt.Errorf("%w: filename continuation %d has a bad percent-escape", ErrMalformed, n)
		}
		b = append(b, d...)
	}
	return decodeCharset(charset, b), nil
}

// splitExtValue splits an RFC 8187 ext-value, charset'language'value, and
// checks its charset; the language is ignored, as mime.ParseMediaType
// ignores it.
func splitExtValue(v string) (charset, value string, err error) {
	charset, rest, ok := strings.Cut(v, "'")
	if !ok {
		return "", "", fmt.Errorf("%w: filename* is not charset'language'value", ErrMalformed)
	}
	if _, value, ok = strings.Cut(rest, "'"); !ok {
		return "", "", fmt.Errorf("%w: filename* is not charset'language'value", ErrMalformed)
	}
	switch charset = strings.ToLower(charset); charset {
	case "utf-8", "us-ascii", "iso-8859-1":
		return charset, value, nil
	case "":
		return "", "", fmt.Errorf("%w: filename* names no charset", ErrMalformed)
	}
	return "", "", fmt.Errorf("%w: filename* has charset %q; only UTF-8, US-ASCII and ISO-8859-1 are taken", ErrMalformed, clip([]byte(charset)))
}

// decodeCharset decodes b, a name in one of splitExtValue's charsets (""
// for a continuation without one), to UTF-8. Bytes that are not UTF-8 in
// the other charsets are left for the name rules to refuse.
func decodeCharset(charset string, b []byte) string {
	if charset != "iso-8859-1" {
		return string(b)
	}
	s := make([]byte, 0, 2*len(b))
	for _, c := range b {
		s = utf8.AppendRune(s, rune(c))
	}
	return string(s)
}

// percentUnescape decodes %XX escapes, as mime.ParseMediaType does: every
// '%' must begin one, and other bytes are taken as they are.
func percentUnescape(s string) ([]byte, bool) {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return nil, false
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return nil, false
		}
		b = append(b, hi<<4|lo)
		i += 2
	}
	return b, true
}

// mediaParams yields the parameters of a media type or disposition value
// that mime.ParseMediaType accepts, names lower-cased and quoted strings
// unquoted, in the order they come, without RFC 2231's decoding. It walks
// the value as mime.ParseMediaType does, so it sees the same parameters.
func mediaParams(v string) func(yield func(key, value string) bool) {
	return func(yield func(key, value string) bool) {
		_, v, _ := strings.Cut(v, ";")
		v = ";" + v
		for {
			v = strings.TrimLeftFunc(v, unicode.IsSpace)
			if !strings.HasPrefix(v, ";") {
				return
			}
			v = strings.TrimLeftFunc(v[1:], unicode.IsSpace)
			key, rest := consumeToken(v)
			if key == "" {
				return // a trailing ";"
			}
			rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
			rest, ok := strings.CutPrefix(rest, "=")
			if !ok {
				return
			}
			rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
			value, rest, ok := consumeValue(rest)
			if !ok || !yield(strings.ToLower(key), value) {
				return
			}
			v = rest
		}
	}
}

// consumeToken, consumeValue and isTSpecial follow mime's unexported
// functions of the same names.
func consumeToken(v string) (token, rest string) {
	for i := range len(v) {
		if c := v[i]; c <= 0x20 || c >= 0x7f || isTSpecial(c) {
			return v[:i], v[i:]
		}
	}
	return v, ""
}

func consumeValue(v string) (value, rest string, ok bool) {
	if v == "" {
		return "", "", false
	}
	if v[0] != '"' {
		value, rest = consumeToken(v)
		return value, rest, value != ""
	}
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"':
			return b.String(), v[i+1:], true
		case c == '\\' && i+1 < len(v) && isTSpecial(v[i+1]):
			// Only a backslash before a tspecial escapes it: MSIE sends
			// paths such as "C:\dev\x.txt" unescaped.
			b.WriteByte(v[i+1])
			i++
		case c == '\r' || c == '\n':
			return "", "", false
		default:
			b.WriteByte(c)
		}
	}
	return "", "", false
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

func isTSpecial(c byte) bool { return strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 }
