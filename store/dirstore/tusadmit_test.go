package dirstore_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"spillway/internal/uploadtest"
	"spillway/store"
	"spillway/store/dirstore"
)

// tusEnv is newEnv for tests that leave the tus area behind, which
// newEnv's check of the upload area does not expect.
func tusEnv(t *testing.T, opts dirstore.Options) *env {
	t.Helper()
	e := &env{dir: filepath.Join(t.TempDir(), "uploads")}
	var err error
	e.store, _, err = dirstore.Open(e.dir, opts)
	require.NoError(t, err)
	t.Cleanup(func() { e.store.Close() })
	return e
}

// A tus creation takes a place among Options.MaxOpenUploads as a
// multipart one does, and every way a tus upload ends gives it back:
// termination, its last chunk, a refused creation, the sweep.
func TestTusUploadsCountAgainstMaxOpenUploads(t *testing.T) {
	e := tusEnv(t, dirstore.Options{MaxOpenUploads: 3})
	f := uploadtest.File{Name: "open.bin", Seed: 1, Size: 10}
	mp := createUpload(t, e.store, f)
	var ids []string
	for range 2 {
		u, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: "t.bin", Size: 4})
		require.NoError(t, err)
		ids = append(ids, u.ID)
	}
	_, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: "t.bin", Size: 4})
	require.ErrorIs(t, err, store.ErrTooManyUploads)
	_, err = e.store.CreateUpload(t.Context(), store.Upload{Name: f.Name, Size: f.Size, PartSize: store.MinPartSize})
	require.ErrorIs(t, err, store.ErrTooManyUploads)
	entries, err := os.ReadDir(tusDir(e.dir))
	require.NoError(t, err)
	assert.Len(t, entries, 2, "a refused creation leaves nothing")

	require.NoError(t, e.store.Terminate(t.Context(), ids[0]))
	u, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: "done.bin", Size: 4})
	require.NoError(t, err)
	a := appendChunk(t, e.store, u.ID, 0, []byte("abcd"))
	require.NotNil(t, a.Done)
	// Its record stays until it expires, but holds no place.
	u, err = e.store.CreateResumable(t.Context(), store.Resumable{Name: "t.bin", Size: store.UnknownSize})
	require.NoError(t, err)
	ids = append(ids, u.ID)

	// A store opened on these uploads counts the tus ones too.
	s, _, err := dirstore.Open(e.dir, dirstore.Options{MaxOpenUploads: 3})
	require.NoError(t, err)
	defer s.Close()
	_, err = s.CreateResumable(t.Context(), store.Resumable{Name: "t.bin", Size: 4})
	require.ErrorIs(t, err, store.ErrTooManyUploads)

	// Abandoned tus uploads are swept to make room at the bound.
	then := time.Now().Add(-25 * time.Hour)
	ageTree(t, filepath.Join(tusDir(e.dir), ids[1]), then)
	dirstore.ForgetLastSweep(s)
	u, err = s.CreateResumable(t.Context(), store.Resumable{Name: "t.bin", Size: 4})
	require.NoError(t, err)
	for _, id := range []string{ids[2], u.ID} {
		require.NoError(t, s.Terminate(t.Context(), id))
	}
	require.NoError(t, s.Abort(t.Context(), mp.ID))
}

