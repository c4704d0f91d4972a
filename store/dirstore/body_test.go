package dirstore_test

import (
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/minio/crc64nvme"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/store"
	"spillway/store/dirstore"
	"spillway/store/storetest"
)

// fileBody is a store.FileBody of the test's own, in a file it made.
type fileBody struct {
	f       *os.File
	size    int64
	sum     [sha256.Size]byte
	crc     uint64
	dropped int
}

func newFileBody(t *testing.T, f uploadtest.File) *fileBody {
	t.Helper()
	file, err := os.CreateTemp(t.TempDir(), "body-*")
	require.NoError(t, err)
	t.Cleanup(func() { file.Close() })
	data := f.Bytes()
	_, err = file.Write(data)
	require.NoError(t, err)
	return &fileBody{f: file, size: f.Size, sum: sha256.Sum256(data), crc: crc64nvme.Checksum(data)}
}

func (b *fileBody) Size() int64               { return b.size }
func (b *fileBody) SHA256() [sha256.Size]byte { return b.sum }
func (b *fileBody) CRC64NVME() uint64         { return b.crc }
func (b *fileBody) Reader() *io.SectionReader { return io.NewSectionReader(b.f, 0, b.size) }
func (b *fileBody) File() *os.File            { return b.f }
func (b *fileBody) DropName() error           { b.dropped++; return nil }

// The link fast path is the store.FileBody's, not the spooler's: any body
// with a file is linked by its descriptor, its name dropped first; a body
// without one is copied.
func TestAnyFileBodyIsLinked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		open   func(string, dirstore.Options) (*dirstore.Store, int, error)
		linked bool
	}{
		{"linux", dirstore.Open, true},
		{"portable", dirstore.OpenPortable, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnvWith(t, dirstore.Options{}, tc.open)
			withFile := uploadtest.File{Name: "file.bin", Seed: 1, Size: 1 << 20}
			fb := newFileBody(t, withFile)
			inMemory := uploadtest.File{Name: "mem.bin", Seed: 2, Size: 3<<20 + 1}
			require.NoError(t, e.store.Put(t.Context(), []store.File{
				{Name: withFile.Name, Body: fb},
				{Name: inMemory.Name, Body: storetest.MemBody(inMemory)},
			}))
			storetest.RequireStored(t, e.store, withFile)
			storetest.RequireStored(t, e.store, inMemory)

			src, err := fb.f.Stat()
			require.NoError(t, err)
			stored, err := os.Stat(filepath.Join(e.dir, withFile.Name))
			require.NoError(t, err)
			assert.Equal(t, tc.linked, os.SameFile(src, stored), "linked")
			assert.Equal(t, map[bool]int{true: 1, false: 0}[tc.linked], fb.dropped, "DropName calls")
			assert.Equal(t, os.FileMode(0o644), stored.Mode().Perm())

			// A part is written into the upload's file, which stays 0600
			// until completion links it into place with the store's mode.
			part := uploadtest.File{Name: "parts.bin", Seed: 3, Size: 100}
			u, err := e.store.CreateUpload(t.Context(), store.Upload{Name: part.Name, Size: part.Size, PartSize: part.Size})
			require.NoError(t, err)
			pb := newFileBody(t, part)
			p, err := e.store.PutPart(t.Context(), u.ID, 1, pb)
			require.NoError(t, err)
			data, err := os.Stat(filepath.Join(e.dir, ".spillway-uploads", u.ID, "data"))
			require.NoError(t, err)
			assert.Equal(t, os.FileMode(0o600), data.Mode().Perm())
			assert.Equal(t, 0, pb.dropped, "a part keeps the body's name")
			_, err = e.store.Complete(t.Context(), u.ID, []store.Part{p})
			require.NoError(t, err)
			storetest.RequireStored(t, e.store, part)
			done, err := os.Stat(filepath.Join(e.dir, part.Name))
			require.NoError(t, err)
			assert.True(t, os.SameFile(data, done), "completion links the upload's file")
			assert.Equal(t, os.FileMode(0o644), done.Mode().Perm())

			u, err = e.store.CreateUpload(t.Context(), store.Upload{Name: "mem-parts.bin", Size: part.Size, PartSize: part.Size})
			require.NoError(t, err)
			p, err = e.store.PutPart(t.Context(), u.ID, 1, storetest.MemBody(part))
			require.NoError(t, err)
			_, err = e.store.Complete(t.Context(), u.ID, []store.Part{p})
			require.NoError(t, err)
			part.Name = "mem-parts.bin"
			storetest.RequireStored(t, e.store, part)
		})
	}
}
