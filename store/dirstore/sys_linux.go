package dirstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// linuxSys links open files by descriptor, stages copies in O_TMPFILE
// files, and lists directories with getdents.
type linuxSys struct {
	// proc: /proc/self/fd is there to link from.
	proc bool
	// emptyPathRefused is set once linkat with AT_EMPTY_PATH failed where
	// /proc/self/fd then linked the same file: this process may not link
	// by descriptor alone (see linkFile).
	emptyPathRefused *atomic.Bool
}

func defaultSys() sysOps {
	_, err := os.Stat("/proc/self/fd")
	return linuxSys{proc: err == nil, emptyPathRefused: new(atomic.Bool)}
}

func (l linuxSys) unnamed() bool { return l.proc }

// linkFile links with AT_EMPTY_PATH, which some kernels allow only with
// CAP_DAC_READ_SEARCH (refusing with ENOENT), else through /proc/self/fd,
// which an unprivileged process may link from. AT_EMPTY_PATH comes first,
// as it skips the walk of /proc: once /proc linked a file that it did
// not, it is not tried again. A file with no name left (an unlinked spool
// file) can be linked only if it was made with O_TMPFILE.
func (l linuxSys) linkFile(f *os.File, dirfd int, name string) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var lerr error
	err = conn.Control(func(fd uintptr) {
		tried := !l.proc || !l.emptyPathRefused.Load()
		if tried {
			lerr = unix.Linkat(int(fd), "", dirfd, name, unix.AT_EMPTY_PATH)
			if lerr == nil || !l.proc || lerr != unix.ENOENT && lerr != unix.EPERM {
				return
			}
		}
		proc := "/proc/self/fd/" + strconv.Itoa(int(fd))
		lerr = unix.Linkat(unix.AT_FDCWD, proc, dirfd, name, unix.AT_SYMLINK_FOLLOW)
		if lerr == nil && tried {
			l.emptyPathRefused.Store(true)
		}
	})
	if err != nil {
		return err
	}
	return lerr
}

func (linuxSys) openUnnamed(dirfd int, perm uint32) (int, error) {
	return unix.Openat(dirfd, ".", unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, perm)
}

// umask reads the Umask line of /proc/self/status (Linux 4.7 and later):
// the umask system call could tell it only by changing it, for every
// thread of the process at once.
func (linuxSys) umask() (fs.FileMode, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for line := range bytes.Lines(b) {
		if rest, ok := bytes.CutPrefix(line, []byte("Umask:")); ok {
			m, err := strconv.ParseUint(string(bytes.TrimSpace(rest)), 8, 32)
			return fs.FileMode(m) & fs.ModePerm, err == nil
		}
	}
	return 0, false
}

// dentsSize is the getdents buffer of a listing: a few hundred entries a
// system call.
const dentsSize = 16 << 10

// readDir reads f with getdents, so that an entry is never made a string
// unless fn keeps it.
func (linuxSys) readDir(f *os.File, buf *[]byte, fn func(name []byte, isDir bool)) error {
	if *buf == nil {
		*buf = make([]byte, dentsSize)
	}
	fd := int(f.Fd())
	for {
		nr, err := unix.Getdents(fd, *buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "getdents", Path: f.Name(), Err: err}
		}
		if nr == 0 {
			return nil
		}
		for b := (*buf)[:nr]; len(b) > 0; {
			// struct linux_dirent64: ino, off, reclen, type, name.
			if len(b) < 19 {
				return fmt.Errorf("dirstore: %s: short dirent", f.Name())
			}
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return fmt.Errorf("dirstore: %s: bad dirent length %d", f.Name(), reclen)
			}
			typ, name := b[18], b[19:reclen]
			b = b[reclen:]
			if i := slices.Index(name, 0); i >= 0 {
				name = name[:i]
			}
			if len(name) == 0 || name[0] == '.' {
				continue // ".", "..", and hidden entries: fn skips them anyway, without the stat
			}
			if isDir, ok := direntType(fd, typ, name); ok {
				fn(name, isDir)
			}
		}
	}
}

// direntType tells a directory from a regular file, asking the file system
// when the entry does not say; ok is false for anything else (symlinks
// among them).
func direntType(dirfd int, typ byte, name []byte) (isDir, ok bool) {
	switch typ {
	case unix.DT_DIR:
		return true, true
	case unix.DT_REG:
		return false, true
	case unix.DT_UNKNOWN:
		var st unix.Stat_t
		if unix.Fstatat(dirfd, string(name), &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
			return false, false
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			return true, true
		case unix.S_IFREG:
			return false, true
		}
	}
	return false, false
}

// dirty adds up the Dirty and Writeback lines of /proc/meminfo: the whole
// system's, since Linux does not count them per filesystem.
func (linuxSys) dirty() (int64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	var total int64
	found := 0
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("Dirty:"))
		if !ok {
			rest, ok = bytes.CutPrefix(line, []byte("Writeback:"))
		}
		if !ok {
			continue
		}
		kb, err := strconv.ParseInt(string(bytes.TrimSuffix(bytes.TrimSpace(rest), []byte(" kB"))), 10, 64)
		if err != nil {
			return 0, false
		}
		total += kb << 10
		if found++; found == 2 {
			return total, true
		}
	}
	return 0, false
}

// syncFS calls syncfs, which since Linux 5.8 also reports the
// filesystem's write errors.
func (linuxSys) syncFS(f *os.File) error {
	return fdErr(f, func(fd int) error {
		if err := unix.Syncfs(fd); err != nil {
			return &fs.PathError{Op: "syncfs", Path: f.Name(), Err: err}
		}
		return nil
	})
}

// writebackErr waits for f's writeback with sync_file_range, which reports
// f's own write errors not yet reported through its descriptor: an error
// that an earlier syncfs, of another file's upload, already reported for
// the filesystem and so kept from the one that covered f. With nothing
// left to write it costs no disk access.
func (linuxSys) writebackErr(f *os.File) error {
	return fdErr(f, func(fd int) error {
		const wait = unix.SYNC_FILE_RANGE_WAIT_BEFORE | unix.SYNC_FILE_RANGE_WRITE | unix.SYNC_FILE_RANGE_WAIT_AFTER
		if err := unix.SyncFileRange(fd, 0, 0, wait); err != nil {
			return &fs.PathError{Op: "sync_file_range", Path: f.Name(), Err: err}
		}
		return nil
	})
}

// fdatasync flushes f's bytes and what reading them back needs (its size,
// its blocks), not its times.
func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