// A tus creation of a known length reserves its space as a multipart one
// does: a length the disk cannot hold is refused at creation, leaving
// nothing; a deferred length is reserved by the PATCH that declares it.
func TestTusCreateReservesSpace(t *testing.T) {
	e := tusEnv(t, dirstore.Options{})
	huge := min(freeBytes(t, e.dir)+1<<30, store.MaxUploadSize)
	_, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: "huge.bin", Size: huge})
	require.ErrorIs(t, err, store.ErrInsufficientStorage)
	if entries, err := os.ReadDir(tusDir(e.dir)); err == nil {
		assert.Empty(t, entries)
	}

	const size = 4 << 20
	u, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: "reserved.bin", Size: size})
	require.NoError(t, err)
	var st unix.Stat_t
	require.NoError(t, unix.Stat(filepath.Join(tusDir(e.dir), u.ID, "data"), &st))
	assert.GreaterOrEqual(t, st.Blocks*512, int64(size), "the upload's blocks are allocated when it is created")
	// A chunk that fails keeps the reservation.
	_, err = e.store.Append(t.Context(), u.ID, store.Chunk{Offset: 0, Size: store.UnknownSize, MaxSize: size,
		Body: bytes.NewReader(make([]byte, size+1))})
	require.ErrorIs(t, err, store.ErrUploadTooLarge)
	require.NoError(t, unix.Stat(filepath.Join(tusDir(e.dir), u.ID, "data"), &st))
	assert.GreaterOrEqual(t, st.Blocks*512, int64(size), "a refused chunk keeps the reservation")
	require.NoError(t, e.store.Terminate(t.Context(), u.ID))

	d, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: "deferred.bin", Size: store.UnknownSize})
	require.NoError(t, err)
	appendChunk(t, e.store, d.ID, 0, []byte("abc"))
	_, err = e.store.Append(t.Context(), d.ID, store.Chunk{Offset: 3, Size: huge, MaxSize: store.MaxUploadSize, Body: bytes.NewReader([]byte("d"))})
	require.ErrorIs(t, err, store.ErrInsufficientStorage)
	got, err := e.store.Resumable(t.Context(), d.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(3), got.Offset, "the refused PATCH stored nothing")
	assert.Equal(t, int64(store.UnknownSize), got.Size)
	_, err = e.store.Append(t.Context(), d.ID, store.Chunk{Offset: 3, Size: size, MaxSize: store.MaxUploadSize, Body: bytes.NewReader([]byte("d"))})
	require.NoError(t, err)
	require.NoError(t, unix.Stat(filepath.Join(tusDir(e.dir), d.ID, "data"), &st))
	assert.GreaterOrEqual(t, st.Blocks*512, int64(size), "the declared length is reserved")
	require.NoError(t, e.store.Terminate(t.Context(), d.ID))
}

// Creating tus uploads does not sweep every time: its cost stays flat as
// open uploads accumulate.
func TestTusCreateDoesNotSweepEachTime(t *testing.T) {
	e := tusEnv(t, dirstore.Options{})
	sweeps := dirstore.CountSweeps(t, e.store)
	var ids []string
	for range 50 {
		u, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: "many.bin", Size: 10})
		require.NoError(t, err)
		ids = append(ids, u.ID)
	}
	assert.Zero(t, sweeps(), "the store swept at Open; the next sweep is due later")
	for _, id := range ids {
		require.NoError(t, e.store.Terminate(t.Context(), id))
	}
}

// Creations refused at the bound do not each walk the upload area: a
// sweep moments ago spares them.
func TestRefusalsAtTheBoundSweepRarely(t *testing.T) {
	e := tusEnv(t, dirstore.Options{MaxOpenUploads: 1})
	u, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: "one.bin", Size: 10})
	require.NoError(t, err)
	sweeps := dirstore.CountSweeps(t, e.store)
	for range 20 {
		_, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: "more.bin", Size: 10})
		require.ErrorIs(t, err, store.ErrTooManyUploads)
		_, err = e.store.CreateUpload(t.Context(), store.Upload{Name: "more.bin", Size: 10, PartSize: store.MinPartSize})
		require.ErrorIs(t, err, store.ErrTooManyUploads)
	}
	assert.Zero(t, sweeps(), "the store swept at Open, moments ago")
	dirstore.ForgetLastSweep(e.store)
	for range 20 {
		_, err := e.store.CreateResumable(t.Context(), store.Resumable{Name: "more.bin", Size: 10})
		require.ErrorIs(t, err, store.ErrTooManyUploads)
	}
	assert.Equal(t, 1, sweeps(), "one sweep at the bound, then none for a while")
	require.NoError(t, e.store.Terminate(t.Context(), u.ID))
}
