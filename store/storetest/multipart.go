package storetest

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/minio/crc64nvme"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/store"
)

// RunMultipart runs the multipart suite. The stores newStore returns must
// have store.Multipart in their Capabilities, and take parts either through
// store.PartWriter or at store.PartPresigner's URLs, which the suite calls
// with a plain http.Client.
//
// Parts are store.MinPartSize, S3's smallest, so the largest upload here is
// 11 MiB: two full parts and a short last one. Every test finishes (or
// aborts) each upload it creates, so a backend can check after each test
// that nothing was left behind.
func RunMultipart(t *testing.T, newStore Factory) {
	t.Run("CreateAndGet", func(t *testing.T) { testCreateAndGet(t, newMultipart(t, newStore)) })
	t.Run("BadDeclarations", func(t *testing.T) { testBadDeclarations(t, newMultipart(t, newStore)) })
	t.Run("PartChecks", func(t *testing.T) { testPartChecks(t, newMultipart(t, newStore)) })
	t.Run("PartsAnyOrderResendComplete", func(t *testing.T) { testPartsAnyOrderResendComplete(t, newMultipart(t, newStore)) })
	t.Run("MismatchKeepsUpload", func(t *testing.T) { testMismatchKeepsUpload(t, newMultipart(t, newStore)) })
	t.Run("WrongChecksum", func(t *testing.T) { testWrongChecksum(t, newMultipart(t, newStore)) })
	t.Run("NameTaken", func(t *testing.T) { testNameTaken(t, newMultipart(t, newStore)) })
	t.Run("Abort", func(t *testing.T) { testAbort(t, newMultipart(t, newStore)) })
	t.Run("UnknownIDs", func(t *testing.T) { testUnknownIDs(t, newMultipart(t, newStore)) })
	t.Run("ConcurrentComplete", func(t *testing.T) { testConcurrentComplete(t, newMultipart(t, newStore)) })
	t.Run("ConcurrentSameName", func(t *testing.T) { testMultipartConcurrentSameName(t, newMultipart(t, newStore)) })
}

// bigSize is two full parts and a short last one.
const bigSize = 2*store.MinPartSize + 1<<20

// multipartEnv is one store under test and the ways into it.
type multipartEnv struct {
	s  store.Store
	mp store.Multipart
	pw store.PartWriter    // nil when parts go to presigned URLs
	pp store.PartPresigner // nil when parts go through the store
	sp *spool.Spooler
}

func newMultipart(t *testing.T, newStore Factory) *multipartEnv {
	t.Helper()
	s, sp := newStore(t)
	e := &multipartEnv{s: s, sp: sp}
	caps := s.Capabilities()
	e.mp, e.pw, e.pp = caps.Multipart, caps.PartWriter, caps.PartPresigner
	require.NotNil(t, e.mp, "%T has no store.Multipart in its Capabilities", s)
	require.True(t, e.pw != nil || e.pp != nil, "%T has neither store.PartWriter nor store.PartPresigner in its Capabilities", s)
	if e.pp != nil {
		// As the handler does: parts go to presigned URLs when they can.
		e.pw = nil
	}
	return e
}

// create starts an upload of f, cut into store.MinPartSize parts,
// declaring sha256 (which may be "") and, as clients do, f's CRC64NVME.
func (e *multipartEnv) create(t *testing.T, f uploadtest.File, sha256 string) store.Upload {
	t.Helper()
	return e.createWith(t, f, sha256, CRC64NVME(f))
}

// createWith is create, declaring crc (which may be "") as the CRC64NVME.
func (e *multipartEnv) createWith(t *testing.T, f uploadtest.File, sha256, crc string) store.Upload {
	t.Helper()
	u, err := e.mp.CreateUpload(t.Context(), store.Upload{Name: f.Name, Size: f.Size, SHA256: sha256, CRC64NVME: crc, PartSize: store.MinPartSize})
	require.NoError(t, err)
	assert.Equal(t, crc, u.CRC64NVME)
	return u
}

