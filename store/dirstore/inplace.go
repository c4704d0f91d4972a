package dirstore

// An upload's bytes are written in place, by writeInPlace: a multipart
// upload's parts each at its offset in one file, preallocated when the
// upload is created, and a tus upload's chunks each at the upload's
// offset; the last step links the file into place. What an upload keeps
// beside its bytes is replaced whole, by replaceFile. A multipart upload
// keeps a running SHA-256 and CRC64NVME of the parts received from the first on without a gap (the prefix), so
// that completion hashes only what the prefix has not reached yet, which
// is normally nothing.

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/minio/crc64nvme"

	"spillway/internal/writeback"
	"spillway/store"
)

const (
	// dataName is the upload's file, preallocated to the declared size.
	dataName = "data"
	// prefixName holds the prefix's hash state (see prefix.marshal).
	prefixName = "prefix"
	// prefixTmp is prefixName being replaced.
	prefixTmp = "prefix.tmp"
	// maxPrefix bounds what is read of a prefix file.
	maxPrefix = 1 << 10
)

// prefix is the running hash of parts 1..parts, each of which was received
// (its marker exists) when the state was saved.
type prefix struct {
	parts int
	sha   hash.Hash
	crc   hash.Hash64
}

func newPrefix() *prefix { return &prefix{sha: sha256.New(), crc: crc64nvme.New()} }

// marshal gives the state as stored: the part count as a big-endian
// uint64, the length of the SHA-256 digest's own encoding as a uint32, that
// encoding, then the CRC digest's.
func (p *prefix) marshal() ([]byte, error) {
	sha, err := p.sha.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	crc, err := p.crc.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	b := binary.BigEndian.AppendUint64(nil, uint64(p.parts))
	b = binary.BigEndian.AppendUint32(b, uint32(len(sha)))
	return append(append(b, sha...), crc...), nil
}

// loadPrefix reads the upload's prefix state. A missing or damaged one is
// the empty prefix: the state is a cache of what the file's parts hash to,
// and completion hashes whatever it does not cover.
func (h *upload) loadPrefix() *prefix {
	f, err := h.dir.Open(prefixName)
	if err != nil {
		return newPrefix()
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPrefix))
	if err != nil || len(b) < 12 {
		return newPrefix()
	}
	n, shaLen := binary.BigEndian.Uint64(b), uint64(binary.BigEndian.Uint32(b[8:]))
	if n > uint64(h.u.PartCount()) || shaLen > uint64(len(b)-12) {
		return newPrefix()
	}
	p := newPrefix()
	if p.sha.(encoding.BinaryUnmarshaler).UnmarshalBinary(b[12:12+shaLen]) != nil ||
		p.crc.(encoding.BinaryUnmarshaler).UnmarshalBinary(b[12+shaLen:]) != nil {
		return newPrefix()
	}
	p.parts = int(n)
	return p
}

// savePrefix replaces the stored prefix state, atomically: a crash leaves
// the old state or the new one.
func (h *upload) savePrefix(p *prefix) error {
	b, err := p.marshal()
	if err != nil {
		return fmt.Errorf("dirstore: upload %s: save hash state: %w", h.id, err)
	}
	if err := replaceFile(h.dir, prefixTmp, prefixName, b, h.s.opts.Fsync); err != nil {
		return fmt.Errorf("dirstore: upload %s: save hash state: %w", h.id, err)
	}
	return nil
}

// resetPrefix drops the prefix state before part n's bytes are replaced,
// when the state covers them: a hash cannot be taken back.
func (h *upload) resetPrefix(n int) error {
	if p := h.loadPrefix(); p.parts < n {
		return nil
	}
	if err := h.dir.Remove(prefixName); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("dirstore: upload %s: reset hash state: %w", h.id, err)
	}
	if h.s.opts.Fsync {
		return h.syncDir()
	}
	return nil
}

// advance hashes, from the file, the parts received after the prefix
// without a gap; it reports whether the prefix grew. The bytes were written
// a moment ago, normally, and come from the page cache.
func (h *upload) advance(ctx context.Context, data *os.File, p *prefix, received map[int][]string) (bool, error) {
	grew := false
	bufs, release := h.s.buffers(1)
	defer release()
	buf := bufs[0]
	for p.parts < h.u.PartCount() && len(received[p.parts+1]) == 1 {
		if err := ctx.Err(); err != nil {
			return grew, err
		}
		n := p.parts + 1
		off := int64(n-1) * h.u.PartSize
		r := io.NewSectionReader(data, off, h.u.PartSizeOf(n))
		if _, err := io.CopyBuffer(io.MultiWriter(p.sha, p.crc), r, buf); err != nil {
			return grew, fmt.Errorf("dirstore: upload %s: hash part %d: %w", h.id, n, err)
		}
		p.parts, grew = n, true
	}
	return grew, nil
}

