package formdata

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/textproto"
	"path/filepath"
)

// A Part is one part of the body. Its bytes are valid until the next call
// to NextPart.
type Part struct {
	// Header is the part's header, keys canonicalized as net/http's are.
	Header textproto.MIMEHeader

	mr                *Reader
	qp                io.Reader // the decoder, for a quoted-printable part
	disposition       string
	dispositionParams map[string]string

	avail   int   // body bytes known to lie at mr.buf[mr.r:]
	end     bool  // the body ends after them
	err     error // the body fails after them
	started bool  // some of the body has been handed out
}

var emptyParams = map[string]string{}

// FormName returns the name parameter of a "form-data" Content-Disposition,
// or "", as mime/multipart's Part.FormName does.
func (p *Part) FormName() string {
	p.parseContentDisposition()
	if p.disposition != "form-data" {
		return ""
	}
	return p.dispositionParams["name"]
}

// FileName returns the Content-Disposition's filename parameter passed
// through filepath.Base, or "", as mime/multipart's Part.FileName does.
func (p *Part) FileName() string {
	p.parseContentDisposition()
	name := p.dispositionParams["filename"]
	if name == "" {
		return ""
	}
	return filepath.Base(name)
}

func (p *Part) parseContentDisposition() {
	if p.dispositionParams != nil {
		return
	}
	var err error
	p.disposition, p.dispositionParams, err = mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		p.dispositionParams = emptyParams
	}
}

// Read reads the part's body. It copies from the Reader's buffer; with a
// large p, each call returns as much as one read of the source brought.
// At the end of the body it returns io.EOF; a body cut short fails with
// an error wrapping io.ErrUnexpectedEOF.
func (p *Part) Read(b []byte) (int, error) {
	if p.qp != nil {
		return p.qp.Read(b)
	}
	return p.readRaw(b)
}

// rawReader feeds the quoted-printable decoder.
type rawReader struct{ p *Part }

func (r rawReader) Read(b []byte) (int, error) { return r.p.readRaw(b) }

func (p *Part) readRaw(b []byte) (int, error) {
	mr := p.mr
	if p.avail == 0 {
		if err := p.stopped(); err != nil {
			return 0, err
		}
		if len(b) == 0 {
			return 0, nil
		}
		if n, ok := p.readDirect(b); ok {
			return n, p.stoppedIfEmpty()
		}
		p.scan()
		if p.avail == 0 {
			return 0, p.stopped()
		}
	}
	n := copy(b, mr.buf[mr.r:mr.r+p.avail])
	p.consume(n)
	if p.avail == 0 {
		return n, p.stopped()
	}
	return n, nil
}

// directMin is the smallest read that readDirect serves.
const directMin = 32 << 10

// readDirect reads src straight into b, sparing a copy through the
// Reader's buffer: what the buffer holds (bytes not yet known to be body
// or delimiter) goes first, and whatever follows the body's end or could
// be a delimiter goes back into the buffer. It reports false when it
// cannot serve b, having changed nothing or put everything back.
func (p *Part) readDirect(b []byte) (int, bool) {
	mr := p.mr
	if len(b) < directMin || mr.srcErr != nil || mr.w-mr.r > maxLineLen {
		return 0, false
	}
	// All that b holds past the body must fit back into the buffer.
	b = b[:min(len(b), len(mr.buf))]
	k := copy(b, mr.buf[mr.r:mr.w])
	k += mr.read(b[k:])
	n, end := mr.scanBody(b[:k], !p.started, mr.srcErr != nil)
	mr.r, mr.w = 0, copy(mr.buf, b[n:k])
	p.end = end
	p.started = p.started || n > 0
	return n, n > 0 || end
}

// stoppedIfEmpty is stopped when no body bytes are available, else nil.
func (p *Part) stoppedIfEmpty() error {
	if p.avail > 0 {
		return nil
	}
	return p.stopped()
}

// stopped returns why no more bytes follow the available ones, or nil.
func (p *Part) stopped() error {
	switch {
	case p.end:
		return io.EOF
	case p.err != nil:
		return p.err
	case p.mr.buf == nil:
		return errClosed
	}
	return nil
}

func (p *Part) consume(n int) {
	p.mr.r += n
	p.avail -= n
	p.started = p.started || n > 0
}

