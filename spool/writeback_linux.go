package spool

import (
	"os"

	"golang.org/x/sys/unix"
)

// writeBehind is how far a disk body's dirty pages may run ahead before
// their writeback is started.
const writeBehind = 8 << 20

// startWriteback asks the kernel to start writing [off, off+n) of f to disk
// now, without waiting for it, for a spooler with Config.WriteBehind. A
// large body that will be fsynced otherwise piles up gigabytes of
// dirty pages until the kernel throttles the writer hard (balance_dirty_pages),
// which halved the rate of 4 GiB uploads on loopback, and leaves all of it
// for a durable store's fsync to wait for. Errors are ignored: this is only
// advice, and the data is written either way.
func startWriteback(f *os.File, off, n int64) {
	conn, err := f.SyscallConn()
	if err != nil {
		return
	}
	conn.Control(func(fd uintptr) {
		unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}
