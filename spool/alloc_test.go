package spool_test

import (
	"bytes"
	"math"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/spool"
)

// allocatedPerSpool returns the heap bytes one Spool and Close of data
// allocate, averaged over runs after a warm-up (which fills the pools).
func allocatedPerSpool(t *testing.T, s *spool.Spooler, data []byte, size int64) uint64 {
	t.Helper()
	once := func() {
		b, err := s.Spool(t.Context(), bytes.NewReader(data), size)
		require.NoError(t, err)
		require.NoError(t, b.Close())
	}
	// A collection empties sync.Pools, and what refills them would be
	// counted against the spooler; with the collector off, the figure is
	// the spooler's alone.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	once()
	// sync.Pool keeps a cache per P: when the scheduler moves a buffer's
	// user to another P, a Get can miss and make one pipeline buffer anew,
	// once in a while, which says nothing about the spooler. The least of a
	// few rounds drops that; a body that costs a buffer costs it in every
	// round.
	const rounds, runs = 3, 20
	least := uint64(math.MaxUint64)
	for range rounds {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for range runs {
			once()
		}
		runtime.ReadMemStats(&after)
		least = min(least, (after.TotalAlloc-before.TotalAlloc)/runs)
	}
	return least
}

// TestSpoolAllocations guards the memory the spooler costs per body: a body
// in memory costs its own size and little more, and a body on disk costs
// almost nothing whatever its size, with its length known or not. An
// unknown-length body that used to grow a buffer by doubling left about
// 4 MiB of garbage per spill; these bounds fail on any such regression.
func TestSpoolAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation figures mean nothing under the race detector; `make test` runs this test again without it")
	}
	s, dir := newSpooler(t, nil)
	for _, tc := range []struct {
		name  string
		size  int64
		known bool
		limit uint64 // bytes allocated per body
	}{
		{"memory 1 KiB known", 1 << 10, true, 1<<10 + 2<<10},
		{"memory 1 KiB unknown", 1 << 10, false, 1<<10 + 2<<10},
		{"memory 1 MiB unknown", 1 << 20, false, 1<<20 + 4<<10},
		{"disk 8 MiB known", 8 << 20, true, 16 << 10},
		{"disk 8 MiB unknown", 8 << 20, false, 16 << 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			size := tc.size
			if !tc.known {
				size = -1
			}
			data := uploadtest.File{Seed: 1, Size: tc.size}.Bytes()
			got := allocatedPerSpool(t, s, data, size)
			t.Logf("%d bytes allocated per body", got)
			assert.LessOrEqual(t, got, tc.limit)
		})
	}
	uploadtest.RequireEmptyDir(t, dir)
}
