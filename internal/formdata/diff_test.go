package formdata

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

// srcModes are the ways a test feeds a body to a Reader: the reads' sizes
// decide where refills split delimiters and header lines.
var srcModes = []struct {
	name string
	wrap func(b []byte, rng *rand.Rand) io.Reader
}{
	{"whole", func(b []byte, _ *rand.Rand) io.Reader { return bytes.NewReader(b) }},
	{"onebyte", func(b []byte, _ *rand.Rand) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) }},
	{"half", func(b []byte, _ *rand.Rand) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) }},
	{"dataerr", func(b []byte, _ *rand.Rand) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) }},
	{"random", func(b []byte, rng *rand.Rand) io.Reader { return &chunkReader{data: b, rng: rng, max: 300} }},
	{"random-big", func(b []byte, rng *rand.Rand) io.Reader { return &chunkReader{data: b, rng: rng, max: 20000} }},
	{"random-dataerr", func(b []byte, rng *rand.Rand) io.Reader {
		return iotest.DataErrReader(&chunkReader{data: b, rng: rng, max: 64})
	}},
}

// chunkReader returns its data in reads of random sizes, empty ones
// included.
type chunkReader struct {
	data []byte
	rng  *rand.Rand
	max  int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := min(c.rng.IntN(c.max+1), len(p), len(c.data))
	copy(p, c.data[:n])
	c.data = c.data[n:]
	return n, nil
}

// readBuf is readPart's, shared: tests do not read in parallel.
var readBuf = make([]byte, 300<<10)

// readPart reads p to its end in one of several ways, as a caller might.
func readPart(p *Part, rng *rand.Rand) ([]byte, error) {
	var out bytes.Buffer
	switch rng.IntN(4) {
	case 0:
		_, err := io.Copy(&out, p) // WriteTo
		return out.Bytes(), err
	case 1:
		return io.ReadAll(p)
	case 2:
		// Small reads, and large ones that readDirect serves.
		buf := readBuf[:1+rng.IntN(len(readBuf))]
		for {
			n, err := p.Read(buf[:1+rng.IntN(len(buf))])
			out.Write(buf[:n])
			if err == io.EOF {
				return out.Bytes(), nil
			}
			if err != nil {
				return out.Bytes(), err
			}
		}
	default:
		_, err := io.Copy(&out, iotest.OneByteReader(p))
		return out.Bytes(), err
	}
}

// mimeLimits are mime/multipart's limits for NextPart: it has no part
// limit, and takes part headers up to 10 MiB.
var mimeLimits = Limits{MaxParts: 1 << 30, MaxHeaderBytes: 10 << 20}

// diffMime reads body with mime/multipart and with a Reader in lockstep
// and fails t where they differ. seed picks the source's read sizes, the
// buffer size and how each part is read (or skipped).
func diffMime(t *testing.T, body []byte, boundary string, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed>>32|1))
	size := bufferSize
	if rng.IntN(2) == 0 {
		size = minBufferSize
	}
	src := srcModes[rng.IntN(len(srcModes))].wrap(body, rng)
	fr := newReader(src, boundary, mimeLimits, size, nil)
	defer fr.Close()
	if fr.err != nil {
		// An unusable boundary: only an empty one is mime/multipart's
		// error too; the others are deliberate.
		_, err := fr.NextPart()
		require.ErrorIs(t, err, ErrMalformed)
		if boundary == "" {
			_, err := multipart.NewReader(bytes.NewReader(body), boundary).NextPart()
			require.Error(t, err)
		}
		return
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	for i := 0; ; i++ {
		mp, merr := mr.NextPart()
		fp, ferr := fr.NextPart()
		if merr != nil || ferr != nil {
			diffEnd(t, body, boundary, i, merr, ferr)
			return
		}
		require.Equal(t, mp.Header, fp.Header, "part %d header", i)
		require.Equal(t, mp.FormName(), fp.FormName(), "part %d form name", i)
		require.Equal(t, mp.FileName(), fp.FileName(), "part %d file name", i)
		checkDispositionFileName(t, fp.Header.Get("Content-Disposition"))
		if rng.IntN(4) == 0 && fp.qp == nil {
			// Skipped by NextPart. Not a quoted-printable part: there,
			// mime/multipart's skipping derails on a decoding error.
			continue
		}
		mdata, merr := io.ReadAll(mp)
		fdata, ferr := readPart(fp, rng)
		require.Equal(t, merr != nil, ferr != nil, "part %d: read errors differ: mime/multipart %v, formdata %v", i, merr, ferr)
		require.Equal(t, string(mdata), string(fdata), "part %d bytes (errors %v, %v)", i, merr, ferr)
		if merr != nil {
			if errors.Is(merr, io.ErrUnexpectedEOF) {
				require.ErrorIs(t, ferr, io.ErrUnexpectedEOF, "part %d", i)
			}
			if fp.qp != nil {
				// A decoding error: the body may go on, but where
				// mime/multipart takes it up again depends on how much
				// its decoder had buffered.
				return
			}
			// Both readers are broken now; mime/multipart's next
			// NextPart fails too.
			_, err := fr.NextPart()
			require.Error(t, err)
			require.NotErrorIs(t, err, io.EOF)
			return
		}
	}
}

