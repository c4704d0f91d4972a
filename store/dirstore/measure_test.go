package dirstore_test

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"spillway/store"
	"spillway/store/dirstore"
)

// TestMeasureCompletion times the completion of one upload of
// SPILLWAY_MEASURE_MIB MiB on the directory store, with fsync, and the
// most free space it took meanwhile: the figures of docs/BENCHMARKS.md. It
// skips unless the variable is set.
func TestMeasureCompletion(t *testing.T) {
	mib, _ := strconv.Atoi(os.Getenv("SPILLWAY_MEASURE_MIB"))
	if mib <= 0 {
		t.Skip("set SPILLWAY_MEASURE_MIB to measure")
	}
	e := newEnv(t, dirstore.Options{Fsync: true})
	size := int64(mib) << 20
	partSize := store.PartSizeFor(size)
	u, err := e.store.CreateUpload(t.Context(), store.Upload{Name: "measure.bin", Size: size, PartSize: partSize})
	require.NoError(t, err)
	var parts []store.Part
	for n := 1; n <= u.PartCount(); n++ {
		data := bytes.Repeat([]byte{byte(n)}, int(u.PartSizeOf(n)))
		b, err := e.spooler.Spool(t.Context(), bytes.NewReader(data), int64(len(data)))
		require.NoError(t, err)
		p, err := e.store.PutPart(t.Context(), u.ID, n, b)
		require.NoError(t, b.Close())
		require.NoError(t, err)
		parts = append(parts, p)
	}

	// Free space is sampled while Complete runs: the least seen, against
	// the free space before, is what completing took.
	before := freeBytes(t, e.dir)
	least := before
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			least = min(least, freeBytes(t, e.dir))
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	start := time.Now()
	_, err = e.store.Complete(t.Context(), u.ID, parts)
	elapsed := time.Since(start)
	close(stop)
	wg.Wait()
	require.NoError(t, err)
	t.Logf("%d MiB in %d parts: Complete took %v, free space fell by up to %d bytes", mib, len(parts), elapsed.Round(time.Millisecond), before-least)
	require.NoError(t, os.Remove(e.dir+"/measure.bin"))
}
