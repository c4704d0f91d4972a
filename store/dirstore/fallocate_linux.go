package dirstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// reservesSpace says that fallocate reserves an upload's blocks at its
// creation (store.Caps.ReservesUploads).
const reservesSpace = true

// fallocate gives f the blocks for size bytes.
func fallocate(f *os.File, size int64) error {
	return unix.Fallocate(int(f.Fd()), 0, 0, size)
}
