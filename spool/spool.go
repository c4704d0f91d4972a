// Package spool holds request bodies while they are being received: in
// memory when they are small and memory is available, otherwise in an
// exclusively created temporary file. It enforces the size limit, computes
// the SHA-256 and the CRC64NVME while the bytes stream in, and removes its own files on every
// path. It knows nothing about HTTP or about where bodies are finally stored.
package spool

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"spillway/internal/writeback"
	"spillway/wire"

	"github.com/minio/crc64nvme"
)

// Defaults for Config.
const (
	DefaultThreshold    = 2 << 20  // 2 MiB
	DefaultMemoryBudget = 64 << 20 // 64 MiB
)

const (
	// copyBufferSize is the unit of disk writes. It is deliberately not the
	// threshold, nor the read size: past 256 KiB a write lands in larger
	// page-cache folios, and the copy into them measured costlier per byte
	// over a large upload (docs/BENCHMARKS.md, "Why goals are not met").
	copyBufferSize = 256 << 10
	// readBufferSize is the unit of reads of a body spooled to disk. A
	// large body comes from a socket, where every read costs more than its
	// copy (the system call, the acknowledgement that reopens the window,
	// the sender's wake-up, all in the server's account): reads twice the
	// size of the writes cost the server less CPU per GB.
	readBufferSize = 2 * copyBufferSize
)

var (
	// ErrTooLarge is matched (errors.Is) by every *TooLargeError.
	ErrTooLarge = errors.New("spool: body too large")
	// ErrIncomplete means the body ended before its declared length, or the
	// underlying reader reported an unexpected EOF (a client that went away).
	ErrIncomplete = errors.New("spool: body ended before its declared length")
	// ErrTooLong means the body carried more bytes than its declared length.
	ErrTooLong = errors.New("spool: body longer than its declared length")
	// ErrNoSpace means the spool directory cannot hold the body.
	ErrNoSpace = errors.New("spool: not enough free space")
	// ErrRead wraps any other failure of the body's reader, so that callers
	// can tell a bad body from a failure of the spool itself.
	ErrRead = errors.New("spool: read body")
)

// TooLargeError reports a body over the configured maximum size.
type TooLargeError struct {
	Limit int64 // the configured maximum, in bytes
	Size  int64 // the declared size, or -1 when the length was not known
}

func (e *TooLargeError) Error() string {
	if e.Size < 0 {
		return fmt.Sprintf("spool: body exceeds the %d-byte limit", e.Limit)
	}
	return fmt.Sprintf("spool: body of %d bytes exceeds the %d-byte limit", e.Size, e.Limit)
}

// Is makes errors.Is(err, ErrTooLarge) true for every *TooLargeError.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// Location says where a spooled body is held.
type Location uint8

const (
	Memory Location = iota + 1
	Disk
)

// Kind is the location as the API reports it, in a file's "spool".
func (l Location) Kind() wire.Spool {
	switch l {
	case Memory:
		return wire.SpoolMemory
	case Disk:
		return wire.SpoolDisk
	}
	return wire.SpoolNone
}

func (l Location) String() string {
	if k := l.Kind(); k != wire.SpoolNone {
		return string(k)
	}
	return "unknown"
}

// Config configures a Spooler. Sizes are in bytes.
type Config struct {
	// Dir is where temporary files are created. Empty means os.TempDir().
	Dir string
	// Threshold is the largest body kept in memory: Threshold bytes stay in
	// memory, Threshold+1 go to disk.
	Threshold int64
	// MemoryBudget caps the total bytes held in memory by all live bodies
	// at once. A body that would exceed it goes to disk even when small.
	MemoryBudget int64
	// MaxSize is the largest body accepted. Zero means unlimited.
	MaxSize int64
	// WriteBehind starts the writeback of a disk body's pages while it
	// arrives. Set it when the store will fsync the spooled file where it
	// lands, so that the fsync has little left to wait for; otherwise the
	// early writeback only costs the request CPU for writes the kernel
	// would have batched later (or never made, for a file that is sent on
	// and removed).
	WriteBehind bool
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{Threshold: DefaultThreshold, MemoryBudget: DefaultMemoryBudget}
}

