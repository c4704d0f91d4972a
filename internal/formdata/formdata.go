// Package formdata reads multipart/form-data bodies as a stream. It accepts
// what mime/multipart's Reader.NextPart accepts and yields the same parts,
// headers and bytes (a differential fuzz test holds it to that), but it is
// built for large file parts: it reads its source into one 256 KiB buffer
// and looks for the delimiter over the whole buffered window, so a part's
// bytes come out in large slices instead of mime/multipart's copies through
// a 4 KiB buffer. Part implements io.WriterTo, so io.Copy(dst, part) writes
// straight from that buffer, and Part.Read with a large slice reads the
// source straight into it. The search itself (finder) is about twice as
// fast as bytes.Index on random data.
//
// Where it deliberately differs from mime/multipart:
//
//   - NextPart returns io.EOF only after the closing delimiter
//     "--boundary--". A body that ends anywhere before it is an error that
//     wraps io.ErrUnexpectedEOF; mime/multipart reports a body cut inside a
//     part's headers as a plain io.EOF.
//   - It enforces Limits.MaxParts itself (mime/multipart does only in
//     ReadForm).
//   - A boundary must be at most 4000 bytes and contain no CR or LF.
//     mime.ParseMediaType never yields CR or LF in a parameter, and
//     mime/multipart fails past 4090 bytes, where its 4 KiB buffer cannot
//     hold a delimiter; the scanner here relies on both.
//   - A header continuation line longer than what is left of
//     Limits.MaxHeaderBytes is ErrHeaderTooLarge; net/textproto drops the
//     error and parses the rest of that line as the next header.
//   - Its default Limits.MaxHeaderBytes is 16 KiB, not 10 MiB (see
//     DefaultMaxHeaderBytes); with MaxHeaderBytes set to 10 MiB it accepts
//     the same headers as mime/multipart.
//   - NextPart skips an unread part by its raw bytes. mime/multipart skips
//     it through the quoted-printable decoder, so a decoding error leaves
//     it parsing the middle of the part as delimiter lines.
//
// Like mime/multipart's NextPart, it decodes a part sent with
// "Content-Transfer-Encoding: quoted-printable" and removes that header;
// such a part is read through mime/quotedprintable, at its speed.
package formdata

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"strings"
	"sync"
)

// Defaults for Limits. The part limit is the one ReadForm has had since
// CVE-2023-24536, the field count mime/multipart's for NextPart.
//
// The header size is far below mime/multipart's 10 MiB, a ceiling made for
// forms: a part's header is held in memory while it is parsed, outside any
// budget for bodies, and a server reads one per upload in progress. A
// browser's part header is under 1 KiB; the largest a file part needs,
// a name of store.MaxNameLen bytes given both as filename and
// percent-encoded as filename*, with a Content-Type, stays under half of
// DefaultMaxHeaderBytes.
const (
	DefaultMaxParts       = 1000
	DefaultMaxHeaders     = 10000
	DefaultMaxHeaderBytes = 16 << 10
)

const (
	// bufferSize is the read buffer: big enough that socket reads and the
	// writes of a part's bytes are large, small enough to pool one per
	// upload in progress.
	bufferSize = 256 << 10
	// minBufferSize keeps room for a maxLineLen line and a maxBoundaryLen
	// delimiter (tests use it to make inputs span many refills).
	minBufferSize = 2 * maxLineLen
	// maxLineLen is the size of mime/multipart's bufio.Reader: a preamble
	// or delimiter line that does not end within it fails there with
	// "buffer full", and here too, so the two accept the same bodies.
	maxLineLen = 4096
	// maxBoundaryLen is explained in the package comment.
	maxBoundaryLen = 4000
)

