package dirstore_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/store"
	"spillway/store/dirstore"
)

func tusDir(dir string) string { return filepath.Join(dir, ".spillway-uploads", "tus") }

func appendChunk(t *testing.T, s *dirstore.Store, id string, off int64, b []byte) store.Appended {
	t.Helper()
	a, err := s.Append(t.Context(), id, store.Chunk{Offset: off, Size: store.UnknownSize, Body: bytes.NewReader(b), MaxSize: 1 << 30})
	require.NoError(t, err)
	return a
}

// A restarted server (the store opened again on the same directory)
// resumes an upload from the offset of its last whole chunk, with its
// running hashes, and the stored file's digest covers every byte.
func TestTusResumesAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	s, _, err := dirstore.Open(dir, dirstore.Options{Fsync: true})
	require.NoError(t, err)
	u, err := s.CreateResumable(t.Context(), store.Resumable{Name: "r.bin", Size: 10})
	require.NoError(t, err)
	appendChunk(t, s, u.ID, 0, []byte("01234"))
	// A chunk cut off mid-way, as by a crash: bytes past the offset are
	// not counted.
	_, err = s.Append(t.Context(), u.ID, store.Chunk{Offset: 5, Size: store.UnknownSize, MaxSize: 10,
		Body: io.MultiReader(bytes.NewReader([]byte("xy")), errReader{})})
	require.Error(t, err)
	require.NoError(t, s.Close())

	s, _, err = dirstore.Open(dir, dirstore.Options{Fsync: true})
	require.NoError(t, err)
	defer s.Close()
	got, err := s.Resumable(t.Context(), u.ID)
	require.NoError(t, err)
	assert.Equal(t, int64(5), got.Offset)
	a := appendChunk(t, s, u.ID, 5, []byte("56789"))
	require.NotNil(t, a.Done)
	sum := sha256.Sum256([]byte("0123456789"))
	assert.Equal(t, hex.EncodeToString(sum[:]), a.Done.SHA256)
	// The CRC-64/NVME of "0123456789", as S3 reports it.
	assert.Len(t, a.Done.CRC64NVME, 12)
	b, err := os.ReadFile(filepath.Join(dir, "r.bin"))
	require.NoError(t, err)
	assert.Equal(t, "0123456789", string(b))
	// Only the finished upload's record is left: no bytes of its own.
	entries, err := os.ReadDir(filepath.Join(tusDir(dir), u.ID))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, "state.json", entries[0].Name())
}

// A finished upload is known until it expires: Resumable says what it
// became, an empty chunk at its end gets the same answer and writes
// nothing, and the sweep removes the record once it is idle past the TTL,
// not the file.
func TestTusFinishedUploadIsKeptUntilItExpires(t *testing.T) {
	dir := t.TempDir()
	opts := dirstore.Options{UploadTTL: time.Hour, Fsync: true}
	s, _, err := dirstore.Open(dir, opts)
	require.NoError(t, err)
	u, err := s.CreateResumable(t.Context(), store.Resumable{Name: "f.bin", Size: 4})
	require.NoError(t, err)
	a := appendChunk(t, s, u.ID, 0, []byte("abcd"))
	require.NotNil(t, a.Done)

	got, err := s.Resumable(t.Context(), u.ID)
	require.NoError(t, err)
	require.NotNil(t, got.Done)
	assert.Equal(t, int64(4), got.Offset)
	assert.Equal(t, a.Done.SHA256, got.Done.SHA256)
	assert.Equal(t, a.Done.CRC64NVME, got.Done.CRC64NVME)
	assert.Equal(t, "f.bin", got.Done.Name)
	again := appendChunk(t, s, u.ID, 4, nil)
	require.NotNil(t, again.Done)
	assert.Equal(t, a.Done.SHA256, again.Done.SHA256)
	_, err = s.Append(t.Context(), u.ID, store.Chunk{Offset: 4, Size: store.UnknownSize, Body: bytes.NewReader([]byte("e")), MaxSize: 1 << 30})
	require.ErrorIs(t, err, store.ErrUploadTooLarge)
	_, err = s.Append(t.Context(), u.ID, store.Chunk{Offset: 0, Size: store.UnknownSize, Body: bytes.NewReader([]byte("wxyz")), MaxSize: 1 << 30})
	require.ErrorIs(t, err, store.ErrOffsetMismatch)
	b, err := os.ReadFile(filepath.Join(dir, "f.bin"))
	require.NoError(t, err)
	assert.Equal(t, "abcd", string(b))
	require.NoError(t, s.Close())

	then := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(filepath.Join(tusDir(dir), u.ID, "state.json"), then, then))
	s, removed, err := dirstore.Open(dir, opts)
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, 1, removed)
	_, err = s.Resumable(t.Context(), u.ID)
	require.ErrorIs(t, err, store.ErrUploadNotFound)
	b, err = os.ReadFile(filepath.Join(dir, "f.bin"))
	require.NoError(t, err)
	assert.Equal(t, "abcd", string(b))
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// The sweep of abandoned uploads removes tus uploads idle past the TTL,
// and leaves the others.
func TestTusSweep(t *testing.T) {
	dir := t.TempDir()
	opts := dirstore.Options{UploadTTL: time.Hour}
	s, _, err := dirstore.Open(dir, opts)
	require.NoError(t, err)
	old, err := s.CreateResumable(t.Context(), store.Resumable{Name: "old.bin", Size: 10})
	require.NoError(t, err)
	fresh, err := s.CreateResumable(t.Context(), store.Resumable{Name: "fresh.bin", Size: 10})
	require.NoError(t, err)
	appendChunk(t, s, old.ID, 0, []byte("abc"))
	require.NoError(t, s.Close())
	then := time.Now().Add(-2 * time.Hour)
	// Idle since then: its state and its progress last written then.
	for _, name := range []string{"state.json", "progress"} {
		require.NoError(t, os.Chtimes(filepath.Join(tusDir(dir), old.ID, name), then, then))
	}

	s, removed, err := dirstore.Open(dir, opts)
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, 1, removed)
	_, err = s.Resumable(t.Context(), old.ID)
	require.ErrorIs(t, err, store.ErrUploadNotFound)
	_, err = s.Resumable(t.Context(), fresh.ID)
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(tusDir(dir), old.ID))
	require.True(t, os.IsNotExist(err))
}

