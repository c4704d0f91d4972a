package dirstore_test

import (
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/store"
	"spillway/store/dirstore"
)

// BenchmarkTusAppend appends 256 MiB in one chunk: the directory store's
// own cost of a tus upload, without the network.
func BenchmarkTusAppend(b *testing.B) {
	const size = 256 << 20
	b.SetBytes(size)
	for b.Loop() {
		s, _, err := dirstore.Open(b.TempDir(), dirstore.Options{Fsync: true})
		require.NoError(b, err)
		u, err := s.CreateResumable(b.Context(), store.Resumable{Name: "b.bin", Size: size})
		require.NoError(b, err)
		f := uploadtest.File{Name: "b.bin", Size: size, Seed: 1}
		_, err = s.Append(b.Context(), u.ID, store.Chunk{Offset: 0, Size: store.UnknownSize, Body: struct{ io.Reader }{f.Reader()}, MaxSize: size})
		require.NoError(b, err)
		s.Close()
	}
}
