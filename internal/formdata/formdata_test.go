package formdata

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/textproto"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type wantPart struct {
	header map[string][]string // nil: none
	data   string
}

type testCase struct {
	name     string
	boundary string
	body     string
	lim      Limits // zero: defaults, and compared with mime/multipart
	parts    []wantPart
	err      error // the first error, from NextPart or a part's read; nil: io.EOF after parts
}

var (
	cd     = map[string][]string{"Content-Disposition": {`form-data; name="f"; filename="a.txt"`}}
	cdHead = "Content-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n"
	big    = strings.Repeat("0123456789abcdef", 20000) // 320,000 bytes: over the buffer
	// Binary data with near misses of the browser boundary below.
	near = strings.Repeat("\x00\xff\r\n------WebKitFormBoundary7MA4YWxkTrZu0g\r\n-----WebKitFormBoundary7MA4YWxkTrZu0gW"+
		"\r\n-WebKitFormBoundary\r\n\r\n\r\n--\rdata", 40)
)

var cases = []testCase{
	{name: "one file", boundary: "B",
		body:  "--B\r\n" + cdHead + "\r\nhello\r\n--B--\r\n",
		parts: []wantPart{{cd, "hello"}}},
	{name: "field and file", boundary: "xyz",
		body: "--xyz\r\nContent-Disposition: form-data; name=\"t\"\r\n\r\ntext\r\n--xyz\r\n" + cdHead +
			"Content-Type: application/octet-stream\r\n\r\n\x00\xff\r\n\r\n--xyz--\r\n",
		parts: []wantPart{
			{map[string][]string{"Content-Disposition": {`form-data; name="t"`}}, "text"},
			{map[string][]string{"Content-Disposition": cd["Content-Disposition"], "Content-Type": {"application/octet-stream"}}, "\x00\xff\r\n"},
		}},
	{name: "filename* in ISO-8859-1 and malformed", boundary: "B",
		body: "--B\r\nContent-Disposition: form-data; name=\"f\"; filename*=ISO-8859-1''r%E9sum%E9.pdf\r\n\r\nx\r\n" +
			"--B\r\nContent-Disposition: form-data; name=\"g\"; filename=\"a.txt\"; filename*=UTF-8'bad\r\n\r\ny\r\n--B--\r\n",
		parts: []wantPart{
			{map[string][]string{"Content-Disposition": {`form-data; name="f"; filename*=ISO-8859-1''r%E9sum%E9.pdf`}}, "x"},
			{map[string][]string{"Content-Disposition": {`form-data; name="g"; filename="a.txt"; filename*=UTF-8'bad`}}, "y"},
		}},
	{name: "empty part", boundary: "B",
		body:  "--B\r\nA: b\r\n\r\n\r\n--B--",
		parts: []wantPart{{map[string][]string{"A": {"b"}}, ""}}},
	{name: "empty part, delimiter right after the header", boundary: "B",
		body:  "--B\r\n\r\n--B\r\n\r\nx\r\n--B--",
		parts: []wantPart{{nil, ""}, {nil, "x"}}},
	{name: "data starting like a delimiter", boundary: "B",
		body:  "--B\r\n\r\n--BX\r\n--B--",
		parts: []wantPart{{nil, "--BX"}}},
	{name: "preamble and epilogue", boundary: "B",
		body:  "preamble\r\n--Bx\r\n--B--\n\r\n--B\r\n\r\nx\r\n--B--\r\nepilogue\r\n--B\r\n",
		parts: []wantPart{{nil, "x"}}},
	{name: "transport padding", boundary: "B",
		body:  "--B \t\r\n\r\nx\r\n--B\t \r\n\r\ny\r\n--B-- \t\r\n",
		parts: []wantPart{{nil, "x"}, {nil, "y"}}},
	{name: "padding after the final delimiter at the end", boundary: "B",
		body:  "--B\r\n\r\nx\r\n--B--  ",
		parts: []wantPart{{nil, "x"}}},
	{name: "LF only", boundary: "B",
		body:  "--B\n\nx\n--B\nA: b\n\ny\r\n--B--\n",
		parts: []wantPart{{nil, "x"}, {map[string][]string{"A": {"b"}}, "y\r"}}},
	{name: "CRLF after an LF first delimiter", boundary: "B",
		body:  "--B\n\nx\r\n--B\r\n\r\ny\n--B--\n",
		parts: []wantPart{{nil, "x\r"}},
		err:   ErrMalformed},
	{name: "delimiter-like data", boundary: "boundary",
		body: "--boundary\r\n\r\na\r\n--boundar b\r\n--boundaryX c --boundary d\n--boundary e\r\n--boundary-x " +
			"\r\n-boundary \r--boundary\r\n--boundary--\r\n",
		parts: []wantPart{{nil, "a\r\n--boundar b\r\n--boundaryX c --boundary d\n--boundary e\r\n--boundary-x \r\n-boundary \r--boundary"}}},
	{name: "no parts", boundary: "B", body: "--B--\r\n"},
	{name: "browser boundary", boundary: "----WebKitFormBoundary7MA4YWxkTrZu0gW",
		body: "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n" + cdHead + "\r\n" + near + "\r\n" +
			"------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n",
		parts: []wantPart{{cd, near}}},
	{name: "header continuation", boundary: "B",
		body:  "--B\r\nA: b\r\n  c \r\n\td\r\nA:e\r\nx-y-z : w\r\n\r\nx\r\n--B--",
		parts: []wantPart{{map[string][]string{"A": {"b c d", "e"}, "x-y-z ": {"w"}}, "x"}}},
	{name: "quoted-printable", boundary: "B",
		body:  "--B\r\nContent-Transfer-Encoding: Quoted-Printable\r\nX: y\r\n\r\nfoo=3Dbar=\r\nbaz\r\n--B--",
		parts: []wantPart{{map[string][]string{"X": {"y"}}, "foo=barbaz"}}},
	{name: "header longer than the buffer", boundary: "B", lim: mimeLimits,
		body:  "--B\r\nLong: " + big + "\r\n\r\nx\r\n--B--",
		parts: []wantPart{{map[string][]string{"Long": {big}}, "x"}}},
	{name: "body longer than the buffer", boundary: "B",
		body:  "--B\r\n\r\n" + big + "\r\n--B\r\n\r\n" + big + big + "\r\n--B--",
		parts: []wantPart{{nil, big}, {nil, big + big}}},

	// Cut short.
	{name: "empty body", boundary: "B", err: io.ErrUnexpectedEOF},
	{name: "only a preamble", boundary: "B", body: "hello\r\n", err: io.ErrUnexpectedEOF},
	{name: "cut in the first delimiter", boundary: "B", body: "--", err: io.ErrUnexpectedEOF},
	{name: "cut in a header", boundary: "B", body: "--B\r\nA: b\r\n", err: io.ErrUnexpectedEOF},
	{name: "cut after a delimiter line", boundary: "B",
		body: "--B\r\n\r\nx\r\n--B\r\n", parts: []wantPart{{nil, "x"}}, err: io.ErrUnexpectedEOF},
	{name: "cut in the data", boundary: "B", body: "--B\r\n\r\nxyz", err: io.ErrUnexpectedEOF},
	{name: "cut in a delimiter", boundary: "B", body: "--B\r\n\r\nx\r\n--", err: io.ErrUnexpectedEOF},
	{name: "cut in a delimiter at the start", boundary: "B", body: "--B\r\n\r\n--", err: io.ErrUnexpectedEOF},
	{name: "cut after a delimiter", boundary: "B",
		body: "--B\r\n\r\nx\r\n--B", parts: []wantPart{{nil, "x"}}, err: io.ErrUnexpectedEOF},
	{name: "cut in the final delimiter", boundary: "B",
		body: "--B\r\n\r\nx\r\n--B-", err: io.ErrUnexpectedEOF},
	{name: "final delimiter with a bare LF in CRLF mode", boundary: "B",
		body: "--B\r\n\r\nx\r\n--B--\n", parts: []wantPart{{nil, "x"}}, err: ErrMalformed},

	// Malformed.
	{name: "junk after a delimiter", boundary: "B",
		body: "--B\r\n\r\nx\r\n--B junk\r\n\r\n--B--", parts: []wantPart{{nil, "x"}}, err: ErrMalformed},
	{name: "bare LF after a delimiter in CRLF mode", boundary: "B",
		body: "--B\r\n\r\nx\r\n--B\n\r\n--B--", parts: []wantPart{{nil, "x"}}, err: ErrMalformed},
	{name: "header line without a colon", boundary: "B", body: "--B\r\nno colon\r\n\r\n\r\n--B--", err: ErrMalformed},
	{name: "header starting with a space", boundary: "B", body: "--B\r\n A: b\r\n\r\n\r\n--B--", err: ErrMalformed},
	{name: "bad header key", boundary: "B", body: "--B\r\na@b: c\r\n\r\n\r\n--B--", err: ErrMalformed},
	{name: "bad header value", boundary: "B", body: "--B\r\nA: b\x00\r\n\r\n\r\n--B--", err: ErrMalformed},
	{name: "preamble line too long", boundary: "B",
		body: strings.Repeat("x", maxLineLen) + "\n--B\r\n\r\n\r\n--B--", err: ErrMalformed},
	{name: "preamble line just short enough", boundary: "B",
		body: strings.Repeat("x", maxLineLen-1) + "\n--B\r\n\r\n\r\n--B--", parts: []wantPart{{nil, ""}}},
	{name: "empty boundary", body: "--\r\n\r\n\r\n----", err: ErrMalformed},
	{name: "boundary with a line break", boundary: "a\nb", body: "--a\nb\r\n\r\n\r\n--a\nb--", err: ErrMalformed},
	{name: "boundary too long", boundary: strings.Repeat("b", maxBoundaryLen+1), err: ErrMalformed},
	{name: "longest boundary", boundary: strings.Repeat("b", maxBoundaryLen),
		body:  "--" + strings.Repeat("b", maxBoundaryLen) + "\r\n\r\nx\r\n--" + strings.Repeat("b", maxBoundaryLen) + "--",
		parts: []wantPart{{nil, "x"}}},

	// Limits.
	{name: "too many parts", boundary: "B", lim: Limits{MaxParts: 2},
		body:  "--B\r\n\r\n1\r\n--B\r\n\r\n2\r\n--B\r\n\r\n3\r\n--B--",
		parts: []wantPart{{nil, "1"}, {nil, "2"}}, err: ErrTooManyParts},
	{name: "as many parts as allowed", boundary: "B", lim: Limits{MaxParts: 2},
		body:  "--B\r\n\r\n1\r\n--B\r\n\r\n2\r\n--B--",
		parts: []wantPart{{nil, "1"}, {nil, "2"}}},
	{name: "too many header fields", boundary: "B", lim: Limits{MaxHeaders: 2},
		body: "--B\r\nA: 1\r\nA: 2\r\nA: 3\r\n\r\n\r\n--B--", err: ErrHeaderTooLarge},
	{name: "as many header fields as allowed", boundary: "B", lim: Limits{MaxHeaders: 2},
		body:  "--B\r\nA: 1\r\nA: 2\r\n\r\n\r\n--B--",
		parts: []wantPart{{map[string][]string{"A": {"1", "2"}}, ""}}},
	{name: "header too large", boundary: "B", lim: Limits{MaxHeaderBytes: 1000},
		body: "--B\r\nA: " + strings.Repeat("v", 400) + "\r\n\r\n\r\n--B--", err: ErrHeaderTooLarge},
	{name: "header as large as allowed", boundary: "B", lim: Limits{MaxHeaderBytes: 1000},
		body:  "--B\r\nA: " + strings.Repeat("v", 399) + "\r\n\r\n\r\n--B--",
		parts: []wantPart{{map[string][]string{"A": {strings.Repeat("v", 399)}}, ""}}},
	{name: "header line over the limit", boundary: "B", lim: Limits{MaxHeaderBytes: 1000},
		body: "--B\r\nA: " + big + "\r\n\r\n\r\n--B--", err: ErrHeaderTooLarge},
	{name: "continuation line over the limit", boundary: "B", lim: Limits{MaxHeaderBytes: 1000},
		body: "--B\r\nA: b\r\n " + strings.Repeat("v", 600) + "\r\n\r\n\r\n--B--", err: ErrHeaderTooLarge},
	{name: "mime/multipart's header limit", boundary: "B", lim: mimeLimits,
		body: "--B\r\n" + strings.Repeat("A: "+big+"\r\n", 33) + "\r\n\r\n--B--", err: ErrHeaderTooLarge},
	// 400 for the header, 200 and the key for a key, then the value.
	{name: "header as large as the default allows", boundary: "B",
		body:  "--B\r\nA: " + strings.Repeat("v", DefaultMaxHeaderBytes-601) + "\r\n\r\nx\r\n--B--",
		parts: []wantPart{{map[string][]string{"A": {strings.Repeat("v", DefaultMaxHeaderBytes-601)}}, "x"}}},
	{name: "header one byte over the default", boundary: "B",
		body: "--B\r\nA: " + strings.Repeat("v", DefaultMaxHeaderBytes-600) + "\r\n\r\nx\r\n--B--", err: ErrHeaderTooLarge},
	{name: "header line over the default", boundary: "B",
		body: "--B\r\nA: " + big + "\r\n\r\nx\r\n--B--", err: ErrHeaderTooLarge},
}

