package dirstore

import (
	"fmt"
	"io/fs"
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
// Neither reads the whole folder at every upload: foldIndex (foldindex.go)
// remembers each folder's folds, as long as no one else changed it.

func twinError(name, twin string) error {
	return fmt.Errorf("%w: %q differs only in case from %q in the same folder", store.ErrExists, name, twin)
}

// checkTwins looks for a twin of each segment of name in the folder above
// it, as far as those folders exist. It takes no lock: it only lets Check
// refuse early.
func (s *Store) checkTwins(name string) error {
	dir := "."
	for seg := range strings.SplitSeq(name, "/") {
		d, err := s.openFolder(dir)
		if err != nil {
			return nil // a folder not made yet holds no twin
		}
		twin, err := s.folds.twin(int(d.Fd()), seg)
		s.closeFolder(d)
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

// mkdirNoTwin makes the folder dirName unless a twin of it is in its
// parent, under the parent's lock, so that of two writers making twin
// folders at once the second sees the first. A folder already there is
// fs.ErrExist, as from Mkdir, without taking the lock.
func (s *Store) mkdirNoTwin(dirName string) error {
	if _, err := s.root.Lstat(dirName); err == nil {
		return &fs.PathError{Op: "mkdir", Path: dirName, Err: fs.ErrExist}
	}
	parent, err := s.openFolder(path.Dir(dirName))
	if err != nil {
		return err
	}
	defer s.closeFolder(parent)
	h, err := s.folds.hold(int(parent.Fd()))
	if err != nil {
		return err
	}
	defer h.unlock()
	base := path.Base(dirName)
	twin, err := h.twin(base)
	if err != nil {
		return err
	}
	if twin != "" {
		return twinError(dirName, path.Join(path.Dir(dirName), twin))
	}
	if err := unix.Mkdirat(int(parent.Fd()), base, 0o755); err != nil {
		return &fs.PathError{Op: "mkdir", Path: dirName, Err: err}
	}
	h.changed(base, "")
	return nil
}
