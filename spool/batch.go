package spool

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A Batch spools the bodies of one request that carries several, such as
// the files of a multipart/form-data request, and bounds the descriptors
// they hold. A body that goes to disk is closed as soon as it is written,
// and Open opens them all again when they are to be published: however
// many files the request carries, and however long its client takes to
// send them, the batch holds at most two descriptors meanwhile, its lock
// and the file being written.
//
// The lock is an empty spool file that the batch holds locked while it
// lives; its files' names extend the lock's, and Sweep leaves them alone
// while the lock is held. Open opens a file again only if it is still the
// one that was written (the same device, inode, size and change time), so
// nothing put in its place meanwhile is ever published.
//
// A Batch is used by one goroutine at a time; Close releases every body.
type Batch struct {
	s        *Spooler
	id       string   // the lock's name is FilePrefix + id + fileSuffix
	lock     *os.File // nil until a body goes to disk
	lockPath string
	next     int // the number of the next file
	bodies   []*Body
}

// NewBatch returns an empty batch.
func (s *Spooler) NewBatch() *Batch { return &Batch{s: s} }

// Spool is Spooler.Spool for a body of the batch. The batch owns the body:
// Batch.Close closes it, and so may the caller.
func (b *Batch) Spool(ctx context.Context, r io.Reader, size int64) (*Body, error) {
	body, err := b.s.spool(ctx, r, size, b)
	if err != nil {
		return nil, err
	}
	b.bodies = append(b.bodies, body)
	if body.f != nil {
		fi, serr := body.f.Stat()
		cerr := body.f.Close()
		body.f, body.ident = nil, fi
		if err := errors.Join(serr, cerr); err != nil {
			body.Close()
			return nil, fmt.Errorf("spool: close batch file: %w", err)
		}
	}
	return body, nil
}

// Open opens the files of the batch's disk bodies again, so that their
// File, Reader and WriteTo work, until Close. A file that is no longer the
// one written is an error, and so is running out of descriptors (an error
// that wraps syscall.EMFILE or ENFILE).
func (b *Batch) Open() error {
	for _, body := range b.bodies {
		if body.path == "" || body.f != nil || body.ident == nil {
			continue
		}
		f, err := openNoFollow(body.path)
		if err != nil {
			return fmt.Errorf("spool: open batch file again: %w", err)
		}
		fi, err := f.Stat()
		if err == nil && !sameFile(body.ident, fi) {
			err = fmt.Errorf("%s is not the file written", body.path)
		}
		if err != nil {
			f.Close()
			return fmt.Errorf("spool: open batch file again: %w", err)
		}
		body.f = f
	}
	return nil
}

// Close closes and removes every body of the batch, and then its lock.
func (b *Batch) Close() error {
	var errs []error
	for _, body := range b.bodies {
		errs = append(errs, body.Close())
	}
	b.bodies = nil
	if b.lock != nil {
		b.s.stats.openFiles.Add(-1)
		cerr := b.lock.Close()
		rerr := os.Remove(b.lockPath)
		if errors.Is(rerr, fs.ErrNotExist) {
			rerr = nil
		}
		if err := errors.Join(cerr, rerr); err != nil {
			b.s.stats.cleanupFailures.Add(1)
			errs = append(errs, fmt.Errorf("spool: remove batch lock: %w", err))
		}
		b.lock = nil
	}
	return errors.Join(errs...)
}

// createPart creates the batch's next file, exclusively and 0600, taking
// the batch's lock first.
func (b *Batch) createPart() (*os.File, string, error) {
	if b.lock == nil {
		if err := b.createLock(); err != nil {
			return nil, "", err
		}
	}
	for range 10 {
		path := filepath.Join(b.s.dir, FilePrefix+b.id+"."+strconv.Itoa(b.next)+fileSuffix)
		b.next++
		f, err := createPrivate(path)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, "", createError(err)
		}
		b.s.stats.openFiles.Add(1)
		return f, path, nil
	}
	return nil, "", errors.New("spool: create batch file: no unused name after 10 tries")
}

// createLock creates and locks the batch's lock file. A sweep can remove a
// new file before it is locked; the lock is kept only once its name is
// known to still be there, so that the batch's files are never taken for
// orphans.
func (b *Batch) createLock() error {
	for range 10 {
		id := rand.Text()
		path := filepath.Join(b.s.dir, FilePrefix+id+fileSuffix)
		f, err := createPrivate(path)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return createError(err)
		}
		if err := lock(f, true); err != nil {
			f.Close()
			os.Remove(path)
			return fmt.Errorf("spool: lock batch: %w", err)
		}
		held, herr := f.Stat()
		named, nerr := os.Lstat(path)
		if herr != nil || nerr != nil || !os.SameFile(held, named) {
			f.Close() // swept before it was locked
			continue
		}
		b.s.stats.openFiles.Add(1)
		b.id, b.lock, b.lockPath = id, f, path
		return nil
	}
	return errors.New("spool: create batch lock: no lasting name after 10 tries")
}

// batchLock returns the name of the lock of a batch's file, and false for
// a name that belongs to no batch.
func batchLock(name string) (string, bool) {
	mid := strings.TrimSuffix(strings.TrimPrefix(name, FilePrefix), fileSuffix)
	id, n, ok := strings.Cut(mid, ".")
	if !ok || id == "" || n == "" || strings.Trim(n, "0123456789") != "" {
		return "", false
	}
	return FilePrefix + id + fileSuffix, true
}

func createError(err error) error {
	if isNoSpace(err) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return fmt.Errorf("spool: create temp: %w", err)
}