// TestCases reads every case with every source and buffer size, checks the
// result, and compares it with mime/multipart's.
func TestCases(t *testing.T) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seeds := uint64(3)
			if len(c.body) > 1<<20 {
				seeds = 1 // a byte at a time, 10 MiB is slow under the race detector
			}
			for _, mode := range srcModes {
				if len(c.body) > 1<<20 && mode.name == "onebyte" {
					continue
				}
				for _, size := range []int{bufferSize, minBufferSize} {
					for seed := range seeds {
						rng := rand.New(rand.NewPCG(seed, 1))
						mr := newReader(mode.wrap([]byte(c.body), rng), c.boundary, c.lim, size, nil)
						parts, err := readAllParts(mr, rng)
						msg := fmt.Sprintf("%s, buffer %d, seed %d", mode.name, size, seed)
						assert.Equal(t, c.parts, parts, msg)
						if c.err == nil {
							require.NoError(t, err, msg)
						} else {
							require.ErrorIs(t, err, c.err, msg)
						}
						if c.lim == (Limits{}) || c.lim == mimeLimits {
							diffMime(t, []byte(c.body), c.boundary, seed)
							diffDefaultHeaderLimit(t, []byte(c.body), c.boundary)
						}
					}
				}
			}
		})
	}
}

// readAllParts reads every part and returns the first error, nil for
// NextPart's io.EOF.
func readAllParts(mr *Reader, rng *rand.Rand) ([]wantPart, error) {
	defer mr.Close()
	var parts []wantPart
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return parts, nil
		}
		if err != nil {
			return parts, err
		}
		data, err := readPart(p, rng)
		if err != nil {
			return parts, err
		}
		var h map[string][]string
		if len(p.Header) > 0 {
			h = p.Header
		}
		parts = append(parts, wantPart{h, string(data)})
	}
}

