package dirstore

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"spillway/store"
)

// Windows and macOS compare names without regard to case: "Readme.TXT"
// and "readme.txt" are one file there, and a folder holding both cannot be
// copied onto them whole. Unless Options.CaseSensitiveNames is set, a name
// whose case fold equals another name's in the same folder (files and
// folders alike) is refused with store.ErrExists. The fold is Unicode's
// simple case folding (strings.EqualFold), as NTFS compares names with a
// table of one-to-one upper-case mappings: "été" and "ÉTÉ" are twins,
// "Straße" and "STRASSE" are not. Names are NFC (store.ValidateName), so
// two spellings of one character cannot pass for two names either.
//
// Check looks before the body is read. The publish itself checks again
// under an exclusive flock on the folder, held from the check to the link,
// so that two uploads racing with twin names cannot both land: every
// commit into a folder takes the same lock, and so does making a folder.

// twinIn returns a name in the directory dirfd, other than base and
// other than a hidden one, whose case fold equals base's; "" if none.
func twinIn(dirfd int, base string) (string, error) {
	fd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("open folder: %w", err)
	}
	d := os.NewFile(uintptr(fd), base)
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return "", fmt.Errorf("read folder: %w", err)
	}
	for _, n := range names {
		if n != base && !strings.HasPrefix(n, ".") && strings.EqualFold(n, base) {
			return n, nil
		}
	}
	return "", nil
}

func twinError(name, twin string) error {
	return fmt.Errorf("%w: %q differs only in case from %q in the same folder", store.ErrExists, name, twin)
}

// checkTwins looks for a twin of each segment of name in the folder above
// it, as far as those folders exist. It takes no lock: it only lets Check
// refuse early.
func (s *Store) checkTwins(name string) error {
	dir := "."
	for _, seg := range strings.Split(name, "/") {
		d, err := s.root.Open(dir)
		if err != nil {
			return nil // a folder not made yet holds no twin
		}
		twin, err := twinIn(int(d.Fd()), seg)
		d.Close()
		if err != nil {
			return mapError(name, err)
		}
		if twin != "" {
			return twinError(name, path.Join(dir, twin))
		}
		dir = path.Join(dir, seg)
	}
	return nil
}

// lockFolder takes the exclusive lock under which a folder's entries are
// checked for twins and added; the returned func releases it.
func lockFolder(dirfd int) (func(), error) {
	if err := unix.Flock(dirfd, unix.LOCK_EX); err != nil {
		return nil, fmt.Errorf("dirstore: lock folder: %w", err)
	}
	return func() { unix.Flock(dirfd, unix.LOCK_UN) }, nil
}

// mkdirNoTwin makes the folder dirName unless a twin of it is in its
// parent, under the parent's lock, so that of two writers making twin
// folders at once the second sees the first. A folder already there is
// fs.ErrExist, as from Mkdir, without taking the lock.
func (s *Store) mkdirNoTwin(dirName string) error {
	if _, err := s.root.Lstat(dirName); err == nil {
		return &fs.PathError{Op: "mkdir", Path: dirName, Err: fs.ErrExist}
	}
	parent, err := s.root.Open(path.Dir(dirName))
	if err != nil {
		return err
	}
	defer parent.Close()
	unlock, err := lockFolder(int(parent.Fd()))
	if err != nil {
		return err
	}
	defer unlock()
	base := path.Base(dirName)
	twin, err := twinIn(int(parent.Fd()), base)
	if err != nil {
		return err
	}
	if twin != "" {
		return twinError(dirName, path.Join(path.Dir(dirName), twin))
	}
	if err := unix.Mkdirat(int(parent.Fd()), base, 0o755); err != nil {
		return &fs.PathError{Op: "mkdir", Path: dirName, Err: err}
	}
	return nil
}