// diffEnd judges the NextPart results that ended a lockstep run. The one
// allowed difference: mime/multipart's io.EOF for a body cut inside a
// part's header, which must be an unexpected EOF here.
func diffEnd(t *testing.T, body []byte, boundary string, part int, merr, ferr error) {
	t.Helper()
	switch {
	case ferr == nil:
		require.Failf(t, "formdata returned a part mime/multipart did not", "part %d: mime/multipart: %v", part, merr)
	case ferr == io.EOF:
		require.Equal(t, io.EOF, merr, "part %d: formdata: io.EOF", part)
		require.True(t, mimeCloses(body, boundary), "formdata returned io.EOF for a body without its closing delimiter")
	case merr == nil:
		require.Failf(t, "formdata failed where mime/multipart returned a part", "part %d: %v", part, ferr)
	case merr == io.EOF:
		require.False(t, mimeCloses(body, boundary), "part %d: formdata: %v, mime/multipart: io.EOF after a closing delimiter", part, ferr)
		require.ErrorIs(t, ferr, io.ErrUnexpectedEOF, "part %d: mime/multipart's io.EOF without a closing delimiter", part)
	}
	// Otherwise both failed.
}

// mimeCloses reports whether mime/multipart reads body to a closing
// delimiter: its io.EOF counts only if it survives a source whose end is
// an error, so that a body cut inside a header does not pass. The closing
// delimiter may end the body without a line break, which a source failing
// at the end then refuses; with a line break appended it passes.
func mimeCloses(body []byte, boundary string) bool {
	for _, nl := range []string{"", "\r\n", "\n"} {
		b := append(body[:len(body):len(body)], nl...)
		if mimeStrict(b, boundary) {
			return true
		}
	}
	return false
}

var errEnd = errors.New("end of the body")

type endErrReader struct{ r io.Reader }

func (e endErrReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		err = errEnd
	}
	return n, err
}

func mimeStrict(body []byte, boundary string) bool {
	mr := multipart.NewReader(endErrReader{bytes.NewReader(body)}, boundary)
	for range len(body) + 1 {
		p, err := mr.NextPart()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		if _, err := io.Copy(io.Discard, p); err != nil {
			return false
		}
	}
	panic("more parts than bytes")
}

// diffDefaultHeaderLimit reads body with the default header limit and with
// mimeLimits' (which diffMime holds to mime/multipart) in lockstep: they
// yield the same parts, headers and bytes, and fail alike, until the
// default refuses a header with ErrHeaderTooLarge.
func diffDefaultHeaderLimit(t *testing.T, body []byte, boundary string) {
	t.Helper()
	def := NewReader(bytes.NewReader(body), boundary, Limits{MaxParts: mimeLimits.MaxParts})
	defer def.Close()
	ref := NewReader(bytes.NewReader(body), boundary, mimeLimits)
	defer ref.Close()
	for i := 0; ; i++ {
		dp, derr := def.NextPart()
		if errors.Is(derr, ErrHeaderTooLarge) {
			return
		}
		rp, rerr := ref.NextPart()
		if derr != nil || rerr != nil {
			require.Equal(t, rerr, derr, "part %d: the errors differ", i)
			return
		}
		require.Equal(t, rp.Header, dp.Header, "part %d header", i)
		ddata, derr := io.ReadAll(dp)
		rdata, rerr := io.ReadAll(rp)
		require.Equal(t, string(rdata), string(ddata), "part %d bytes", i)
		require.Equal(t, rerr, derr, "part %d read error", i)
		if derr != nil {
			return
		}
	}
}
