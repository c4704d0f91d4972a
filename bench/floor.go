package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/minio/crc64nvme"
)

// floorBuffers is how many read buffers circulate between the reading loop
// and the hashing goroutine: one being filled and written, the rest queued
// for the hash, so that neither waits for the other while both keep up.
const floorBuffers = 4

// floorBufferSize is the unit of reads and writes, the size Spillway uses.
const floorBufferSize = 256 << 10

// floorPool holds sets of buffers between requests, so that a small body
// costs no fresh megabyte.
var floorPool = sync.Pool{New: func() any {
	var bufs [floorBuffers][]byte
	for i := range bufs {
		bufs[i] = make([]byte, floorBufferSize)
	}
	return &bufs
}}

// floorSums is what the floor computes of every body, as Spillway does.
type floorSums struct {
	sha256    string
	crc64nvme uint64
}

// floorStore is the hashing floor: the least work any server must do to
// store a body and answer with its SHA-256 (and the CRC64NVME a checked S3
// upload needs). It reads 256 KiB at a time, writes each buffer to the new
// file, hands it to a goroutine that feeds both hashes, and, when durable,
// fsyncs the file and then its directory. It checks nothing else and
// publishes nothing atomically: every real server does more.
func floorStore(dir, name string, src io.Reader, durable bool) (n int64, sums floorSums, err error) {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, sums, err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			os.Remove(path)
		}
	}()

	sha, crc := sha256.New(), crc64nvme.New()
	h := io.MultiWriter(sha, crc)
	bufs := floorPool.Get().(*[floorBuffers][]byte)
	defer floorPool.Put(bufs)
	free := make(chan []byte, floorBuffers)
	for _, b := range bufs {
		free <- b
	}
	full := make(chan []byte, floorBuffers)
	hashed := make(chan struct{})
	go hashLoop(h, full, free, hashed)

	n, err = floorCopy(f, src, full, free)
	close(full)
	<-hashed
	if err != nil {
		return n, sums, err
	}
	if durable {
		if err := f.Sync(); err != nil {
			return n, sums, fmt.Errorf("fsync %s: %w", path, err)
		}
		if err := syncDir(dir); err != nil {
			return n, sums, err
		}
	}
	return n, floorSums{sha256: hex.EncodeToString(sha.Sum(nil)), crc64nvme: crc.Sum64()}, nil
}

// floorCopy is the read loop: fill a free buffer, write it, queue it for
// the hash.
func floorCopy(f *os.File, src io.Reader, full chan<- []byte, free <-chan []byte) (int64, error) {
	var n int64
	for {
		buf := <-free
		k, rerr := fill(src, buf)
		if k > 0 {
			if _, err := f.Write(buf[:k]); err != nil {
				return n, err
			}
			n += int64(k)
		}
		full <- buf[:k]
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}

// fill reads until buf is full or src fails. Unlike io.ReadFull it reports
// the end of the body as io.EOF and passes on net/http's
// io.ErrUnexpectedEOF for a body cut short.
func fill(src io.Reader, buf []byte) (n int, err error) {
	for n < len(buf) && err == nil {
		var m int
		m, err = src.Read(buf[n:])
		n += m
	}
	if n == len(buf) && err == io.EOF {
		err = nil
	}
	return n, err
}

// hashLoop hashes buffers in the order they were read and gives each back.
func hashLoop(h io.Writer, full <-chan []byte, free chan<- []byte, done chan<- struct{}) {
	defer close(done)
	for buf := range full {
		h.Write(buf)
		free <- buf[:cap(buf)]
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}
