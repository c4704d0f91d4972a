package writeback

import (
	"os"

	"golang.org/x/sys/unix"
)

// Start asks the kernel to start writing [off, off+n) of f now, without
// waiting for it. Errors are ignored: this is only advice, and the data is
// written either way.
func Start(f *os.File, off, n int64) {
	conn, err := f.SyscallConn()
	if err != nil {
		return
	}
	conn.Control(func(fd uintptr) {
		unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}