// WriteTo writes the part's body to w straight from the Reader's buffer,
// each write but the last at least half the buffer, and returns nil at the
// end of the body.
func (p *Part) WriteTo(w io.Writer) (int64, error) {
	if p.qp != nil {
		// quotedprintable.Reader has no WriteTo: no recursion.
		return io.Copy(w, p.qp)
	}
	mr := p.mr
	var total int64
	for {
		// Fewer, larger writes: a write is often a syscall.
		for p.avail < len(mr.buf)/2 && p.stopped() == nil {
			p.scan()
		}
		if p.avail > 0 {
			n, err := w.Write(mr.buf[mr.r : mr.r+p.avail])
			if n < 0 || n > p.avail {
				n, err = 0, errors.New("formdata: invalid Write result")
			}
			p.consume(n)
			total += int64(n)
			if err == nil && p.avail > 0 {
				err = io.ErrShortWrite
			}
			if err != nil {
				return total, err
			}
		}
		if err := p.stopped(); err == io.EOF {
			return total, nil
		} else if err != nil {
			return total, err
		}
	}
}

// discard skips the rest of the body.
func (p *Part) discard() error {
	for {
		p.consume(p.avail)
		if err := p.stopped(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		p.scan()
	}
}

// scan extends p.avail over the unread window, or sets p.end or p.err,
// reading src when the window's bytes cannot be told apart from a
// delimiter yet. It returns once it has found anything.
func (p *Part) scan() {
	mr := p.mr
	for {
		n, end := mr.scanBody(mr.buf[mr.r+p.avail:mr.w], !p.started && p.avail == 0, mr.srcErr != nil)
		p.avail += n
		if end {
			p.end = true
			return
		}
		if n > 0 {
			return
		}
		if mr.srcErr != nil {
			p.err = mr.srcErr
			if p.err == io.EOF {
				p.err = errTruncated
			}
			return
		}
		mr.fill()
	}
}

// scanBody is mime/multipart's scanUntilBoundary over a whole window: it
// returns how many of b's bytes are body bytes and whether the body ends
// right after them. When it does not, the rest of b could still be a
// delimiter (eof: src has no more bytes), unless b is all body bytes.
// atStart allows a delimiter without a line break first: an empty body.
func (mr *Reader) scanBody(b []byte, atStart, eof bool) (n int, end bool) {
	dashBoundary, nlDashBoundary := mr.dashBoundary, mr.nlDashBoundary
	if atStart {
		if bytes.HasPrefix(b, dashBoundary) {
			switch matchAfterPrefix(b, dashBoundary, eof) {
			case 0:
				return 0, false
			case +1:
				return 0, true
			}
			n = len(dashBoundary) // "--boundaryX" is data
		} else if bytes.HasPrefix(dashBoundary, b) {
			return 0, false
		}
	}
	for {
		rest := b[n:]
		i := mr.finder.index(rest)
		if i < 0 {
			break
		}
		switch matchAfterPrefix(rest[i:], nlDashBoundary, eof) {
		case 0:
			return n + i, false
		case +1:
			return n + i, true
		}
		// Not a delimiter; mime/multipart would hand these bytes out and
		// scan again after them, which is what carrying on here amounts to.
		n += i + len(nlDashBoundary)
	}
	rest := b[n:]
	if bytes.HasPrefix(nlDashBoundary, rest) {
		return n, false
	}
	// A delimiter starting in the last len(nlDashBoundary)-1 bytes must
	// wait for more. mime/multipart looks for its first byte in all of b,
	// to the same effect (an earlier one would be a whole match), but that
	// scan costs as much as the search itself on data without it.
	tail := max(0, len(rest)-len(nlDashBoundary)+1)
	if i := bytes.LastIndexByte(rest[tail:], nlDashBoundary[0]); i >= 0 && bytes.HasPrefix(nlDashBoundary, rest[tail+i:]) {
		return n + tail + i, false
	}
	return len(b), false
}

// matchAfterPrefix is mime/multipart's: b starts with prefix, and it
// reports +1 if a delimiter starts there (prefix then "--", a space, a tab,
// CR, LF or the end of input), -1 if not, 0 if more input must decide.
func matchAfterPrefix(b, prefix []byte, eof bool) int {
	if len(b) == len(prefix) {
		if eof {
			return +1
		}
		return 0
	}
	switch c := b[len(prefix)]; c {
	case ' ', '\t', '\r', '\n':
		return +1
	case '-':
		if len(b) == len(prefix)+1 {
			if eof {
				return -1
			}
			return 0
		}
		if b[len(prefix)+1] == '-' {
			return +1
		}
	}
	return -1
}
