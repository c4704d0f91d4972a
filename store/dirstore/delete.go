package dirstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"syscall"

	"golang.org/x/sys/unix"

	"spillway/store"
)

// Delete implements store.Store. A name that is a folder, or leads
// through a file, is not a file: store.ErrNotFound, and nothing is
// removed. A download that has the file open keeps reading the bytes it
// opened: unlinking drops the name, not the inode.
//
// Folders exist only to hold files, so the folders that the file leaves
// empty are removed with it, deepest first; otherwise a deleted "a/b/x"
// would keep "a/b" from ever being stored as a file, and listings would
// walk folders that hold nothing. Each is removed with rmdir, which
// refuses a folder that is not empty, so a folder another upload has
// already put its staging file in stays; an upload that found the folder
// but has no entry in it yet makes it again (staged.inDir), as it does
// when a failed upload removes the folders it made. Unless names are
// case-sensitive, each entry is removed under its folder's lock, the one
// that publishing a file and making a folder take (fold.go), so that a
// case-twin check never sees a half-done delete.
func (s *Store) Delete(_ context.Context, name string) error {
	return s.remove(name, nil)
}

// remove is Delete. When check is set, it is called with the file's
// status under its folder's lock, right before the unlink, and an error
// from it keeps the file.
func (s *Store) remove(name string, check func(*unix.Stat_t) error) error {
	if err := store.ValidateName(name); err != nil {
		return err
	}
	dirName, base := path.Split(name)
	dirName = path.Clean(dirName)
	dir, err := s.openFolder(dirName)
	if err != nil {
		return deleteError(name, err)
	}
	defer s.closeFolder(dir)
	var st unix.Stat_t
	if err := unix.Fstatat(int(dir.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return deleteError(name, &fs.PathError{Op: "stat", Path: name, Err: err})
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%w: %q is not a file", store.ErrNotFound, name)
	}
	var recheck func() error
	if check != nil {
		recheck = func() error {
			if err := unix.Fstatat(int(dir.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
			return check(&st)
		}
	}
	if err := s.unlinkLocked(dir, base, 0, recheck); err != nil {
		if errors.Is(err, errKept) {
			return err
		}
		return deleteError(name, &fs.PathError{Op: "unlink", Path: name, Err: err})
	}
	// The entry that changed last is in synced: the folder the file was
	// in, or the parent of the last folder removed.
	synced := dirName
	for d := dirName; d != "."; d = path.Dir(d) {
		parent, err := s.root.Open(path.Dir(d))
		if err != nil {
			break
		}
		err = s.unlinkLocked(parent, path.Base(d), unix.AT_REMOVEDIR, nil)
		parent.Close()
		if err != nil {
			// ENOTEMPTY or EEXIST: another file is in it, or on its way
			// in. ENOENT: another delete removed it first.
			break
		}
		synced = path.Dir(d)
	}
	if s.opts.Fsync {
		if err := s.syncDir(synced); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return nil
}

// unlinkLocked removes the entry base of dir, as unlinkat with flags,
// under dir's lock unless names are case-sensitive, if check, when set,
// allows it then.
func (s *Store) unlinkLocked(dir *os.File, base string, flags int, check func() error) error {
	unlink := func() error {
		if check != nil {
			if err := check(); err != nil {
				return err
			}
		}
		return unix.Unlinkat(int(dir.Fd()), base, flags)
	}
	if s.opts.CaseSensitiveNames {
		return unlink()
	}
	h, err := s.folds.hold(int(dir.Fd()))
	if err != nil {
		return err
	}
	defer h.unlock()
	h.load()
	if err := unlink(); err != nil {
		return err
	}
	h.changed("", base)
	return nil
}

// deleteError maps a failed delete: whatever says there is no file under
// the name (no such entry, a folder on the way that is a file, a folder
// where the file would be) is store.ErrNotFound.
func deleteError(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.EISDIR) {
		return fmt.Errorf("%w: %q", store.ErrNotFound, name)
	}
	return mapError(name, err)
}
