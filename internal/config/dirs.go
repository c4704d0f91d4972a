package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// CheckDirs refuses an upload directory and a spool dir that overlap: the
// same directory, or either one inside the other, after symlinks. Spool
// files there would be listed and served as uploads before they are
// complete, and a stored file named like a spool file could be taken for
// an orphan and swept. Neither directory needs to exist yet, and neither is
// made here.
func (c Config) CheckDirs() error {
	directory, spoolDir := c.Directory, c.SpoolDir
	up, err := resolveDir(directory)
	if err != nil {
		return fmt.Errorf("--directory %s: %w", directory, err)
	}
	sp, err := resolveDir(spoolDir)
	if err != nil {
		return fmt.Errorf("--spool-dir %s: %w", spoolDir, err)
	}
	// The upload directory may sit below the spool dir (a clone under /tmp
	// does, with the defaults): the sweep reads the spool dir alone, never
	// a directory below it, and no name leaves the upload directory.
	const fix = "give the spool its own directory, outside the upload directory (--spool-dir or SPILLWAY_SPOOL_DIR; the default is the system's temp directory)"
	switch {
	case sameDir(up, sp):
		return fmt.Errorf("--directory %s and --spool-dir %s are the same directory: %s", directory, spoolDir, fix)
	case inside(sp, up):
		return fmt.Errorf("--spool-dir %s is inside --directory %s: %s", spoolDir, directory, fix)
	}
	return nil
}

// resolveDir returns dir as an absolute path with the symlinks of the part
// that exists resolved; the rest, still to be made, is joined to it as is.
func resolveDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	rest := ""
	for p := abs; ; p = filepath.Dir(p) {
		resolved, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(resolved, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) || p == filepath.Dir(p) {
			return "", err
		}
		rest = filepath.Join(filepath.Base(p), rest)
	}
}

// sameDir reports whether the resolved paths a and b are one directory:
// the same path, or, where both exist, the same inode (a bind mount).
func sameDir(a, b string) bool {
	if a == b {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// inside reports whether the resolved path child is below parent: by name,
// or because one of child's existing ancestors is parent's inode.
func inside(child, parent string) bool {
	for p := filepath.Dir(child); ; p = filepath.Dir(p) {
		if sameDir(p, parent) {
			return true
		}
		if p == filepath.Dir(p) {
			return false
		}
	}
}
