package spool

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// Body is a fully received request body, held in memory or in a temp file.
// Its reader methods are safe for concurrent use; Close is idempotent.
type Body struct {
	s        *Spooler
	mem      []byte
	reserved int64       // memory budget held by mem
	disk     bool        // the body is held in a temp file
	f        *os.File    // nil for a memory body, and while a batch's body is closed
	path     string      // "" for a memory body, and once DropName has run
	ident    os.FileInfo // a batch's body: the file written, to know it again
	size     int64
	sum      [sha256.Size]byte
	crc      uint64 // CRC64NVME

	mu   sync.Mutex // guards path, which DropName clears
	once sync.Once
}

// Size returns the body's length in bytes.
func (b *Body) Size() int64 { return b.size }

// SHA256 returns the digest computed while the body streamed in.
func (b *Body) SHA256() [sha256.Size]byte { return b.sum }

// CRC64NVME returns the body's CRC-64/NVME, computed while it streamed in
// alongside the SHA-256: the checksum S3 verifies for a whole object,
// whether it arrives in one request or in parts.
func (b *Body) CRC64NVME() uint64 { return b.crc }

// Location reports whether the body is held in memory or on disk.
func (b *Body) Location() Location {
	if b.disk {
		return Disk
	}
	return Memory
}

// Reader returns a new independent reader over the whole body. It can Seek
// and ReadAt, and needs no closing of its own. The body of a Batch must be
// opened (Batch.Open) first; until then its reads fail with ErrNotOpen.
func (b *Body) Reader() *io.SectionReader {
	switch {
	case b.f != nil:
		return io.NewSectionReader(b.f, 0, b.size)
	case b.disk:
		return io.NewSectionReader(notOpen{}, 0, b.size)
	}
	return io.NewSectionReader(bytes.NewReader(b.mem), 0, b.size)
}

// ErrNotOpen is the error of reading a Batch's body before Batch.Open.
var ErrNotOpen = errors.New("spool: the body's file is not open; open its batch first")

type notOpen struct{}

func (notOpen) ReadAt([]byte, int64) (int, error) { return 0, ErrNotOpen }

// WriteTo writes the whole body to w: a memory body in one Write, a disk
// body through a working buffer (see Spooler.Buffer). It does not move any reader's offset.
func (b *Body) WriteTo(w io.Writer) (int64, error) {
	if b.disk && b.f == nil {
		return 0, ErrNotOpen
	}
	if b.f == nil {
		n, err := w.Write(b.mem)
		return int64(n), err
	}
	bufp := b.s.buffer()
	defer b.s.putBuffer(bufp)
	return io.CopyBuffer(onlyWriter{w}, io.NewSectionReader(b.f, 0, b.size), *bufp)
}

// onlyWriter hides a ReaderFrom, so that io.CopyBuffer uses the buffer.
type onlyWriter struct{ io.Writer }

// File returns the temp file holding a disk body, or nil for a memory body
// (and for a Batch's body before Batch.Open). It lets a store publish the
// bytes by hard-linking the file instead of writing them again. The file
// stays owned by the Body.
func (b *Body) File() *os.File { return b.f }

// name returns the temp file's name, or "" for a memory body and once
// DropName has run. The name can disappear (a sweep by another process, say)
// while File stays readable.
func (b *Body) name() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.path
}

// DropName removes the temp file's name from the spool directory, if the
// name still leads to this body's file; File stays readable until Close. A
// store that has linked File elsewhere calls it before it makes the file
// readable to others: a mode is the inode's, so a name left in the spool
// directory would expose the bytes there too. Afterwards the body has no
// name, and Close removes no name, not even one that someone else's file
// took.
func (b *Body) DropName() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.f == nil || b.path == "" {
		return nil
	}
	path := b.path
	b.path = ""
	mine, err := b.f.Stat()
	if err != nil {
		return fmt.Errorf("spool: drop name: %w", err)
	}
	there, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) || err == nil && !os.SameFile(mine, there) {
		return nil
	}
	if err == nil {
		err = os.Remove(path)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("spool: drop name: %w", err)
	}
	return nil
}

// Close releases the body: its memory reservation, or its temp file, which it
// closes and removes. Calling Close again returns nil; a file that is already
// gone is not an error.
func (b *Body) Close() error {
	var err error
	b.once.Do(func() { err = b.close() })
	return err
}

