// Package uploadtest holds the one table of threshold cases that every
// entrypoint runs (spool directly, the HTTP handler, the Lambda function),
// and the deterministic payloads and multipart bodies they upload.
package uploadtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"mime/multipart"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"spillway/wire"
)

// Mode is how a case sends its files.
type Mode string

const (
	RawLength     Mode = "raw-length"     // PUT with Content-Length
	RawChunked    Mode = "raw-chunked"    // PUT with unknown length
	MultipartOne  Mode = "multipart-one"  // POST multipart/form-data, one file
	MultipartMany Mode = "multipart-many" // POST multipart/form-data, several files
)

// Case is one row of the threshold table.
type Case struct {
	Name  string
	Mode  Mode
	Files []File
}

// File is a payload of Size deterministic bytes generated from Seed: any
// bytes, or printable ASCII when Text is set (for transports that carry
// only text, such as a Lambda event body that is not base64).
type File struct {
	Name string
	Seed uint64
	Size int64
	Text bool
}

// Sizes returns the sizes around a threshold that every entrypoint must
// handle: 0, 1, t-1, t, t+1, 3 MiB and 64 MiB.
func Sizes(threshold int64) []int64 {
	return []int64{0, 1, threshold - 1, threshold, threshold + 1, 3 << 20, 64 << 20}
}

// Cases returns the table for threshold, leaving out any case whose total
// payload exceeds maxTotal (0: no cap), for transports that cannot carry it.
func Cases(threshold, maxTotal int64) []Case {
	var cases []Case
	for _, mode := range []Mode{RawLength, RawChunked, MultipartOne} {
		for i, size := range Sizes(threshold) {
			// Raw names exercise subfolders; multipart stores base names.
			file := fmt.Sprintf("%s-%d.bin", mode, size)
			if mode != MultipartOne {
				file = "sub/dir/" + file
			}
			cases = append(cases, Case{
				Name:  fmt.Sprintf("%s/%d", mode, size),
				Mode:  mode,
				Files: []File{{Name: file, Seed: uint64(i + 1), Size: size}},
			})
		}
	}
	// Several files on both sides of the threshold: one set small enough
	// for a Lambda event, and one larger.
	for _, many := range []struct {
		name  string
		sizes []int64
	}{
		{string(MultipartMany), []int64{1, threshold - 1, threshold + 1}},
		{string(MultipartMany) + "-large", []int64{threshold, 3 << 20, 0, threshold + 1}},
	} {
		c := Case{Name: many.name, Mode: MultipartMany}
		for i, size := range many.sizes {
			c.Files = append(c.Files, File{Name: fmt.Sprintf("%s-%d.bin", many.name, i), Seed: uint64(100 + i), Size: size})
		}
		cases = append(cases, c)
	}

	if maxTotal <= 0 {
		return cases
	}
	kept := cases[:0]
	for _, c := range cases {
		if c.Total() <= maxTotal {
			kept = append(kept, c)
		}
	}
	return kept
}

// Total returns the sum of the case's file sizes.
func (c Case) Total() int64 {
	var n int64
	for _, f := range c.Files {
		n += f.Size
	}
	return n
}

// WantSpool is the spool field a file must report under threshold, given a
// memory budget large enough for the case.
func WantSpool(f File, threshold int64) wire.Spool {
	if f.Size <= threshold {
		return wire.SpoolMemory
	}
	return wire.SpoolDisk
}

// Reader returns the file's bytes as a stream, without holding them.
func (f File) Reader() io.Reader {
	s := newStream(f.Seed)
	s.text = f.Text
	return io.LimitReader(s, f.Size)
}

// Bytes returns the file's bytes in memory.
func (f File) Bytes() []byte {
	b, err := io.ReadAll(f.Reader())
	if err != nil {
		panic(err)
	}
	return b
}

