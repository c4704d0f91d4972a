package client

import (
	"context"
	"testing"

	"golang.org/x/sys/unix"
)

// BenchmarkHashFileCold is the same with the file out of the page cache,
// read from the disk, as a file a user pushes usually is.
func BenchmarkHashFileCold(b *testing.B) {
	const size = 256 << 20
	f := benchFile(b, size)
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