func (b *Body) close() error {
	if !b.disk {
		b.s.release(b.reserved)
		b.mem = nil
		return nil
	}
	b.s.stats.openFiles.Add(-1)
	var cerr error
	if b.f != nil {
		cerr = b.f.Close()
	}
	var rerr error
	if path := b.name(); path != "" {
		rerr = os.Remove(path)
	}
	if errors.Is(rerr, fs.ErrNotExist) {
		rerr = nil
	}
	if err := errors.Join(cerr, rerr); err != nil {
		b.s.stats.cleanupFailures.Add(1)
		return fmt.Errorf("spool: remove temp: %w", err)
	}
	return nil
}

// Temp files are named FilePrefix + random + fileSuffix so that Sweep can
// recognise them and nothing else.
const (
	FilePrefix = "spillway-"
	fileSuffix = ".spool"
)

// createTemp creates an exclusive 0600 temp file and holds an flock on it for
// as long as it is open, which is how Sweep tells live files from orphans.
func (s *Spooler) createTemp() (*os.File, string, error) {
	for range 10 {
		path := filepath.Join(s.dir, FilePrefix+rand.Text()+fileSuffix)
		f, err := createPrivate(path)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			if isNoSpace(err) {
				return nil, "", fmt.Errorf("%w: %w", ErrNoSpace, err)
			}
			return nil, "", fmt.Errorf("spool: create temp: %w", err)
		}
		if err := lock(f, true); err != nil {
			f.Close()
			os.Remove(path)
			return nil, "", fmt.Errorf("spool: lock temp: %w", err)
		}
		s.stats.openFiles.Add(1)
		return f, path, nil
	}
	return nil, "", errors.New("spool: create temp: no unused name after 10 tries")
}

// createPrivate creates path exclusively, mode 0600 whatever the umask:
// Sweep takes nothing else for its own.
func createPrivate(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return f, nil
}

// Sweep removes orphaned spool files from dir: files named like this
// package's temp files, as createTemp leaves every one (regular, 0600, this
// user's), that no live process holds locked, and the files of batches whose
// lock no live process holds. A file in use by another Spooler, in this
// process or another, is left alone, so two servers can share a directory.
// Sweep reads dir alone, never a directory below it. It returns how many
// files it removed.
//
// The name and the mode are what tell a spool file from a stored one that
// merely has its name (an upload called spillway-….spool): callers must keep
// any store's directory apart from dir: not dir itself, and not holding it.
func Sweep(dir string) (int, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("spool: sweep: %w", err)
	}
	removed := 0
	var errs []error
	for _, e := range entries {
		if !e.Type().IsRegular() || !isSpoolName(e.Name()) {
			continue
		}
		// Another user's spool files (a server sharing /tmp) are not
		// this one's to open, let alone remove.
		if fi, err := e.Info(); err != nil || !madeByCreateTemp(fi) {
			continue
		}
		path := filepath.Join(dir, e.Name())
		var ok bool
		if lockName, inBatch := batchLock(e.Name()); inBatch {
			ok, err = removeIfBatchUnlocked(path, filepath.Join(dir, lockName))
		} else {
			ok, err = removeIfOrphan(path)
		}
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			removed++
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("spool: sweep: %w", err)
	}
	return removed, nil
}

func isSpoolName(name string) bool {
	return len(name) > len(FilePrefix)+len(fileSuffix) &&
		name[:len(FilePrefix)] == FilePrefix &&
		name[len(name)-len(fileSuffix):] == fileSuffix
}

// removeIfOrphan removes path if it is a file createTemp could have made
// and no open file holds it locked. O_NOFOLLOW and O_NONBLOCK keep a name
// replaced meanwhile (by a symlink, a FIFO) from leading it elsewhere.
// madeByCreateTemp reports whether fi looks as createTemp leaves every file.
func madeByCreateTemp(fi fs.FileInfo) bool {
	return fi.Mode().IsRegular() && fi.Mode().Perm() == 0o600 && ownedBySelf(fi)
}

func removeIfOrphan(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ELOOP) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	if !madeByCreateTemp(fi) {
		return false, nil
	}
	if err := lock(f, false); err != nil {
		if errors.Is(err, errLocked) {
			return false, nil
		}
		return false, err
	}
	// Remove the name only while it still leads to the file checked.
	if now, err := os.Lstat(path); err != nil || !os.SameFile(fi, now) {
		return false, nil
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	return true, nil
}

// removeIfBatchUnlocked removes path, a batch's file, unless a live process
// holds the batch's lock file.
func removeIfBatchUnlocked(path, lockPath string) (bool, error) {
	f, err := os.Open(lockPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return false, err
	default:
		defer f.Close()
		if err := lock(f, false); err != nil {
			if errors.Is(err, errLocked) {
				return false, nil
			}
			return false, err
		}
	}
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
