package spool_test

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/minio/crc64nvme"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/spool"
)

// TestCRC64NVMECheckValue pins the implementation to the published check
// value of CRC-64/NVME, the CRC S3 computes for x-amz-checksum-crc64nvme.
func TestCRC64NVMECheckValue(t *testing.T) {
	const check = 0xAE8B14860A799888
	require.Equal(t, uint64(check), crc64nvme.Checksum([]byte("123456789")))

	s, _ := newSpooler(t, nil)
	b, err := s.Spool(t.Context(), strings.NewReader("123456789"), 9)
	require.NoError(t, err)
	defer b.Close()
	assert.Equal(t, uint64(check), b.CRC64NVME())
}

// TestCRC64NVMEOfEveryPath checks the CRC a body reports on every path a
// body takes: memory, disk (where a goroutine hashes behind the writes),
// the spill of an unknown length from memory to disk, and a batch.
func TestCRC64NVMEOfEveryPath(t *testing.T) {
	const threshold = 1 << 20
	s, _ := newSpooler(t, func(c *spool.Config) { c.Threshold = threshold })
	for _, size := range []int64{0, 1, threshold, threshold + 1, 5*threshold + 12345} {
		f := uploadtest.File{Seed: uint64(size), Size: size}
		want := crc64nvme.Checksum(f.Bytes())
		for _, known := range []bool{true, false} {
			n := size
			if !known {
				n = -1
			}
			b, err := s.Spool(t.Context(), f.Reader(), n)
			require.NoError(t, err)
			assert.Equal(t, want, b.CRC64NVME(), "size %d, known %v, %s", size, known, b.Location())
			assert.Equal(t, sha256.Sum256(f.Bytes()), b.SHA256(), "size %d, known %v", size, known)
			require.NoError(t, b.Close())
		}
	}

	batch := s.NewBatch()
	defer batch.Close()
	f := uploadtest.File{Seed: 7, Size: 3*threshold + 1}
	b, err := batch.Spool(t.Context(), f.Reader(), -1)
	require.NoError(t, err)
	assert.Equal(t, crc64nvme.Checksum(f.Bytes()), b.CRC64NVME())
}
