package dirstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/store"
)

// tusFixture is an upload of "0123456789ab" that has taken "0123" and
// "4567": progress holds record 1 (offset 4) in slot 1 and record 2
// (offset 8) in slot 0.
func tusFixture(t *testing.T) (s *Store, id, progress string) {
	t.Helper()
	dir := t.TempDir()
	s, _, err := Open(dir, Options{Fsync: true})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	u, err := s.CreateResumable(t.Context(), store.Resumable{Name: "p.bin", Size: 12})
	require.NoError(t, err)
	appendTo(t, s, u.ID, 0, "0123")
	appendTo(t, s, u.ID, 4, "4567")
	return s, u.ID, filepath.Join(dir, tusDir, u.ID, tusProgressName)
}

func appendTo(t *testing.T, s *Store, id string, off int64, b string) store.Appended {
	t.Helper()
	a, err := s.Append(t.Context(), id, store.Chunk{Offset: off, Size: store.UnknownSize, Body: bytes.NewReader([]byte(b)), MaxSize: 1 << 20})
	require.NoError(t, err)
	return a
}

// finishFrom checks that the upload resumes at off and that what it
// publishes, the rest of the file from there, has the whole file's digest.
func finishFrom(t *testing.T, s *Store, id string, off int64) {
	t.Helper()
	const whole = "0123456789ab"
	got, err := s.Resumable(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, off, got.Offset)
	a := appendTo(t, s, id, off, whole[off:])
	require.NotNil(t, a.Done)
	sum := sha256.Sum256([]byte(whole))
	assert.Equal(t, hex.EncodeToString(sum[:]), a.Done.SHA256)
	b, err := os.ReadFile(filepath.Join(s.root.Name(), "p.bin"))
	require.NoError(t, err)
	assert.Equal(t, whole, string(b))
}

// writeAt writes b into the file at off, as a write cut short by a crash
// would have left it.
func writeAt(t *testing.T, name string, b []byte, off int64) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// A chunk's progress is written in place: state.json is the one written
// at creation, and no other file appears beside it.
func TestTusChunkWritesItsProgressInPlace(t *testing.T) {
	s, id, progress := tusFixture(t)
	dir := filepath.Dir(progress)
	inode := func(name string) uint64 {
		fi, err := os.Stat(filepath.Join(dir, name))
		require.NoError(t, err)
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	state, prog := inode(tusStateName), inode(tusProgressName)
	appendTo(t, s, id, 8, "89")
	assert.Equal(t, state, inode(tusStateName), "state.json was replaced")
	assert.Equal(t, prog, inode(tusProgressName), "progress was replaced")
	fi, err := os.Stat(progress)
	require.NoError(t, err)
	assert.Equal(t, int64(2*progressSlot), fi.Size())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	assert.ElementsMatch(t, []string{tusStateName, tusProgressName, tusDataName}, names)
	finishFrom(t, s, id, 10)
}

// A crash while a record is written leaves that slot torn or short; the
// other slot still has the chunk before, and the upload resumes from it
// with the hashes of exactly those bytes. A torn newest record falls back
// to the one before it, and no whole record at all to state.json, the
// upload's offset at creation.
func TestTusTornProgressFallsBackToAWholeRecord(t *testing.T) {
	// The first bytes of a record 3 claiming the whole file.
	lie := tusState{seq: 3, Offset: 12, Size: 12, SHA256: make([]byte, 108), CRC64: make([]byte, 20)}
	rec, err := encodeProgress(&lie)
	require.NoError(t, err)
	for _, tc := range []struct {
		name string
		tear func(t *testing.T, progress string)
		want int64
	}{
		{"record 3 torn in slot 1", func(t *testing.T, p string) { writeAt(t, p, rec[:100], progressSlot) }, 8},
		{"record 3 whole but for its last byte", func(t *testing.T, p string) {
			writeAt(t, p, rec[:progressSlot-1], progressSlot)
		}, 8},
		{"slot 1 cut short", func(t *testing.T, p string) { require.NoError(t, os.Truncate(p, progressSlot+100)) }, 8},
		{"record 2 torn in slot 0", func(t *testing.T, p string) { writeAt(t, p, rec[:100], 0) }, 4},
		{"a bit of record 2 flipped", func(t *testing.T, p string) { writeAt(t, p, []byte{0xff}, 13) }, 4},
		{"both slots torn", func(t *testing.T, p string) {
			writeAt(t, p, rec[:100], 0)
			writeAt(t, p, rec[:100], progressSlot)
		}, 0},
		{"empty", func(t *testing.T, p string) { require.NoError(t, os.Truncate(p, 0)) }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, id, progress := tusFixture(t)
			tc.tear(t, progress)
			finishFrom(t, s, id, tc.want)
		})
	}
}

// An upload created before progress was kept has its offset and hash
// states in state.json, and no progress: it resumes from there, and its
// next chunk starts a progress file.
func TestTusUploadWithoutProgressResumes(t *testing.T) {
	s, id, progress := tusFixture(t)
	u, err := s.openTus(id)
	require.NoError(t, err)
	st := u.st
	st.seq = 0
	require.NoError(t, s.writeTusState(u.dir, &st))
	u.close()
	require.NoError(t, os.Remove(progress))

	got, err := s.Resumable(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, int64(8), got.Offset)
	appendTo(t, s, id, 8, "8")
	require.FileExists(t, progress)
	finishFrom(t, s, id, 9)
}
