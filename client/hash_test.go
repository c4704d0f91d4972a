package client

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/minio/crc64nvme"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func crcOf(b []byte) string {
	h := crc64nvme.New()
	h.Write(b)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// TestHashFile checks the read-ahead's cut: a file of several read
// buffers and parts, neither a multiple of the other nor of the file.
func TestHashFile(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	const size, partSize = 5*hashChunk + 3, 2*hashChunk + 5
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 31)
	}
	path := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()

	var seen []int64
	rep := &reporter{fn: func(p Progress) { seen = append(seen, p.Bytes) }}
	sum, crc, parts, err := hashFile(t.Context(), f, size, partSize, rep)
	require.NoError(t, err)
	want := sha256.Sum256(data)
	assert.Equal(t, hex.EncodeToString(want[:]), sum)
	assert.Equal(t, crcOf(data), crc)
	assert.Equal(t, []string{crcOf(data[:partSize]), crcOf(data[partSize : 2*partSize]), crcOf(data[2*partSize:])}, parts)
	assert.Equal(t, int64(size), seen[len(seen)-1])
}

// TestHashFileFailures checks that a file that shrinks under the hash and
// a cancelled hash both end it, leaving no goroutine behind.
func TestHashFileFailures(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(path, make([]byte, 3*hashChunk), 0o600))
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()

	_, _, _, err = hashFile(t.Context(), f, 8*hashChunk, 0, &reporter{})
	assert.ErrorContains(t, err, "it changed while being read")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, _, _, err = hashFile(ctx, f, 3*hashChunk, 0, &reporter{})
	assert.ErrorIs(t, err, context.Canceled)
}

// BenchmarkHashFile is the hash pass of a multipart push, a file in the
// page cache, 16 MiB parts.
func BenchmarkHashFile(b *testing.B) {
	const size = 256 << 20
	f := benchFile(b, size)
	b.SetBytes(size)
	for b.Loop() {
		if _, _, _, err := hashFile(context.Background(), f, size, 16<<20, &reporter{}); err != nil {
			b.Fatal(err)
		}
	}
}

// benchFile is a file of size bytes for the hash benchmarks, closed when
// b ends.
func benchFile(b *testing.B, size int) *os.File {
	path := filepath.Join(b.TempDir(), "f")
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { f.Close() })
	return f
}