// TestDelimiterAcrossRefills puts the start of a delimiter at every offset
// around the end of a read, with a read that fills the buffer and one
// that does not, and tails that make the delimiter a closing one, a
// closing one without its line break, or one more part's.
func TestDelimiterAcrossRefills(t *testing.T) {
	const boundary = "----WebKitFormBoundary7MA4YWxkTrZu0gW"
	delim := "\r\n--" + boundary
	head := "--" + boundary + "\r\n" + cdHead + "\r\n"
	// Data full of near misses: the boundary with its last byte changed.
	fill := strings.Repeat("\r\n--"+boundary[:len(boundary)-1]+"x", minBufferSize/20)
	for _, readEnd := range []int{minBufferSize, 5000} {
		for _, tail := range []string{"--\r\n", "--", " \r\n\r\nnext" + delim + "--"} {
			for k := -3; k <= len(delim)+3; k++ {
				data := fill[:readEnd-k-len(head)]
				body := head + data + delim + tail
				src := &cutReader{data: []byte(body), cuts: []int{readEnd, readEnd + 7}}
				mr := newReader(src, boundary, Limits{}, minBufferSize, nil)
				p, err := mr.NextPart()
				require.NoError(t, err)
				got, err := io.ReadAll(p)
				require.NoError(t, err, "k %d", k)
				require.Equal(t, data, string(got), "k %d", k)
				for err == nil {
					_, err = mr.NextPart()
				}
				require.Equal(t, io.EOF, err, "k %d", k)
			}
		}
	}
}