// A Spooler turns readers into Bodies. It is safe for concurrent use.
type Spooler struct {
	dir       string
	threshold int64
	budget    int64
	maxSize   int64

	// startWriteback is called every writeback.Behind bytes of a disk body when
	// writeBehindOn; a field so that the tests can count the calls.
	writeBehindOn  bool
	startWriteback func(f *os.File, off, n int64)

	inUse atomic.Int64 // bytes of memory reserved by live bodies
	stats counters
	bufs  buffers
}

// New returns a Spooler for cfg. The spool directory must exist.
func New(cfg Config) (*Spooler, error) {
	if cfg.Threshold < 0 || cfg.MemoryBudget < 0 || cfg.MaxSize < 0 {
		return nil, errors.New("spool: sizes must not be negative")
	}
	dir := cfg.Dir
	if dir == "" {
		dir = os.TempDir()
	}
	// An absolute path keeps published links valid whatever the working
	// directory becomes.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: dir: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: dir: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("spool: dir %s is not a directory", dir)
	}
	s := &Spooler{dir: dir, threshold: cfg.Threshold, budget: cfg.MemoryBudget, maxSize: cfg.MaxSize,
		writeBehindOn: cfg.WriteBehind, startWriteback: writeback.Start}
	s.bufs.init()
	return s, nil
}

// Dir returns the absolute spool directory.
func (s *Spooler) Dir() string { return s.dir }

// Threshold returns the largest body size kept in memory.
func (s *Spooler) Threshold() int64 { return s.threshold }

// MaxSize returns the largest accepted body size, 0 meaning unlimited.
func (s *Spooler) MaxSize() int64 { return s.maxSize }

// Check reports, without reading anything, whether a body of the declared
// size (-1 when unknown) would be refused: *TooLargeError over the limit,
// ErrNoSpace when it would go to disk and the spool directory cannot hold it.
func (s *Spooler) Check(size int64) error {
	if size < 0 {
		return nil
	}
	if s.maxSize > 0 && size > s.maxSize {
		return &TooLargeError{Limit: s.maxSize, Size: size}
	}
	if size > s.threshold {
		return s.CheckSpace(size)
	}
	return nil
}

// CheckSpace reports ErrNoSpace when the spool directory cannot hold size
// more bytes. A failure to ask the filesystem is not reported: the write
// itself will tell.
func (s *Spooler) CheckSpace(size int64) error {
	free, err := freeSpace(s.dir)
	if err == nil && free < size {
		return fmt.Errorf("%w: %d bytes needed in %s, %d available", ErrNoSpace, size, s.dir, free)
	}
	return nil
}

// Spool reads r to its end and holds its bytes. size is the declared length,
// or -1 when it is unknown. A known size decides memory or disk before the
// first read; an unknown one starts in memory and spills to disk at the first
// byte past the threshold. On error nothing is left behind. The caller must
// Close the returned Body.
func (s *Spooler) Spool(ctx context.Context, r io.Reader, size int64) (b *Body, err error) {
	return s.spool(ctx, r, size, nil)
}

// spool is Spool; a body that goes to disk goes into batch's files when
// batch is not nil.
func (s *Spooler) spool(ctx context.Context, r io.Reader, size int64, batch *Batch) (b *Body, err error) {
	defer func() {
		if err != nil {
			s.stats.errors.Add(1)
			return
		}
		s.stats.record(b)
	}()
	if err := s.Check(size); err != nil {
		return nil, err
	}
	br := &bodyReader{ctx: ctx, r: r, h: newDigests(), limit: -1, batch: batch}
	if size < 0 {
		if s.maxSize > 0 {
			br.limit = s.maxSize
		}
		return s.spoolUnknown(br)
	}
	if size <= s.threshold && s.reserve(size) {
		return s.spoolMemory(br, size)
	}
	return s.spoolDisk(br, size, nil, nil)
}