func TestTusTerminate(t *testing.T) {
	dir := t.TempDir()
	s, _, err := dirstore.Open(dir, dirstore.Options{})
	require.NoError(t, err)
	defer s.Close()
	u, err := s.CreateResumable(t.Context(), store.Resumable{Name: "t.bin", Size: 10})
	require.NoError(t, err)
	appendChunk(t, s, u.ID, 0, []byte("abc"))
	require.NoError(t, s.Terminate(t.Context(), u.ID))
	require.ErrorIs(t, s.Terminate(t.Context(), u.ID), store.ErrUploadNotFound)
	_, err = s.Append(t.Context(), u.ID, store.Chunk{Offset: 3, Size: store.UnknownSize, Body: bytes.NewReader(nil)})
	require.ErrorIs(t, err, store.ErrUploadNotFound)
	entries, err := os.ReadDir(tusDir(dir))
	require.NoError(t, err)
	assert.Empty(t, entries)
}

// unreadReader fails the test that reads it: a body that must stay unread.
type unreadReader struct{ t *testing.T }

func (r unreadReader) Read([]byte) (int, error) {
	r.t.Error("the body of a chunk refused by its Admit was read")
	return 0, io.EOF
}

// Append gives a chunk's Admit the upload's state, as it is once the
// upload is held, before it reads any of the body; Admit's refusal is
// Append's error, and comes first also while another Append holds the
// upload, which is ErrLocked to a chunk Admit accepts.
func TestTusAppendAdmitsTheChunkFirst(t *testing.T) {
	s, _, err := dirstore.Open(t.TempDir(), dirstore.Options{})
	require.NoError(t, err)
	defer s.Close()
	u, err := s.CreateResumable(t.Context(), store.Resumable{Name: "a.bin", Size: 8})
	require.NoError(t, err)
	appendChunk(t, s, u.ID, 0, []byte("0123"))
	refused := errors.New("refused")
	var seen store.Resumable
	refuse := func(r store.Resumable) error { seen = r; return refused }
	chunk := func(body io.Reader, admit func(store.Resumable) error) store.Chunk {
		return store.Chunk{Offset: 4, Size: store.UnknownSize, Body: body, MaxSize: 8, Admit: admit}
	}

	_, err = s.Append(t.Context(), u.ID, chunk(unreadReader{t}, refuse))
	require.ErrorIs(t, err, refused)
	assert.Equal(t, u.ID, seen.ID)
	assert.Equal(t, int64(4), seen.Offset)
	assert.Equal(t, int64(8), seen.Size)

	// Its Admit runs while the first Append holds the upload, which
	// then waits for the rest of its body.
	pr, pw := io.Pipe()
	defer pr.Close() // a writer left blocked by a failure is let go
	held := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		_, err := s.Append(t.Context(), u.ID, chunk(pr, func(store.Resumable) error { close(held); return nil }))
		first <- err
	}()
	select {
	case <-held:
	case err := <-first:
		require.FailNow(t, "the first Append ended before it held the upload", "%v", err)
	}
	_, err = s.Append(t.Context(), u.ID, chunk(unreadReader{t}, refuse))
	require.ErrorIs(t, err, refused)
	assert.Equal(t, int64(4), seen.Offset)
	_, err = s.Append(t.Context(), u.ID, chunk(unreadReader{t}, func(store.Resumable) error { return nil }))
	require.ErrorIs(t, err, store.ErrLocked)
	go func() {
		pw.Write([]byte("4567"))
		pw.Close()
	}()
	require.NoError(t, <-first)

	// A finished upload's record is what a chunk sent again is admitted by.
	_, err = s.Append(t.Context(), u.ID, store.Chunk{Offset: 8, Size: store.UnknownSize, Body: bytes.NewReader(nil), Admit: refuse})
	require.ErrorIs(t, err, refused)
	require.NotNil(t, seen.Done)
	assert.Equal(t, int64(8), seen.Offset)
}
