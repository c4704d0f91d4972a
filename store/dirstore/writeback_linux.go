package dirstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// writeBehind is how far a tus upload's dirty pages may run ahead before
// their writeback is started, as the spooler does for its files.
const writeBehind = 8 << 20

// startWriteback asks the kernel to start writing [off, off+n) of f now,
// without waiting: otherwise each chunk's fsync waits for all of its
// bytes, serially with the next chunk's network reads. Only advice, so
// errors are ignored.
func startWriteback(f *os.File, off, n int64) {
	conn, err := f.SyscallConn()
	if err != nil {
		return
	}
	conn.Control(func(fd uintptr) {
		unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}