func (s *Spooler) spoolMemory(br *bodyReader, size int64) (*Body, error) {
	buf := make([]byte, size)
	n, err := fill(br, buf)
	if err == nil && int64(n) == size {
		err = expectEOF(br)
	}
	if err != nil {
		s.release(size)
		return nil, readError(err, true)
	}
	return &Body{s: s, mem: buf, reserved: size, size: size, sum: br.h.sha256(), crc: br.h.crc.Sum64()}, nil
}

// spoolUnknown reads an unknown-length body into pooled chunks of
// readBufferSize, reserving each against the memory budget, up to the
// threshold. When they are full, one more byte decides: none means the body
// is exactly threshold bytes and stays; any means it spills to disk, as it
// also does as soon as the budget refuses a chunk. A body that stays is
// copied once into a buffer of its exact size. Pooled chunks, rather than a
// buffer that doubles, keep a spilled body from leaving megabytes of
// garbage behind: the chunks go back to the pool and become the disk
// path's buffers.
func (s *Spooler) spoolUnknown(br *bodyReader) (*Body, error) {
	var (
		chunks   []*[]byte
		fills    [][]byte // the filled part of each chunk
		n        int64
		reserved int64
		extra    []byte // the byte past the threshold
	)
	// putBack also forgets the chunks: spoolDisk holds this closure until
	// the body's end, and a chunk it still pointed to would stay in memory
	// that long, pool or not.
	putBack := func() {
		for _, c := range chunks {
			s.bufs.pipe.Put(c)
		}
		chunks, fills = nil, nil
	}
	keep := func() *Body {
		buf := make([]byte, n)
		off := 0
		for _, f := range fills {
			off += copy(buf[off:], f)
		}
		putBack()
		s.release(reserved - n)
		return &Body{s: s, mem: buf, reserved: n, size: n, sum: br.h.sha256(), crc: br.h.crc.Sum64()}
	}
	for n < s.threshold {
		want := min(readBufferSize, s.threshold-n)
		if !s.reserve(want) {
			break
		}
		reserved += want
		c := s.bufs.pipe.Get().(*[]byte)
		chunks = append(chunks, c)
		m, err := fill(br, (*c)[:want])
		fills = append(fills, (*c)[:m])
		n += int64(m)
		if err == io.EOF {
			return keep(), nil
		}
		if err != nil {
			putBack()
			s.release(reserved)
			return nil, readError(err, false)
		}
	}
	if n == s.threshold {
		var one [1]byte
		k, err := fill(br, one[:])
		if k == 0 && err == io.EOF {
			return keep(), nil
		}
		if k == 0 {
			putBack()
			s.release(reserved)
			return nil, readError(err, false)
		}
		extra = one[:k]
	}
	// The reservation covers the chunks until spoolDisk has written them;
	// then they are free for its write buffers.
	return s.spoolDisk(br, -1, append(fills, extra), func() {
		putBack()
		s.release(reserved)
	})
}

