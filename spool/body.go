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
)

// Body is a fully received request body, held in memory or in a temp file.
// Its reader methods are safe for concurrent use; Close is idempotent.
type Body struct {
	s        *Spooler
	mem      []byte
	reserved int64       // memory budget held by mem
	f        *os.File    // nil for a memory body, and while a batch's body is closed
	path     string      // "" for a memory body
	ident    os.FileInfo // a batch's body: the file written, to know it again
	size     int64
	sum      [sha256.Size]byte

	once sync.Once
}

// Size returns the body's length in bytes.
func (b *Body) Size() int64 { return b.size }

// SHA256 returns the digest computed while the body streamed in.
func (b *Body) SHA256() [sha256.Size]byte { return b.sum }

// Location reports whether the body is held in memory or on disk.
func (b *Body) Location() Location {
	if b.path != "" {
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
	case b.path != "":
		return io.NewSectionReader(notOpen{}, 0, b.size)
	}
	return io.NewSectionReader(bytes.NewReader(b.mem), 0, b.size)
}

// ErrNotOpen is the error of reading a Batch's body before Batch.Open.
var ErrNotOpen = errors.New("spool: the body's file is not open; open its batch first")

type notOpen struct{}

func (notOpen) ReadAt([]byte, int64) (int, error) { return 0, ErrNotOpen }

// WriteTo writes the whole body to w: a memory body in one Write, a disk
// body through a pooled buffer. It does not move any reader's offset.
func (b *Body) WriteTo(w io.Writer) (int64, error) {
	if b.path != "" && b.f == nil {
		return 0, ErrNotOpen
	}
	if b.f == nil {
		n, err := w.Write(b.mem)
		return int64(n), err
	}
	bufp := b.s.bufs.Get().(*[]byte)
	defer b.s.bufs.Put(bufp)
	return io.CopyBuffer(onlyWriter{w}, io.NewSectionReader(b.f, 0, b.size), *bufp)
}

// onlyWriter hides a ReaderFrom, so that io.CopyBuffer uses the buffer.
type onlyWriter struct{ io.Writer }

// File returns the temp file holding a disk body, or nil for a memory body
// (and for a Batch's body before Batch.Open). It lets a store publish the
// bytes by hard-linking the file instead of writing them again. The file
// stays owned by the Body.
func (b *Body) File() *os.File { return b.f }

// Path returns the temp file's name, or "" for a memory body. The name can
// disappear (a sweep by another process, say) while File stays readable.
func (b *Body) Path() string { return b.path }

// Close releases the body: its memory reservation, or its temp file, which it
// closes and removes. Calling Close again returns nil; a file that is already
// gone is not an error.
func (b *Body) Close() error {
	var err error
	b.once.Do(func() { err = b.close() })
	return err
}

func (b *Body) close() error {
	if b.path == "" {
		b.s.release(b.reserved)
		b.mem = nil
		return nil
	}
	b.s.stats.openFiles.Add(-1)
	var cerr error
	if b.f != nil {
		cerr = b.f.Close()
	}
	rerr := os.Remove(b.path)
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
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
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

// Sweep removes orphaned spool files from dir: files named like this
// package's temp files that no live process holds locked, and the files of
// batches whose lock no live process holds. A file in use by another
// Spooler, in this process or another, is left alone, so two servers can
// share a directory. It returns how many files it removed.
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
		path := filepath.Join(dir, e.Name())
		var ok bool
		if lockName, inBatch := batchLock(e.Name()); inBatch {
			ok, err = removeIfBatchUnlocked(path, filepath.Join(dir, lockName))
		} else {
			ok, err = removeIfUnlocked(path)
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

func removeIfUnlocked(path string) (bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	if err := lock(f, false); err != nil {
		if errors.Is(err, errLocked) {
			return false, nil
		}
		return false, err
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