// cutReader ends its reads at the given offsets.
type cutReader struct {
	data []byte
	off  int
	cuts []int
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.off == len(c.data) {
		return 0, io.EOF
	}
	end := len(c.data)
	for _, cut := range c.cuts {
		if cut > c.off {
			end = min(end, cut)
			break
		}
	}
	n := copy(p, c.data[c.off:end])
	c.off += n
	return n, nil
}

// TestLargeSlices guards the point of the package: a part's bytes come out
// in large reads and writes, not in mime/multipart's small copies.
func TestLargeSlices(t *testing.T) {
	body := fileBody(8<<20, "")
	t.Run("WriteTo", func(t *testing.T) {
		mr := NewReader(bytes.NewReader(body), benchBoundary, Limits{})
		defer mr.Close()
		p, err := mr.NextPart()
		require.NoError(t, err)
		w := &countWriter{}
		n, err := p.WriteTo(w)
		require.NoError(t, err)
		require.EqualValues(t, 8<<20, n)
		require.LessOrEqual(t, w.writes, 8<<20/(bufferSize/2)+2)
	})
	t.Run("Read", func(t *testing.T) {
		mr := NewReader(bytes.NewReader(body), benchBoundary, Limits{})
		defer mr.Close()
		p, err := mr.NextPart()
		require.NoError(t, err)
		buf := make([]byte, bufferSize)
		reads, total := 0, 0
		for {
			n, err := p.Read(buf)
			total += n
			reads++
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
		}
		require.Equal(t, 8<<20, total)
		require.LessOrEqual(t, reads, 8<<20/(bufferSize/2)+2)
	})
}

