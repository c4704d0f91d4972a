package spool_test

import (
	"bytes"
	"crypto/sha256"
	"syscall"
	"testing"
	"time"

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

// BenchmarkWriteBehind spools a large body to disk and fsyncs its file,
// as a durable store does, with and without the early writeback. Both pay
// for writing the pages back: without it the fsync does all of it at the
// end, while the caller waits. So it reports, beside the time, the
// process's CPU per GB (user and system: the kernel submits the writes in
// the caller's context either way) and the fsync's own time, which the
// early writeback exists to shorten.
func BenchmarkWriteBehind(b *testing.B) {
	const size = 256 << 20
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
			var fsync time.Duration
			cpu0 := processCPU(b)
			for b.Loop() {
				body, err := s.Spool(b.Context(), bytes.NewReader(data), size)
				if err != nil {
					b.Fatal(err)
				}
				start := time.Now()
				if err := body.File().Sync(); err != nil {
					b.Fatal(err)
				}
				fsync += time.Since(start)
				body.Close()
			}
			n := float64(b.N)
			b.ReportMetric((processCPU(b)-cpu0).Seconds()/(n*size/1e9), "cpu-s/GB")
			b.ReportMetric(float64(fsync.Microseconds())/1e3/n, "fsync-ms/op")
		})
	}
}

// processCPU is the CPU time, user and system, this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
