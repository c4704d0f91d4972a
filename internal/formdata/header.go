package formdata

import (
	"bytes"
	"fmt"
	"io"
	"net/textproto"
)

// readHeader reads a part's header as net/textproto's readMIMEHeader does
// for mime/multipart, with the same accounting against the limits, but
// straight from buf: textproto wants a bufio.Reader, which would read past
// the header into bytes this Reader needs back.
func (mr *Reader) readHeader() (textproto.MIMEHeader, error) {
	maxMemory := mr.lim.MaxHeaderBytes - 400
	maxHeaders := mr.lim.MaxHeaders
	defer func() {
		// A huge header line must not pin its memory for the whole body.
		if cap(mr.long) > 64<<10 {
			mr.long = nil
		}
		if cap(mr.hdr) > 64<<10 {
			mr.hdr = nil
		}
	}()
	m := make(textproto.MIMEHeader)
	if c, ok := mr.peekByte(); ok && (c == ' ' || c == '\t') {
		return nil, fmt.Errorf("%w: a part's header begins with a continuation line", ErrMalformed)
	}
	for {
		kv, err := mr.readContinuedLine(maxMemory)
		if err != nil {
			return nil, err
		}
		if len(kv) == 0 {
			return m, nil
		}
		k, v, _ := bytes.Cut(kv, []byte(":")) // readContinuedLine saw the colon
		key, ok := canonicalKey(k)
		if !ok {
			return nil, fmt.Errorf("%w: malformed header line %q", ErrMalformed, clip(kv))
		}
		for _, c := range v {
			if !validHeaderValueByte(c) {
				return nil, fmt.Errorf("%w: malformed header line %q", ErrMalformed, clip(kv))
			}
		}
		maxHeaders--
		if maxHeaders < 0 {
			return nil, fmt.Errorf("%w: more than %d fields", ErrHeaderTooLarge, mr.lim.MaxHeaders)
		}
		value := string(bytes.TrimLeft(v, " \t"))
		vv := m[key]
		if vv == nil {
			maxMemory -= int64(len(key)) + 200
		}
		maxMemory -= int64(len(value))
		if maxMemory < 0 {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrHeaderTooLarge, mr.lim.MaxHeaderBytes)
		}
		m[key] = append(vv, value)
	}
}

// readContinuedLine returns a header line joined with its continuation
// lines as textproto's readContinuedLineSlice does, or nil for the blank
// line that ends the header. The result is valid until the next call.
func (mr *Reader) readContinuedLine(lim int64) ([]byte, error) {
	line, err := mr.readHeaderLine(lim)
	if err != nil || len(line) == 0 {
		return nil, err
	}
	if bytes.IndexByte(line, ':') < 0 {
		return nil, fmt.Errorf("%w: header line without a colon: %q", ErrMalformed, clip(line))
	}
	mr.hdr = append(mr.hdr[:0], trim(line)...)
	lim -= int64(len(mr.hdr))
	for mr.skipSpace() > 0 {
		mr.hdr = append(mr.hdr, ' ')
		if int64(len(mr.hdr)) >= lim {
			return nil, fmt.Errorf("%w: a header line is over the limit", ErrHeaderTooLarge)
		}
		line, err := mr.readHeaderLine(lim - int64(len(mr.hdr)))
		if err == errHeaderLineTooLong {
			return nil, err
		}
		if err != nil {
			break // the next readHeaderLine reports it
		}
		mr.hdr = append(mr.hdr, trim(line)...)
	}
	return mr.hdr, nil
}

var errHeaderLineTooLong = fmt.Errorf("%w: a header line is over the limit", ErrHeaderTooLarge)

// readHeaderLine returns the next line without its "\n" and a "\r" before
// it, as bufio.Reader.ReadLine does (a last line without "\n" keeps a
// trailing "\r"). A line longer than lim fails. The result is valid until
// the next read.
func (mr *Reader) readHeaderLine(lim int64) ([]byte, error) {
	lim = max(lim, 0)
	mr.long = mr.long[:0]
	scanned := 0
	for {
		win := mr.buf[mr.r:mr.w]
		if i := bytes.IndexByte(win[scanned:], '\n'); i >= 0 {
			end := scanned + i
			mr.r += end + 1
			line := win[:end]
			if len(mr.long) > 0 {
				mr.long = append(mr.long, line...)
				line = mr.long
			}
			line = bytes.TrimSuffix(line, []byte("\r"))
			if int64(len(line)) > lim {
				return nil, errHeaderLineTooLong
			}
			return line, nil
		}
		scanned = len(win)
		// One byte over: a "\r" that a "\n" would still take off.
		if int64(len(mr.long)+len(win))-1 > lim {
			return nil, errHeaderLineTooLong
		}
		if mr.srcErr != nil {
			mr.r = mr.w
			line := append(mr.long, win...)
			switch {
			case len(line) == 0 && mr.srcErr == io.EOF:
				return nil, errTruncated
			case len(line) == 0:
				return nil, mr.srcErr
			case int64(len(line)) > lim:
				return nil, errHeaderLineTooLong
			}
			return line, nil
		}
		if mr.r == 0 && mr.w == len(mr.buf) {
			mr.long = append(mr.long, win...)
			mr.r, scanned = mr.w, 0
		}
		mr.fill()
	}
}

// skipSpace skips spaces and tabs and reports how many.
func (mr *Reader) skipSpace() int {
	n := 0
	for {
		for mr.r < mr.w {
			if c := mr.buf[mr.r]; c != ' ' && c != '\t' {
				return n
			}
			mr.r++
			n++
		}
		if mr.srcErr != nil {
			return n
		}
		mr.fill()
	}
}

func (mr *Reader) peekByte() (byte, bool) {
	for mr.r == mr.w && mr.srcErr == nil {
		mr.fill()
	}
	if mr.r == mr.w {
		return 0, false
	}
	return mr.buf[mr.r], true
}

func trim(s []byte) []byte { return bytes.Trim(s, " \t") }

// canonicalKey is textproto's canonicalMIMEHeaderKey: a key of token bytes
// is canonicalized (in place), one that also has spaces is taken as it is,
// and anything else is invalid.
func canonicalKey(a []byte) (string, bool) {
	if len(a) == 0 {
		return "", false
	}
	spaces := false
	for _, c := range a {
		if validHeaderFieldByte(c) {
			continue
		}
		if c != ' ' {
			return "", false
		}
		spaces = true
	}
	if spaces {
		return string(a), true
	}
	upper := true
	for i, c := range a {
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		a[i] = c
		upper = c == '-'
	}
	return string(a), true
}

// validHeaderFieldByte reports whether c is an RFC 9110 token byte.
func validHeaderFieldByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// validHeaderValueByte reports whether c may appear in a field value: a
// visible byte, obs-text, a space or a tab.
func validHeaderValueByte(c byte) bool {
	return c == '\t' || c >= 0x20 && c != 0x7f
}