type countWriter struct{ writes int }

func (w *countWriter) Write(p []byte) (int, error) { w.writes++; return len(p), nil }

// TestAllocs guards against per-read allocations: reading a part costs
// the same few allocations whatever its size.
func TestAllocs(t *testing.T) {
	body := fileBody(8<<20, "")
	src := bytes.NewReader(nil)
	run := func(dst io.Writer) func() {
		return func() {
			src.Reset(body)
			mr := NewReader(src, benchBoundary, Limits{})
			p, err := mr.NextPart()
			require.NoError(t, err)
			_, err = io.Copy(dst, p)
			require.NoError(t, err)
			_, err = mr.NextPart()
			require.Equal(t, io.EOF, err)
		}
	}
	// With Read, as spool.Spool reads a part.
	buf := make([]byte, 256<<10)
	readOnly := func() {
		src.Reset(body)
		mr := NewReader(src, benchBoundary, Limits{})
		p, err := mr.NextPart()
		require.NoError(t, err)
		for err == nil {
			_, err = p.Read(buf)
		}
		require.Equal(t, io.EOF, err)
		_, err = mr.NextPart()
		require.Equal(t, io.EOF, err)
	}
	for name, f := range map[string]func(){"WriteTo": run(io.Discard), "Read": readOnly} {
		allocs := testing.AllocsPerRun(20, f)
		t.Logf("%s: %.0f allocations", name, allocs)
		require.LessOrEqual(t, allocs, 16.0, name)
	}
}

