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
	// openUnnamed opens a new file for writing in dirfd, with no name.
	openUnnamed(dirfd int) (int, error)
	// readDir calls fn with each regular file and directory in f, in
	// batches that keep memory bounded in a directory of any size; buf is
	// the caller's to reuse between calls.
	readDir(f *os.File, buf *[]byte, fn func(name []byte, isDir bool)) error
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
type portableSys struct{}

// errNoFastPath is what portableSys's fast paths fail with.
var errNoFastPath = fmt.Errorf("dirstore: %w on this system", errors.ErrUnsupported)

func (portableSys) unnamed() bool                        { return false }
func (portableSys) linkFile(*os.File, int, string) error { return errNoFastPath }
func (portableSys) openUnnamed(int) (int, error)         { return -1, errNoFastPath }

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
