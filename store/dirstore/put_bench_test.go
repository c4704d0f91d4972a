package dirstore

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"spillway/store"
)

// BenchmarkPutParallel publishes 1 KiB bodies from memory, each under a
// new name in one folder, from many goroutines at once, as the small-PUT
// bench's connections do: with the case-twin check and without, with
// fsync and without; durable, also with each upload fsyncing its own file
// (alone), as they do when much is left to write (maxDirtySyncFS). The
// folder grows through the run, as the bench's does.
func BenchmarkPutParallel(b *testing.B) {
	for _, tc := range []struct {
		opts  Options
		alone bool
	}{
		{Options{}, false},
		{Options{CaseSensitiveNames: true}, false},
		{Options{Fsync: true}, false},
		{Options{Fsync: true}, true},
		{Options{Fsync: true, CaseSensitiveNames: true}, false},
	} {
		opts := tc.opts
		name := fmt.Sprintf("fsync=%v/case-sensitive=%v", opts.Fsync, opts.CaseSensitiveNames)
		if tc.alone {
			name += "/alone"
		}
		b.Run(name, func(b *testing.B) {
			s, _, err := Open(b.TempDir(), opts)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if tc.alone {
				s.maxDirty = -1
			}
			var syncs atomic.Int64
			s.testHookSyncData = func(bool) { syncs.Add(1) }
			body := memBody(string(make([]byte, 1<<10)))
			var n atomic.Int64
			b.SetParallelism(16)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					name := "put-" + strconv.FormatInt(n.Add(1), 10) + ".bin"
					if err := s.Check(b.Context(), name, body.Size()); err != nil {
						b.Error(err)
						return
					}
					if err := s.Put(b.Context(), []store.File{{Name: name, Body: body}}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(syncs.Load())/float64(b.N), "datasyncs/op")
		})
	}
}