func TestMisuse(t *testing.T) {
	body := "--B\r\n" + cdHead + "\r\nhello\r\n--B\r\n\r\nworld\r\n--B--"

	t.Run("part after NextPart", func(t *testing.T) {
		mr := NewReader(strings.NewReader(body), "B", Limits{})
		p1, err := mr.NextPart()
		require.NoError(t, err)
		require.Equal(t, "f", p1.FormName())
		require.Equal(t, "a.txt", p1.FileName())
		p2, err := mr.NextPart()
		require.NoError(t, err)
		n, err := p1.Read(make([]byte, 10))
		require.Equal(t, 0, n)
		require.Equal(t, io.EOF, err)
		got, err := io.ReadAll(p2)
		require.NoError(t, err)
		require.Equal(t, "world", string(got))
		_, err = mr.NextPart()
		require.Equal(t, io.EOF, err)
		_, err = mr.NextPart()
		require.Equal(t, io.EOF, err, "io.EOF again")
		require.Nil(t, mr.buf, "the buffer goes back at the end")
	})

	t.Run("Close mid-part", func(t *testing.T) {
		mr := NewReader(strings.NewReader(body), "B", Limits{})
		p, err := mr.NextPart()
		require.NoError(t, err)
		b := make([]byte, 2)
		_, err = p.Read(b)
		require.NoError(t, err)
		require.NoError(t, mr.Close())
		_, err = p.Read(b)
		require.ErrorIs(t, err, errClosed)
		_, err = p.WriteTo(io.Discard)
		require.ErrorIs(t, err, errClosed)
		_, err = mr.NextPart()
		require.ErrorIs(t, err, errClosed)
		require.NoError(t, mr.Close(), "twice")
	})

	t.Run("source error", func(t *testing.T) {
		boom := errors.New("boom")
		src := io.MultiReader(strings.NewReader(body[:len(body)-10]), &errReader{boom})
		mr := NewReader(src, "B", Limits{})
		p, err := mr.NextPart()
		require.NoError(t, err)
		_, err = io.ReadAll(p)
		require.NoError(t, err)
		p, err = mr.NextPart()
		require.NoError(t, err)
		_, err = io.ReadAll(p)
		require.Equal(t, boom, err, "as it is")
		_, err = mr.NextPart()
		require.Equal(t, boom, err)
	})

	t.Run("source without progress", func(t *testing.T) {
		mr := NewReader(&errReader{nil}, "B", Limits{})
		_, err := mr.NextPart()
		require.ErrorIs(t, err, io.ErrNoProgress)
	})

	t.Run("quoted-printable part skipped after an error", func(t *testing.T) {
		// The decoding error stops mime/multipart's skipping inside the
		// part, whose next line it then takes for a delimiter line.
		body := "--B\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na\x00b\r\n" +
			strings.Repeat("xxxxxxxxx\r\n", 1000) + "\r\n--B\r\n\r\nx\r\n--B--"
		mmr := multipart.NewReader(strings.NewReader(body), "B")
		mp, err := mmr.NextPart()
		require.NoError(t, err)
		_, err = io.ReadAll(mp)
		require.Error(t, err)
		_, err = mmr.NextPart()
		require.ErrorContains(t, err, "unexpected line")

		mr := NewReader(strings.NewReader(body), "B", Limits{})
		p, err := mr.NextPart()
		require.NoError(t, err)
		_, err = io.ReadAll(p)
		require.Error(t, err)
		p, err = mr.NextPart()
		require.NoError(t, err)
		got, err := io.ReadAll(p)
		require.NoError(t, err)
		require.Equal(t, "x", string(got))
	})
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

// TestMimeQuirks pins mime/multipart behaviour the comparison relies on,
// so that a change in the standard library shows up here first.
func TestMimeQuirks(t *testing.T) {
	// A body cut inside a part's header ends with a plain io.EOF.
	_, err := multipart.NewReader(strings.NewReader("--B\r\nA: b\r\n"), "B").NextPart()
	require.Equal(t, io.EOF, err)
	// Lines before a part's header are limited by its 4 KiB buffer.
	_, err = multipart.NewReader(strings.NewReader(strings.Repeat("x", maxLineLen)+"\n--B--"), "B").NextPart()
	require.Error(t, err)
	require.NotEqual(t, io.EOF, err)
	h := textproto.MIMEHeader{"A": {"b"}}
	p, err := multipart.NewReader(strings.NewReader("--B\r\na: b\r\n\r\n\r\n--B--"), "B").NextPart()
	require.NoError(t, err)
	require.Equal(t, h, p.Header)
}

// TestNewReaderBuffer reads a file part larger than the caller's buffer
// through it.
func TestNewReaderBuffer(t *testing.T) {
	data := bytes.Repeat([]byte("spillway\r\n--"), 10000)
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	fw, err := w.CreateFormFile("file", "a.bin")
	require.NoError(t, err)
	_, err = fw.Write(data)
	require.NoError(t, err)
	require.NoError(t, w.Close())

	buf := make([]byte, MinBufferSize)
	mr := NewReaderBuffer(&body, w.Boundary(), Limits{}, buf)
	p, err := mr.NextPart()
	require.NoError(t, err)
	got, err := io.ReadAll(p)
	require.NoError(t, err)
	assert.Equal(t, data, got)
	_, err = mr.NextPart()
	assert.Equal(t, io.EOF, err)
	require.NoError(t, mr.Close())
	assert.Nil(t, mr.bufp, "the caller's buffer is not pooled")
	assert.Panics(t, func() { NewReaderBuffer(&body, "b", Limits{}, buf[:MinBufferSize-1]) })
}