// Limits bounds what a Reader accepts. A field that is zero or negative
// takes its default.
type Limits struct {
	// MaxParts is the most parts a body may have; NextPart fails with
	// ErrTooManyParts at the delimiter of the next one.
	MaxParts int
	// MaxHeaders is the most header fields one part may have.
	MaxHeaders int
	// MaxHeaderBytes bounds one part's header as net/textproto accounts
	// it for mime/multipart: 400 bytes for the header, and for each field
	// the length of its value, plus 200 and the key's length for each
	// distinct key. It also bounds any one header line.
	MaxHeaderBytes int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxParts <= 0 {
		l.MaxParts = DefaultMaxParts
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultMaxHeaders
	}
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return l
}

var (
	// ErrMalformed is wrapped by every error about the body's syntax,
	// including a body that ends before its closing delimiter (which also
	// wraps io.ErrUnexpectedEOF).
	ErrMalformed = errors.New("formdata: malformed multipart body")
	// ErrTooManyParts means the body has more than Limits.MaxParts parts.
	ErrTooManyParts = errors.New("formdata: too many parts")
	// ErrHeaderTooLarge means a part's header exceeds Limits.MaxHeaders or
	// Limits.MaxHeaderBytes.
	ErrHeaderTooLarge = errors.New("formdata: part header too large")

	errTruncated   = fmt.Errorf("%w: the body ends before its closing delimiter: %w", ErrMalformed, io.ErrUnexpectedEOF)
	errLineTooLong = fmt.Errorf("%w: a line before a part's header is longer than %d bytes", ErrMalformed, maxLineLen)
	errClosed      = errors.New("formdata: reader closed")
	errBadRead     = errors.New("formdata: source returned an invalid count from Read")
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufferSize); return &b }}

// A Reader iterates over the parts of one multipart body. It is not safe
// for concurrent use.
type Reader struct {
	src    io.Reader
	bufp   *[]byte // pooled; nil for a test's odd-sized buffer
	buf    []byte
	r, w   int   // the unread window is buf[r:w]
	srcErr error // src's first error; src is not read after it

	// The names are mime/multipart's, as is the switch of nl (and with it
	// nlDashBoundary) to a bare "\n" by a first delimiter line ending so.
	nl               []byte // "\r\n" or "\n"
	nlDashBoundary   []byte // nl + "--boundary"
	finder           finder // of nlDashBoundary
	dashBoundary     []byte // "--boundary"
	dashBoundaryDash []byte // "--boundary--"

	lim       Limits
	partsRead int
	cur       *Part
	err       error  // once set, what NextPart returns
	hdr       []byte // the header line being assembled
	long      []byte // a header line longer than buf
}

// NewReader returns a Reader of the body src with the given boundary (the
// Content-Type's "boundary" parameter). An unusable boundary is reported by
// the first NextPart. The Reader holds a pooled buffer until NextPart
// returns an error (io.EOF included) or Close is called.
func NewReader(src io.Reader, boundary string, lim Limits) *Reader {
	return newReader(src, boundary, lim, bufferSize, nil)
}

// MinBufferSize is the smallest buffer NewReaderBuffer takes: room for the
// longest line and delimiter the Reader accepts.
const MinBufferSize = minBufferSize

// NewReaderBuffer is NewReader reading through buf instead of a pooled
// buffer, for a caller that accounts for its memory. buf must hold at least
// MinBufferSize bytes. The Reader uses it until NextPart returns an error
// (io.EOF included) or Close is called; the caller must not touch it before.
func NewReaderBuffer(src io.Reader, boundary string, lim Limits, buf []byte) *Reader {
	if len(buf) < MinBufferSize {
		panic("formdata: NewReaderBuffer with a buffer under MinBufferSize")
	}
	return newReader(src, boundary, lim, len(buf), buf)
}

