package client

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkHashFileCold is the same with the file out of the page cache,
// read from the disk, as a file a user pushes usually is.
func BenchmarkHashFileCold(b *testing.B) {
	const size = 256 << 20
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
	defer f.Close()
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	for b.Loop() {
		b.StopTimer()
		if err := unix.Fadvise(int(f.Fd()), 0, size, unix.FADV_DONTNEED); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, _, _, err := hashFile(context.Background(), f, size, 16<<20, &reporter{}); err != nil {
			b.Fatal(err)
		}
	}
}
