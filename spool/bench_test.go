package spool_test

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/minio/crc64nvme"

	"spillway/internal/uploadtest"
	"spillway/spool"
)

// BenchmarkSpool measures the spooler alone, from an in-memory reader, on
// both sides of the threshold, with the length known and unknown. The
// baseline is the SHA-256 of the same bytes, the work no spooler avoids.
func BenchmarkSpool(b *testing.B) {
	for _, tc := range []struct {
		name string
		size int64
	}{
		{"1KiB", 1 << 10},
		{"1MiB", 1 << 20},
		{"8MiB", 8 << 20},
	} {
		data := uploadtest.File{Seed: 1, Size: tc.size}.Bytes()
		b.Run(tc.name+"/baseline-sha256", func(b *testing.B) {
			b.SetBytes(tc.size)
			for b.Loop() {
				sha256.Sum256(data)
			}
		})
		// The CRC's own cost: what the spooler adds to the SHA-256 by
		// computing both.
		b.Run(tc.name+"/baseline-crc64nvme", func(b *testing.B) {
			b.SetBytes(tc.size)
			for b.Loop() {
				crc64nvme.Checksum(data)
			}
		})
		for _, known := range []bool{true, false} {
			name := tc.name + "/known"
			if !known {
				name = tc.name + "/unknown"
			}
			b.Run(name, func(b *testing.B) {
				s, err := spool.New(spool.Config{Dir: b.TempDir(), Threshold: spool.DefaultThreshold, MemoryBudget: spool.DefaultMemoryBudget})
				if err != nil {
					b.Fatal(err)
				}
				size := tc.size
				if !known {
					size = -1
				}
				b.SetBytes(tc.size)
				b.ReportAllocs()
				for b.Loop() {
					body, err := s.Spool(b.Context(), bytes.NewReader(data), size)
					if err != nil {
						b.Fatal(err)
					}
					body.Close()
				}
			})
		}
	}
}

// BenchmarkWriteBehind spools a large body to disk with and without the
// early writeback. Its cost is the request's own CPU: the kernel submits
// the writes in the caller's context.
func BenchmarkWriteBehind(b *testing.B) {
	const size = 64 << 20
	data := uploadtest.File{Seed: 1, Size: size}.Bytes()
	for _, on := range []bool{false, true} {
		name := map[bool]string{false: "off", true: "on"}[on]
		b.Run(name, func(b *testing.B) {
			s, err := spool.New(spool.Config{Dir: b.TempDir(), Threshold: spool.DefaultThreshold,
				MemoryBudget: spool.DefaultMemoryBudget, WriteBehind: on})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(size)
			for b.Loop() {
				body, err := s.Spool(b.Context(), bytes.NewReader(data), size)
				if err != nil {
					b.Fatal(err)
				}
				body.Close()
			}
		})
	}
}