// SHA256 returns the hex digest of the file's bytes.
func (f File) SHA256() string {
	h := sha256.New()
	if _, err := io.Copy(h, f.Reader()); err != nil {
		panic(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// RequireContent fails t unless r yields exactly f's bytes.
func RequireContent(t testing.TB, f File, r io.Reader) {
	t.Helper()
	want := f.Reader()
	wbuf := make([]byte, 256<<10)
	gbuf := make([]byte, 256<<10)
	var off int64
	for {
		wn, werr := io.ReadFull(want, wbuf)
		gn, gerr := io.ReadFull(r, gbuf[:max(wn, 1)])
		if wn == 0 {
			require.Zero(t, gn, "%s: %d bytes more than expected after offset %d", f.Name, gn, off)
			return
		}
		require.Equal(t, wn, gn, "%s: content ends early at offset %d (%v)", f.Name, off+int64(gn), gerr)
		if !bytes.Equal(wbuf[:wn], gbuf[:gn]) {
			require.FailNow(t, "content differs", "%s: bytes differ in the block at offset %d", f.Name, off)
		}
		off += int64(wn)
		if werr != nil {
			extra, _ := io.Copy(io.Discard, r)
			require.Zero(t, extra, "%s: %d bytes more than expected", f.Name, extra)
			return
		}
	}
}

// RequireFile fails t unless the file at path holds exactly f's bytes.
func RequireFile(t testing.TB, f File, path string) {
	t.Helper()
	fh, err := os.Open(path)
	require.NoError(t, err)
	defer fh.Close()
	RequireContent(t, f, fh)
}

// RequireEmptyDir fails t unless dir has no entries: no spool file or
// staging file was left behind.
func RequireEmptyDir(t testing.TB, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.Empty(t, names, "files left behind in %s", dir)
}

// EmptyDir removes every entry of dir, failing t on an error: for a
// benchmark that empties what it stored, outside its timer, so that the
// disk holds at most a batch of uploads.
func EmptyDir(t testing.TB, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		require.NoError(t, os.RemoveAll(filepath.Join(dir, e.Name())))
	}
}

// RequireDirHolds fails t unless dir and its subdirectories hold exactly
// the regular files named (relative, slash-separated), and nothing else: no
// partial file, no hidden staging file, no spool file.
func RequireDirHolds(t testing.TB, dir string, names ...string) {
	t.Helper()
	var got []string
	require.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		got = append(got, filepath.ToSlash(rel))
		return err
	}))
	slices.Sort(got)
	require.Equal(t, slices.Sorted(slices.Values(names)), got, "files in %s", dir)
}

// Boundary is the multipart boundary Multipart uses.
const Boundary = "spillway-test-boundary-7d1f0c"

// Multipart returns a streaming multipart/form-data body carrying files as
// parts of field "file", after one plain form field that servers must ignore.
// It returns the Content-Type and the exact body length.
func Multipart(files []File) (contentType string, body io.Reader, length int64) {
	form := Form{Boundary: Boundary, Note: true}
	for _, f := range files {
		form.Parts = append(form.Parts, Part{Field: "file", Name: f.Name, Body: f.Reader(), Size: f.Size})
	}
	return form.Body()
}

// Form is a multipart/form-data body whose files stream from their
// readers, so that it holds no copy of them.
type Form struct {
	Boundary string // "" for a random one
	Note     bool   // a plain form field first, which servers must ignore
	Parts    []Part
}

// Part is one file of a Form: Body yields exactly Size bytes.
type Part struct {
	Field, Name string
	Body        io.Reader
	Size        int64
}

// Body returns the form's Content-Type, the body, and its exact length:
// the part headers are rendered up front and the files stream between
// them.
func (f Form) Body() (contentType string, body io.Reader, length int64) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	// Writes to a bytes.Buffer do not fail; only a bad boundary can.
	if f.Boundary != "" {
		if err := mw.SetBoundary(f.Boundary); err != nil {
			panic(err)
		}
	}
	if f.Note {
		mw.WriteField("note", "not a file")
	}
	var readers []io.Reader
	flush := func() {
		readers = append(readers, bytes.NewReader(bytes.Clone(buf.Bytes())))
		length += int64(buf.Len())
		buf.Reset()
	}
	for _, p := range f.Parts {
		mw.CreateFormFile(p.Field, p.Name)
		flush()
		readers = append(readers, p.Body)
		length += p.Size
	}
	mw.Close()
	flush()
	return mw.FormDataContentType(), io.MultiReader(readers...), length
}

// stream is a fast deterministic byte source: the same seed always gives the
// same bytes, so content can be checked without keeping a copy.
type stream struct {
	rng  *rand.ChaCha8
	text bool
}

func newStream(seed uint64) *stream {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	return &stream{rng: rand.NewChaCha8(key)}
}

func (s *stream) Read(p []byte) (int, error) {
	n, err := s.rng.Read(p)
	if s.text {
		for i, b := range p[:n] {
			p[i] = 'a' + b%26
		}
	}
	return n, err
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers, for capturing a
// server's log in a test.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// WriteFile writes the file's bytes to path and returns their hex SHA-256.
func (f File) WriteFile(t testing.TB, path string) string {
	t.Helper()
	out, err := os.Create(path)
	require.NoError(t, err)
	defer out.Close()
	h := sha256.New()
	_, err = io.CopyBuffer(io.MultiWriter(out, h), f.Reader(), make([]byte, 1<<20))
	require.NoError(t, err)
	require.NoError(t, out.Close())
	return hex.EncodeToString(h.Sum(nil))
}

// HashFile returns the hex SHA-256 of the file at path and its length.
func HashFile(path string) (sum string, n int64, err error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer fh.Close()
	h := sha256.New()
	n, err = io.CopyBuffer(h, fh, make([]byte, 1<<20))
	if err != nil {
		return "", n, fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// SHA256File returns the hex SHA-256 of the file at path.
func SHA256File(t testing.TB, path string) string {
	t.Helper()
	sum, _, err := HashFile(path)
	require.NoError(t, err)
	return sum
}