// spoolDisk writes the prefixes (bytes already read and hashed) and then the
// rest of br to a new temp file. size is the total declared length
// including the prefixes, or -1. freePrefixes, when not nil, is called
// exactly once, as soon as the prefixes are no longer needed.
func (s *Spooler) spoolDisk(br *bodyReader, size int64, prefixes [][]byte, freePrefixes func()) (_ *Body, err error) {
	if freePrefixes != nil {
		var once sync.Once
		free := freePrefixes
		freePrefixes = func() { once.Do(free) }
		defer freePrefixes()
	}
	create := s.createTemp
	if br.batch != nil {
		create = br.batch.createPart
	}
	f, path, err := create()
	if err != nil {
		return nil, err
	}
	b := &Body{s: s, f: f, path: path, disk: true}
	defer func() {
		if err != nil {
			b.Close()
		}
	}()
	var written int64
	for _, p := range prefixes {
		if err := writeAll(f, p); err != nil {
			return nil, err
		}
		written += int64(len(p))
	}
	if freePrefixes != nil {
		freePrefixes()
	}
	// SHA-256 is the costliest step (docs/BENCHMARKS.md has its speed
	// beside the spool's), so the digests run on their own goroutine, one
	// buffer behind the reads and writes.
	br.hashOff = true
	ph := s.newPipeHasher(br.h)
	finished := false
	defer func() {
		if !finished {
			ph.finish()
		}
	}()
	var flushed int64 // writeback started up to here
	for size < 0 || written < size {
		bufp := ph.buffer()
		chunk := *bufp
		if size >= 0 {
			chunk = chunk[:min(int64(len(chunk)), size-written)]
		}
		n, rerr := fill(br, chunk)
		werr := writeAll(f, chunk[:n])
		ph.hash(bufp, n)
		if werr != nil {
			return nil, werr
		}
		written += int64(n)
		if s.writeBehindOn && written-flushed >= writeback.Behind {
			s.startWriteback(f, flushed, written-flushed)
			flushed = written
		}
		if rerr == io.EOF && size < 0 {
			break
		}
		if rerr != nil {
			return nil, readError(rerr, size >= 0)
		}
	}
	ph.finish()
	finished = true
	if size >= 0 {
		if err := expectEOF(br); err != nil {
			return nil, readError(err, true)
		}
	}
	b.size, b.sum, b.crc = written, br.h.sha256(), br.h.crc.Sum64()
	return b, nil
}

func writeAll(f *os.File, p []byte) error {
	// Large prefixes go out in copy-buffer-sized writes (see copyBufferSize).
	for len(p) > 0 {
		n := min(len(p), copyBufferSize)
		if _, err := f.Write(p[:n]); err != nil {
			if isNoSpace(err) {
				return fmt.Errorf("%w: %w", ErrNoSpace, err)
			}
			return fmt.Errorf("spool: write temp: %w", err)
		}
		p = p[n:]
	}
	return nil
}

// readError classifies a read failure. EOF before a declared length and an
// unexpected EOF from below both mean the client sent less than it promised.
func readError(err error, known bool) error {
	switch {
	case errors.Is(err, ErrTooLarge), errors.Is(err, ErrTooLong):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF), known && err == io.EOF:
		return fmt.Errorf("%w: %w", ErrIncomplete, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("spool: %w", err)
	}
	return fmt.Errorf("%w: %w", ErrRead, err)
}

// fill reads until buf is full or r fails. Unlike io.ReadFull it reports a
// short read at the end as io.EOF, so an io.ErrUnexpectedEOF coming from r
// itself (a truncated HTTP body) is never confused with a normal end.
func fill(r io.Reader, buf []byte) (n int, err error) {
	for n < len(buf) && err == nil {
		var m int
		m, err = r.Read(buf[n:])
		n += m
	}
	if n == len(buf) && err == io.EOF {
		err = nil
	}
	return n, err
}

// expectEOF confirms that a body of known length has nothing more to give.
func expectEOF(r io.Reader) error {
	var one [1]byte
	n, err := fill(r, one[:])
	if n > 0 {
		return ErrTooLong
	}
	if err == io.EOF {
		return nil
	}
	return err
}

// bodyReader hashes what it reads, stops at a cancelled context, and enforces
// the size limit on bodies of unknown length at the first byte past it.
type bodyReader struct {
	ctx     context.Context
	r       io.Reader
	h       *digests
	hashOff bool // a pipeHasher hashes what is read
	n       int64
	limit   int64  // -1: none
	batch   *Batch // where a body that goes to disk goes; nil: its own temp file
}

// pipeHasher hashes buffers in order on its own goroutine. A few working
// buffers circulate: one being filled and written, the others being hashed.
// An upload that has a single buffer (a small one, under memory pressure)
// has nothing to overlap, so it hashes in line and starts no goroutine.
type pipeHasher struct {
	s     *Spooler
	h     io.Writer
	in    chan hashJob
	free  chan *[]byte
	done  chan struct{} // nil until the goroutine starts
	out   int           // buffers taken
	small int           // of which small ones
}