// CRC64NVME is f's CRC-64/NVME in store.EncodeCRC64NVME's form.
func CRC64NVME(f uploadtest.File) string {
	return store.EncodeCRC64NVME(crc64nvme.Checksum(f.Bytes()))
}

// partOf spools part n of f's bytes, as u cuts them.
func (e *multipartEnv) partOf(t *testing.T, u store.Upload, n int, f uploadtest.File) *spool.Body {
	t.Helper()
	size := u.PartSizeOf(n)
	require.Positive(t, size, "upload has no part %d", n)
	r := f.Reader()
	_, err := io.CopyN(io.Discard, r, int64(n-1)*u.PartSize)
	require.NoError(t, err)
	return e.spool(t, io.LimitReader(r, size), size)
}

func (e *multipartEnv) spool(t *testing.T, r io.Reader, size int64) *spool.Body {
	t.Helper()
	b, err := e.sp.Spool(t.Context(), r, size)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, b.Close()) })
	return b
}

// put sends body as part n, the way this store takes parts.
func (e *multipartEnv) put(t *testing.T, u store.Upload, n int, body *spool.Body) (store.Part, error) {
	t.Helper()
	if e.pw != nil {
		return e.pw.PutPart(t.Context(), u.ID, n, body)
	}
	pu, err := e.pp.PresignPart(t.Context(), u, n, time.Hour)
	if err != nil {
		return store.Part{}, err
	}
	req, err := http.NewRequestWithContext(t.Context(), pu.Method, pu.URL, body.Reader())
	if err != nil {
		return store.Part{}, err
	}
	// Only byte and string readers get a length of their own.
	req.ContentLength = body.Size()
	for k, v := range pu.Header {
		req.Header.Set(k, v)
	}
	resp, err := partClient.Do(req)
	if err != nil {
		return store.Part{}, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode/100 != 2 {
		return store.Part{}, fmt.Errorf("%s part %d: %s: %s", pu.Method, n, resp.Status, msg)
	}
	return store.Part{Number: n, Size: body.Size(), ETag: resp.Header.Get("ETag")}, nil
}

var partClient = &http.Client{Timeout: time.Minute}

// send sends part n of f and checks what the store says it received.
func (e *multipartEnv) send(t *testing.T, u store.Upload, n int, f uploadtest.File) store.Part {
	t.Helper()
	p, err := e.put(t, u, n, e.partOf(t, u, n, f))
	require.NoError(t, err, "part %d", n)
	require.Equal(t, n, p.Number)
	require.Equal(t, u.PartSizeOf(n), p.Size)
	requireQuoted(t, p.ETag)
	return p
}

// sendAll sends every part of f, in order, and returns them as Complete
// takes them.
func (e *multipartEnv) sendAll(t *testing.T, u store.Upload, f uploadtest.File) []store.Part {
	t.Helper()
	parts := make([]store.Part, u.PartCount())
	for n := range parts {
		parts[n] = e.send(t, u, n+1, f)
	}
	return parts
}

func requireQuoted(t *testing.T, etag string) {
	t.Helper()
	require.True(t, len(etag) > 2 && strings.HasPrefix(etag, `"`) && strings.HasSuffix(etag, `"`), "ETag %q is not quoted", etag)
}

// requireGone fails t unless every method that takes an ID says the upload
// does not exist.
func (e *multipartEnv) requireGone(t *testing.T, id string, parts []store.Part) {
	t.Helper()
	_, err := e.mp.Upload(t.Context(), id)
	require.ErrorIs(t, err, store.ErrUploadNotFound, "Upload(%q)", id)
	_, err = e.mp.ListParts(t.Context(), id)
	require.ErrorIs(t, err, store.ErrUploadNotFound, "ListParts(%q)", id)
	_, err = e.mp.Complete(t.Context(), id, parts)
	require.ErrorIs(t, err, store.ErrUploadNotFound, "Complete(%q)", id)
	require.ErrorIs(t, e.mp.Abort(t.Context(), id), store.ErrUploadNotFound, "Abort(%q)", id)
	if e.pw != nil {
		_, err = e.pw.PutPart(t.Context(), id, 1, e.spool(t, strings.NewReader("x"), 1))
		require.ErrorIs(t, err, store.ErrUploadNotFound, "PutPart(%q)", id)
	}
}

// requireListed fails t unless List shows exactly names: no upload state
// leaks into it.
func (e *multipartEnv) requireListed(t *testing.T, names ...string) {
	t.Helper()
	require.Equal(t, append([]string{}, names...), append([]string{}, ListAll(t, e.s, "", 0)...))
}

func testCreateAndGet(t *testing.T, e *multipartEnv) {
	f := uploadtest.File{Name: "mp/round trip.bin", Seed: 1, Size: bigSize}
	before := time.Now()
	u := e.create(t, f, f.SHA256())
	require.NotEmpty(t, u.ID)
	assert.Equal(t, url.PathEscape(u.ID), u.ID, "the ID must be URL-safe")
	assert.Equal(t, f.Name, u.Name)
	assert.Equal(t, f.Size, u.Size)
	assert.Equal(t, f.SHA256(), u.SHA256)
	assert.Equal(t, int64(store.MinPartSize), u.PartSize)
	assert.Equal(t, 3, u.PartCount())
	assert.WithinDuration(t, before, u.Created, time.Minute)

	got, err := e.mp.Upload(t.Context(), u.ID)
	require.NoError(t, err)
	assert.Equal(t, u.ID, got.ID)
	assert.Equal(t, u.Name, got.Name)
	assert.Equal(t, u.Size, got.Size)
	assert.Equal(t, u.SHA256, got.SHA256)
	assert.Equal(t, u.PartSize, got.PartSize)
	assert.WithinDuration(t, u.Created, got.Created, time.Second)

	parts, err := e.mp.ListParts(t.Context(), u.ID)
	require.NoError(t, err)
	assert.Empty(t, parts)

	// Two uploads of one name are two uploads; no digest declared stays so.
	other, err := e.mp.CreateUpload(t.Context(), store.Upload{Name: f.Name, Size: 10, PartSize: store.MinPartSize})
	require.NoError(t, err)
	assert.NotEqual(t, u.ID, other.ID)
	got, err = e.mp.Upload(t.Context(), other.ID)
	require.NoError(t, err)
	assert.Empty(t, got.SHA256)
	assert.Equal(t, int64(10), got.Size)

	RequireAbsent(t, e.s, f.Name)
	e.requireListed(t)
	require.NoError(t, e.mp.Abort(t.Context(), u.ID))
	require.NoError(t, e.mp.Abort(t.Context(), other.ID))
}

// testBadDeclarations: a store refuses what store.Upload.Validate refuses,
// with its errors, and creates nothing.
func testBadDeclarations(t *testing.T, e *multipartEnv) {
	ok := store.Upload{Name: "bad.bin", Size: 10, PartSize: store.MinPartSize}
	with := func(f func(*store.Upload)) store.Upload {
		u := ok
		f(&u)
		return u
	}
	for _, tc := range []struct {
		why  string
		u    store.Upload
		want error
	}{
		{"no name", with(func(u *store.Upload) { u.Name = "" }), store.ErrInvalidName},
		{"hidden name", with(func(u *store.Upload) { u.Name = "a/.b" }), store.ErrInvalidName},
		{"no size", with(func(u *store.Upload) { u.Size = 0 }), store.ErrInvalidUpload},
		{"over what parts hold", with(func(u *store.Upload) { u.Size, u.PartSize = store.MaxUploadSize+1, store.MaxPartSize }), store.ErrUploadTooLarge},
		{"no part size", with(func(u *store.Upload) { u.PartSize = 0 }), store.ErrInvalidUpload},
		{"part size over the limit", with(func(u *store.Upload) { u.PartSize = store.MaxPartSize + 1 }), store.ErrInvalidUpload},
		{"too many parts", with(func(u *store.Upload) { u.Size = (store.MaxPartCount + 1) * store.MinPartSize }), store.ErrInvalidUpload},
		{"digest not hex", with(func(u *store.Upload) { u.SHA256 = strings.Repeat("zz", 32) }), store.ErrInvalidUpload},
		{"digest too short", with(func(u *store.Upload) { u.SHA256 = strings.Repeat("a", 63) }), store.ErrInvalidUpload},
	} {
		_, err := e.mp.CreateUpload(t.Context(), tc.u)
		require.ErrorIs(t, err, tc.want, tc.why)
	}
	e.requireListed(t)
}

func testPartChecks(t *testing.T, e *multipartEnv) {
	if e.pw == nil {
		t.Skip("parts go to presigned URLs, which check them themselves")
	}
	f := uploadtest.File{Name: "checks.bin", Seed: 2, Size: store.MinPartSize + 10}
	u := e.create(t, f, "")
	ten := e.spool(t, io.LimitReader(f.Reader(), 10), 10)
	for _, n := range []int{-1, 0, 1, 3} {
		_, err := e.pw.PutPart(t.Context(), u.ID, n, ten)
		require.ErrorIs(t, err, store.ErrUploadMismatch, "part %d", n)
	}
	_, err := e.pw.PutPart(t.Context(), u.ID, 2, e.spool(t, io.LimitReader(f.Reader(), 11), 11))
	require.ErrorIs(t, err, store.ErrUploadMismatch, "a last part one byte long")
	parts, err := e.mp.ListParts(t.Context(), u.ID)
	require.NoError(t, err)
	require.Empty(t, parts, "a refused part must not be kept")

	p, err := e.pw.PutPart(t.Context(), u.ID, 2, ten)
	require.NoError(t, err)
	assert.Equal(t, store.Part{Number: 2, Size: 10, ETag: p.ETag}, p)
	require.NoError(t, e.mp.Abort(t.Context(), u.ID))
}

func testPartsAnyOrderResendComplete(t *testing.T, e *multipartEnv) {
	f := uploadtest.File{Name: "mp/sub/big.bin", Seed: 3, Size: bigSize}
	wrong := uploadtest.File{Seed: 99, Size: bigSize}
	u := e.create(t, f, f.SHA256())

	p3 := e.send(t, u, 3, f)
	p1 := e.send(t, u, 1, f)
	stale := e.send(t, u, 2, wrong)
	p2 := e.send(t, u, 2, f)
	assert.NotEqual(t, stale.ETag, p2.ETag, "the ETag must change with the part's bytes")

	listed, err := e.mp.ListParts(t.Context(), u.ID)
	require.NoError(t, err)
	require.Equal(t, []store.Part{p1, p2, p3}, listed, "ListParts must report each part once, by number, with its latest ETag")
	RequireAbsent(t, e.s, f.Name)
	e.requireListed(t)

	_, err = e.mp.Complete(t.Context(), u.ID, []store.Part{p1, stale, p3})
	require.ErrorIs(t, err, store.ErrUploadMismatch, "the replaced part's ETag is stale")

	done, err := e.mp.Complete(t.Context(), u.ID, []store.Part{p1, p2, p3})
	require.NoError(t, err)
	assert.Equal(t, f.Name, done.Name)
	assert.Equal(t, f.Size, done.Size)
	assert.Equal(t, f.SHA256(), done.SHA256)
	assert.Equal(t, CRC64NVME(f), done.CRC64NVME)
	assert.NotEmpty(t, done.ETag)
	assert.False(t, done.Modified.IsZero())
	RequireStored(t, e.s, f)
	e.requireListed(t, f.Name)
	e.requireGone(t, u.ID, listed)
}

func testMismatchKeepsUpload(t *testing.T, e *multipartEnv) {
	f := uploadtest.File{Name: "mismatch.bin", Seed: 4, Size: bigSize}
	u := e.create(t, f, f.SHA256())
	p1 := e.send(t, u, 1, f)
	p3 := e.send(t, u, 3, f)
	bogus := store.Part{Number: 2, Size: u.PartSizeOf(2), ETag: `"0123456789abcdef0123456789abcdef"`}

	requireMismatch := func(why string, parts ...store.Part) {
		t.Helper()
		_, err := e.mp.Complete(t.Context(), u.ID, parts)
		require.ErrorIs(t, err, store.ErrUploadMismatch, why)
		got, err := e.mp.Upload(t.Context(), u.ID)
		require.NoError(t, err, "%s: the upload must stay", why)
		assert.Equal(t, u.ID, got.ID)
		RequireAbsent(t, e.s, f.Name)
	}
	requireMismatch("no parts")
	requireMismatch("part 2 missing from the list", p1, p3)
	requireMismatch("part 2 never sent", p1, bogus, p3)
	listed, err := e.mp.ListParts(t.Context(), u.ID)
	require.NoError(t, err)
	require.Equal(t, []store.Part{p1, p3}, listed)

	p2 := e.send(t, u, 2, f)
	wrongTag := p2
	wrongTag.ETag = p1.ETag
	extra := store.Part{Number: 4, Size: 1, ETag: p3.ETag}
	requireMismatch("out of order", p2, p1, p3)
	swapped1, swapped2 := p1, p2
	swapped1.Number, swapped2.Number = 2, 1
	requireMismatch("numbers that do not match their ETags", swapped1, swapped2, p3)
	requireMismatch("a part twice", p1, p1, p2, p3)
	requireMismatch("a part the upload does not have", p1, p2, p3, extra)
	requireMismatch("another part's ETag", p1, wrongTag, p3)
	requireMismatch("an ETag that was never issued", p1, p2, store.Part{Number: 3, Size: p3.Size, ETag: bogus.ETag})

	done, err := e.mp.Complete(t.Context(), u.ID, []store.Part{p1, p2, p3})
	require.NoError(t, err, "the upload must still complete")
	assert.Equal(t, f.SHA256(), done.SHA256)
	RequireStored(t, e.s, f)
	e.requireGone(t, u.ID, nil)
}

// testWrongChecksum: bytes whose CRC64NVME is not the declared one are
// refused on every store, and nothing is published. (A wrong SHA-256 alone
// is refused where the store sees the bytes; on S3 it is the client's
// word, reported as declared.)
func testWrongChecksum(t *testing.T, e *multipartEnv) {
	f := uploadtest.File{Name: "checksum.bin", Seed: 5, Size: 300 << 10}
	other := uploadtest.File{Seed: 6, Size: f.Size}
	for name, sha := range map[string]string{"both wrong": other.SHA256(), "crc wrong": f.SHA256(), "crc wrong, no sha256": ""} {
		u := e.createWith(t, f, sha, CRC64NVME(other))
		parts := e.sendAll(t, u, f)
		_, err := e.mp.Complete(t.Context(), u.ID, parts)
		require.ErrorIs(t, err, store.ErrChecksum, name)
		RequireAbsent(t, e.s, f.Name)
		e.requireListed(t)
		e.requireGone(t, u.ID, parts)
	}
}

func testNameTaken(t *testing.T, e *multipartEnv) {
	f := uploadtest.File{Name: "dir/taken.bin", Seed: 7, Size: 200 << 10}
	u := e.create(t, f, f.SHA256())
	parts := e.sendAll(t, u, f)

	first := uploadtest.File{Name: f.Name, Seed: 8, Size: 1000}
	require.NoError(t, e.s.Put(t.Context(), []store.File{{Name: first.Name, Body: Body(t, e.sp, first)}}))
	_, err := e.mp.Complete(t.Context(), u.ID, parts)
	require.ErrorIs(t, err, store.ErrExists)
	RequireStored(t, e.s, first)
	e.requireListed(t, f.Name)
	e.requireGone(t, u.ID, parts)
}

func testAbort(t *testing.T, e *multipartEnv) {
	f := uploadtest.File{Name: "aborted.bin", Seed: 9, Size: bigSize}
	u := e.create(t, f, "")
	p := e.send(t, u, 3, f)
	require.NoError(t, e.mp.Abort(t.Context(), u.ID))
	e.requireGone(t, u.ID, []store.Part{p})
	RequireAbsent(t, e.s, f.Name)
	e.requireListed(t)
}

func testUnknownIDs(t *testing.T, e *multipartEnv) {
	f := uploadtest.File{Name: "real.bin", Seed: 10, Size: 100 << 10}
	u := e.create(t, f, f.SHA256())
	parts := e.sendAll(t, u, f)

	ids := []string{
		"", " ", ".", "..", "/", "../x", "..%2Fx", "%2F", "%2e%2e", "a/b", "a\\b", "x\x00y",
		"/etc/passwd", "\u2215x", strings.Repeat("A", 300), strings.Repeat("A", 5000),
		rand.Text(), // well-formed, never issued
		u.ID + "x", u.ID[:len(u.ID)-1], strings.ToLower(u.ID), " " + u.ID, u.ID + "\n",
		u.ID + "/", u.ID + "/..", "./" + u.ID, "../" + u.ID, u.ID + "/../" + u.ID,
	}
	for _, id := range ids {
		if id != u.ID { // an ID with no letters is its own lower case
			e.requireGone(t, id, parts)
		}
	}

	// None of that touched the real upload.
	listed, err := e.mp.ListParts(t.Context(), u.ID)
	require.NoError(t, err)
	require.Equal(t, parts, listed)
	_, err = e.mp.Complete(t.Context(), u.ID, parts)
	require.NoError(t, err)
	RequireStored(t, e.s, f)
}

func testConcurrentComplete(t *testing.T, e *multipartEnv) {
	f := uploadtest.File{Name: "race.bin", Seed: 11, Size: bigSize}
	u := e.create(t, f, f.SHA256())
	parts := e.sendAll(t, u, f)

	// A losing Complete finds the upload gone, or the name taken.
	race(t, 4, func(int) error {
		_, err := e.mp.Complete(t.Context(), u.ID, parts)
		return err
	}, store.ErrUploadNotFound, store.ErrExists)
	RequireStored(t, e.s, f)
	e.requireListed(t, f.Name)
	e.requireGone(t, u.ID, parts)
}

// Two uploads of one name completing at once: the no-overwrite rule is as
// race-free as Put's.
func testMultipartConcurrentSameName(t *testing.T, e *multipartEnv) {
	const racers = 3
	files := make([]uploadtest.File, racers)
	uploads := make([]store.Upload, racers)
	parts := make([][]store.Part, racers)
	for i := range racers {
		files[i] = uploadtest.File{Name: "same.bin", Seed: uint64(20 + i), Size: 200<<10 + int64(i)}
		uploads[i] = e.create(t, files[i], files[i].SHA256())
		parts[i] = e.sendAll(t, uploads[i], files[i])
	}
	winner := race(t, racers, func(i int) error {
		_, err := e.mp.Complete(t.Context(), uploads[i].ID, parts[i])
		return err
	}, store.ErrExists)
	RequireStored(t, e.s, files[winner])
	e.requireListed(t, "same.bin")
	for i := range racers {
		e.requireGone(t, uploads[i].ID, parts[i])
	}
}