// newReader uses buf if it is not nil, else a pooled buffer when size is
// bufferSize, else one of its own.
func newReader(src io.Reader, boundary string, lim Limits, size int, buf []byte) *Reader {
	b := []byte("\r\n--" + boundary + "--")
	mr := &Reader{
		src:              src,
		nl:               b[:2],
		nlDashBoundary:   b[:len(b)-2],
		dashBoundary:     b[2 : len(b)-2],
		dashBoundaryDash: b[2:],
		lim:              lim.withDefaults(),
	}
	switch {
	case boundary == "":
		mr.err = fmt.Errorf("%w: the boundary is empty", ErrMalformed)
	case len(boundary) > maxBoundaryLen:
		mr.err = fmt.Errorf("%w: the boundary is longer than %d bytes", ErrMalformed, maxBoundaryLen)
	case strings.ContainsAny(boundary, "\r\n"):
		mr.err = fmt.Errorf("%w: the boundary contains a line break", ErrMalformed)
	}
	if mr.err != nil {
		return mr
	}
	mr.finder.reset(mr.nlDashBoundary)
	switch {
	case buf != nil:
		mr.buf = buf
	case size == bufferSize:
		mr.bufp = bufPool.Get().(*[]byte)
		mr.buf = *mr.bufp
	default:
		mr.buf = make([]byte, max(size, minBufferSize))
	}
	return mr
}

// Close releases the Reader's buffer. Parts not yet read to their end and
// later calls to NextPart fail. It always returns nil.
func (mr *Reader) Close() error {
	if mr.err == nil {
		mr.err = errClosed
	}
	mr.release()
	return nil
}

func (mr *Reader) release() {
	if p := mr.cur; p != nil && (p.avail > 0 || !p.end && p.err == nil) {
		// Its bytes go with the buffer.
		p.avail, p.end, p.err = 0, false, errClosed
	}
	if mr.bufp != nil {
		bufPool.Put(mr.bufp)
	}
	mr.bufp, mr.buf, mr.r, mr.w = nil, nil, 0, 0
}

// NextPart returns the next part. It skips what is left of the previous
// part, so a plain form field can be passed over unread. It returns io.EOF
// only after the closing delimiter; errors from src are returned as they
// are, src's io.EOF before the closing delimiter as an error wrapping
// io.ErrUnexpectedEOF and ErrMalformed. The first error is returned from
// every later call.
func (mr *Reader) NextPart() (*Part, error) {
	if mr.err != nil {
		return nil, mr.err
	}
	if p := mr.cur; p != nil {
		mr.cur = nil
		if err := p.discard(); err != nil {
			return nil, mr.fail(err)
		}
	}
	p, err := mr.nextPart()
	if err != nil {
		return nil, mr.fail(err)
	}
	mr.cur = p
	return p, nil
}

func (mr *Reader) fail(err error) error {
	mr.err = err
	mr.release()
	return err
}

// nextPart follows mime/multipart's Reader.nextPart line for line, so that
// the two agree on every preamble and delimiter line.
func (mr *Reader) nextPart() (*Part, error) {
	expectNewPart := false
	for {
		line, err := mr.readBoundaryLine()
		if err == io.EOF && mr.isFinalBoundary(line) {
			return nil, io.EOF
		}
		if err == io.EOF {
			return nil, errTruncated
		}
		if err != nil {
			return nil, err
		}
		if mr.isBoundaryDelimiterLine(line) {
			mr.partsRead++
			if mr.partsRead > mr.lim.MaxParts {
				return nil, fmt.Errorf("%w: more than %d", ErrTooManyParts, mr.lim.MaxParts)
			}
			return mr.newPart()
		}
		if mr.isFinalBoundary(line) {
			return nil, io.EOF
		}
		if expectNewPart {
			return nil, fmt.Errorf("%w: expected a delimiter line, got %q", ErrMalformed, clip(line))
		}
		if mr.partsRead == 0 {
			continue // the preamble
		}
		// The line break before a delimiter belongs to the delimiter.
		if bytes.Equal(line, mr.nl) {
			expectNewPart = true
			continue
		}
		// Unreachable: a part ends just before a line break.
		return nil, fmt.Errorf("%w: unexpected line %q", ErrMalformed, clip(line))
	}
}