type hashJob struct {
	buf *[]byte
	n   int
}

// pipeBuffers: with two, the reader and the hasher wait on each other
// whenever the scheduler runs one late, which a multipart body's reader,
// filling each buffer in several reads, shows most; four absorb that
// jitter. They are pipe buffers while the memory budget allows; otherwise
// up to MaxSmallBuffers small ones. docs/BENCHMARKS.md has the measurements
// of two and four, and of four of half the size.
const pipeBuffers = 4

func (s *Spooler) newPipeHasher(h io.Writer) *pipeHasher {
	return &pipeHasher{
		s:    s,
		h:    h,
		in:   make(chan hashJob, pipeBuffers),
		free: make(chan *[]byte, pipeBuffers),
	}
}

func (p *pipeHasher) start() {
	p.done = make(chan struct{})
	go func() {
		defer close(p.done)
		for j := range p.in {
			p.h.Write((*j.buf)[:j.n])
			p.free <- j.buf
		}
	}()
}

// buffer returns a buffer to fill; it must be passed to hash. It takes a
// new buffer while the upload has fewer than it may hold and the budget
// grants one, and otherwise waits for one the hasher is done with: never
// for long, as at least one is always out.
func (p *pipeHasher) buffer() *[]byte {
	select {
	case b := <-p.free:
		return b
	default:
	}
	if p.out < pipeBuffers {
		b := p.s.pipeBuffer()
		if b == nil && p.small < MaxSmallBuffers {
			b = p.s.smallBuffer()
			p.small++
		}
		if b != nil {
			// The first buffer decides: a large one is hashed on the
			// goroutine while the next is filled; a small one is the
			// upload's only buffer, so it is hashed in line.
			if p.out++; p.out == 1 && len(*b) == readBufferSize {
				p.start()
			}
			return b
		}
	}
	return <-p.free
}

func (p *pipeHasher) hash(buf *[]byte, n int) {
	if p.done == nil {
		p.h.Write((*buf)[:n])
		p.free <- buf
		return
	}
	p.in <- hashJob{buf, n}
}

// finish waits until everything sent is hashed, stops the goroutine and
// gives the buffers back.
func (p *pipeHasher) finish() {
	if p.done != nil {
		close(p.in)
		<-p.done
	}
	for ; p.out > 0; p.out-- {
		p.s.putBuffer(<-p.free)
	}
}

func (br *bodyReader) Read(p []byte) (int, error) {
	if err := br.ctx.Err(); err != nil {
		return 0, err
	}
	if br.limit >= 0 && int64(len(p)) > br.limit-br.n+1 {
		p = p[:br.limit-br.n+1] // never read more than one byte past the limit
	}
	n, err := br.r.Read(p)
	if !br.hashOff {
		br.h.Write(p[:n])
	}
	br.n += int64(n)
	if br.limit >= 0 && br.n > br.limit {
		return n, &TooLargeError{Limit: br.limit, Size: -1}
	}
	return n, err
}

// digests are the checksums every body gets: SHA-256, which users compare
// with sha256sum, and CRC64NVME, which S3 verifies for a whole object
// however it was sent, in one PutObject or in parts. The CRC is computed
// with carry-less multiplication, many times faster than SHA-256, so it
// rides on the same pass over each buffer rather than a pass of its own.
type digests struct {
	sha hash.Hash
	crc hash.Hash64
}

func newDigests() *digests { return &digests{sha: sha256.New(), crc: crc64nvme.New()} }

func (d *digests) Write(p []byte) (int, error) {
	d.sha.Write(p)
	d.crc.Write(p)
	return len(p), nil
}

func (d *digests) sha256() (s [sha256.Size]byte) {
	d.sha.Sum(s[:0])
	return s
}

func (s *Spooler) reserve(n int64) bool { return s.reserveWithin(n, s.budget) }

func (s *Spooler) release(n int64) { s.inUse.Add(-n) }
