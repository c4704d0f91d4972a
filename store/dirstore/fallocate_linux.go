package dirstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// fallocate gives f the blocks for size bytes.
func fallocate(f *os.File, size int64) error {
	return unix.Fallocate(int(f.Fd()), 0, 0, size)
}