// preallocate gives f its size and, where the filesystem can, the blocks
// to hold it, so that a full disk refuses the upload when it is created,
// not one of its parts later. Where it cannot, the file is made sparse at
// its size, and space is only checked.
func (s *Store) preallocate(f *os.File, size int64) error {
	if size == 0 {
		return nil
	}
	for {
		err := fallocate(f, size)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, errors.ErrUnsupported), errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOSYS):
			if err := s.CheckSpace(context.Background(), size); err != nil {
				return err
			}
			return f.Truncate(size)
		}
		return err
	}
}

// writeInPlace copies r to f from off, and refuses more than room bytes
// (store.ErrUploadTooLarge): a tus chunk at the upload's offset, a
// multipart part at its own. Each hash runs in a goroutine of its own on
// the buffers already written, so that hashing (SHA-256 and CRC-64/NVME
// together are slower than this disk) overlaps reading and writing; a
// few working buffers (s.buffers) bound the memory. With fsync on, the
// kernel is told to start writing back what is written as it goes, so
// that the caller's fsync finds little left to do.
func (s *Store) writeInPlace(ctx context.Context, f *os.File, off int64, r io.Reader, room int64, hashes ...hash.Hash) (n int64, err error) {
	const buffers = 4
	type job struct {
		b    []byte
		left *atomic.Int32 // hashes still to see b
	}
	bufs, release := s.buffers(buffers)
	// Deferred first, so run last: after the hashes are done with them.
	defer release()
	free := make(chan []byte, len(bufs))
	for _, b := range bufs {
		free <- b
	}
	ins := make([]chan job, len(hashes))
	var wg sync.WaitGroup
	for i, h := range hashes {
		ins[i] = make(chan job, buffers)
		wg.Go(func() {
			for j := range ins[i] {
				h.Write(j.b)
				if j.left.Add(-1) == 0 {
					free <- j.b[:cap(j.b)]
				}
			}
		})
	}
	defer func() {
		for _, in := range ins {
			close(in)
		}
		// The hashes are whole once every buffer sent is hashed.
		wg.Wait()
	}()
	var flushed int64 // writeback started up to off+flushed
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		buf := <-free
		k, rerr := io.ReadFull(r, buf)
		if int64(k) > room-n {
			return n, store.ErrUploadTooLarge
		}
		if k > 0 {
			if _, err := f.WriteAt(buf[:k], off+n); err != nil {
				return n, fmt.Errorf("dirstore: write: %w", uploadsError(err))
			}
			n += int64(k)
			if s.opts.Fsync && n-flushed >= writeback.Behind {
				writeback.Start(f, off+flushed, n-flushed)
				flushed = n
			}
			left := new(atomic.Int32)
			left.Store(int32(len(ins)))
			for _, in := range ins {
				in <- job{buf[:k], left}
			}
		}
		if k == 0 || len(ins) == 0 {
			free <- buf
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return n, nil
		case rerr != nil:
			return n, rerr
		}
	}
}

// replaceFile replaces dir's file name with b, atomically, through the
// temporary file tmp: a crash leaves the old contents or the new. With
// durable, the new bytes are on disk before the rename.
func replaceFile(dir *os.Root, tmp, name string, b []byte, durable bool) error {
	f, err := dir.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return uploadsError(err)
	}
	_, err = f.Write(b)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = dir.Rename(tmp, name)
	}
	if err != nil {
		dir.Remove(tmp)
		return uploadsError(err)
	}
	return nil
}

// minPipelined is the least a working buffer holds when memory is not
// short (Options.Buffers).
const minPipelined = 64 << 10

// buffers lends up to n working buffers for a copy, from Options.Buffers
// when it is set: fewer when memory is short. release gives them all
// back.
func (s *Store) buffers(n int) (bufs [][]byte, release func()) {
	if s.opts.Buffers == nil {
		for range n {
			bufs = append(bufs, make([]byte, copyBuffer))
		}
		return bufs, func() {}
	}
	var releases []func()
	for range n {
		b, rel := s.opts.Buffers()
		bufs, releases = append(bufs, b), append(releases, rel)
		if len(b) < minPipelined {
			break
		}
	}
	return bufs, func() {
		for _, rel := range releases {
			rel()
		}
	}
}