func clip(b []byte) []byte { return b[:min(len(b), 80)] }

// isFinalBoundary matches `^--boundary--[ \t]*(\r\n)?$`, nl standing for
// "\r\n", as mime/multipart does.
func (mr *Reader) isFinalBoundary(line []byte) bool {
	rest, ok := bytes.CutPrefix(line, mr.dashBoundaryDash)
	if !ok {
		return false
	}
	rest = skipLWSP(rest)
	return len(rest) == 0 || bytes.Equal(rest, mr.nl)
}

// isBoundaryDelimiterLine matches "--boundary", transport padding and nl.
// Like mime/multipart, a first delimiter line that ends in a bare "\n"
// makes "\n" the line break for the rest of the body.
func (mr *Reader) isBoundaryDelimiterLine(line []byte) bool {
	rest, ok := bytes.CutPrefix(line, mr.dashBoundary)
	if !ok {
		return false
	}
	rest = skipLWSP(rest)
	if mr.partsRead == 0 && len(rest) == 1 && rest[0] == '\n' {
		mr.nl = mr.nl[1:]
		mr.nlDashBoundary = mr.nlDashBoundary[1:]
		mr.finder.reset(mr.nlDashBoundary)
	}
	return bytes.Equal(rest, mr.nl)
}

func skipLWSP(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// readBoundaryLine returns the next line, '\n' included, as
// bufio.Reader.ReadSlice('\n') does on mime/multipart's 4 KiB buffer: a
// line without '\n' in its first maxLineLen bytes fails, and a last line
// without one comes with src's error. The line is valid until the next
// read.
func (mr *Reader) readBoundaryLine() ([]byte, error) {
	scanned := 0
	for {
		win := mr.buf[mr.r:mr.w]
		end := min(len(win), maxLineLen)
		if i := bytes.IndexByte(win[scanned:end], '\n'); i >= 0 {
			line := win[:scanned+i+1]
			mr.r += len(line)
			return line, nil
		}
		scanned = end
		if len(win) >= maxLineLen {
			return nil, errLineTooLong
		}
		if mr.srcErr != nil {
			mr.r = mr.w
			return win, mr.srcErr
		}
		mr.fill()
	}
}

// fill reads src once into the free end of buf, first moving the unread
// window to the front when the free end is short: rarely enough that a
// source returning a byte at a time costs a couple of moved bytes per
// byte, not a window's worth. The callers never need more than a few KiB
// unread, so there is always room.
func (mr *Reader) fill() {
	if mr.srcErr != nil {
		return
	}
	if mr.r == mr.w {
		mr.r, mr.w = 0, 0
	} else if mr.r > 0 && len(mr.buf)-mr.w < len(mr.buf)/4 {
		mr.w = copy(mr.buf, mr.buf[mr.r:mr.w])
		mr.r = 0
	}
	if mr.w == len(mr.buf) {
		panic("formdata: fill with a full buffer")
	}
	mr.w += mr.read(mr.buf[mr.w:])
}

// read reads src once into b, recording its error.
func (mr *Reader) read(b []byte) int {
	// As bufio does, give up on a source that keeps returning nothing.
	for range 100 {
		n, err := mr.src.Read(b)
		if n < 0 || n > len(b) {
			mr.srcErr = errBadRead
			return 0
		}
		if err != nil {
			mr.srcErr = err
		}
		if n > 0 || err != nil {
			return n
		}
	}
	mr.srcErr = io.ErrNoProgress
	return 0
}

func (mr *Reader) newPart() (*Part, error) {
	h, err := mr.readHeader()
	if err != nil {
		return nil, err
	}
	p := &Part{Header: h, mr: mr}
	const cte = "Content-Transfer-Encoding"
	if strings.EqualFold(h.Get(cte), "quoted-printable") {
		h.Del(cte)
		p.qp = quotedprintable.NewReader(rawReader{p})
	}
	return p, nil
}
