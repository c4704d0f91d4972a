package dirstore

// An upload's bytes are written in place: each part at its offset in one
// file, preallocated when the upload is created, which completion links
// into place. Beside it, the upload keeps a running SHA-256 and CRC64NVME
// of the parts received from the first on without a gap (the prefix), so
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
	"syscall"

	"github.com/minio/crc64nvme"
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
	f, err := h.dir.OpenFile(prefixTmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("dirstore: upload %s: save hash state: %w", h.id, uploadsError(err))
	}
	_, err = f.Write(b)
	if err == nil && h.s.opts.Fsync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = h.dir.Rename(prefixTmp, prefixName)
	}
	if err != nil {
		h.dir.Remove(prefixTmp)
		return fmt.Errorf("dirstore: upload %s: save hash state: %w", h.id, uploadsError(err))
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
	buf := make([]byte, copyBuffer)
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
