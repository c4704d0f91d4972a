package dirstore

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// sysOps is what the store asks of the system beyond POSIX. Linux has fast
// paths for all of it (sys_linux.go); portableSys, used elsewhere, does
// without them, at a cost each method states. Open chooses one, and the
// tests run the conformance suite against both on Linux.
type sysOps interface {
	// unnamed reports whether openUnnamed and linking such a file work.
	unnamed() bool
	// linkFile gives the open file f the name name in the directory dirfd.
	// It goes by the descriptor, never by a path that may lead elsewhere by
	// now, and fails when the system has no way to do that.
	linkFile(f *os.File, dirfd int, name string) error
	// openUnnamed opens a new file for writing in dirfd, with no name,
	// and the permission bits perm less the umask.
	openUnnamed(dirfd int, perm uint32) (int, error)
	// umask returns the process's umask, and whether it could tell
	// without changing it.
	umask() (fs.FileMode, bool)
	// readDir calls fn with each regular file and directory in f, in
	// batches that keep memory bounded in a directory of any size; buf is
	// the caller's to reuse between calls.
	readDir(f *os.File, buf *[]byte, fn func(name []byte, isDir bool)) error
	// dirty reports how many bytes the system has yet to write to its
	// disks, and whether it could tell.
	dirty() (int64, bool)
	// syncFS makes every file's bytes and metadata on the filesystem
	// holding f durable, as one fsync of each would.
	syncFS(f *os.File) error
	// writebackErr reports a failure to write f's bytes that no call on f
	// has reported yet, once syncFS has written them.
	writebackErr(f *os.File) error
}

// portableSys does without Linux's fast paths:
//
//   - linkFile fails, so a spooled body is copied, from the spooler's open
//     descriptor, into a new staging file made with O_EXCL in the
//     destination directory (stageCopy): every disk body is written twice,
//     once to the spool and once to the store, unless the spool is
//     already gone. Linking the spool file by its name instead would publish
//     whatever that name leads to by now, which someone else may have
//     replaced.
//   - openUnnamed fails, so copies are staged under a hidden name, locked
//     for the sweep, and linked or renamed into place: two more directory
//     operations per file, and a name for the sweep to remove after a
//     crash.
//   - readDir goes through os.File.ReadDir, which makes a string of every
//     name it reads.
//   - dirty cannot tell, so concurrent durable uploads fsync each file on
//     its own instead of sharing one syncFS (see Store.syncData).
type portableSys struct{}

// errNoFastPath is what portableSys's fast paths fail with.
var errNoFastPath = fmt.Errorf("dirstore: %w on this system", errors.ErrUnsupported)

func (portableSys) unnamed() bool                        { return false }
func (portableSys) linkFile(*os.File, int, string) error { return errNoFastPath }
func (portableSys) openUnnamed(int, uint32) (int, error) { return -1, errNoFastPath }
func (portableSys) umask() (fs.FileMode, bool)           { return 0, false }
func (portableSys) dirty() (int64, bool)                 { return 0, false }
func (portableSys) syncFS(*os.File) error                { return errNoFastPath }
func (portableSys) writebackErr(*os.File) error          { return errNoFastPath }

// readDirBatch is how many entries portableSys.readDir reads at a time.
const readDirBatch = 256

func (portableSys) readDir(f *os.File, _ *[]byte, fn func(name []byte, isDir bool)) error {
	for {
		entries, err := f.ReadDir(readDirBatch)
		for _, e := range entries {
			// The type comes from the entry or, when it does not say, from
			// an lstat: a symlink is neither, and skipped.
			switch t := e.Type(); {
			case t.IsDir():
				fn([]byte(e.Name()), true)
			case t.IsRegular():
				fn([]byte(e.Name()), false)
			}
		}
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return &fs.PathError{Op: "readdir", Path: f.Name(), Err: err}
		}
	}
}

// fdErr runs op on f's descriptor.
func fdErr(f *os.File, op func(fd int) error) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var operr error
	if err := conn.Control(func(fd uintptr) { operr = op(int(fd)) }); err != nil {
		return err
	}
	return operr
}
