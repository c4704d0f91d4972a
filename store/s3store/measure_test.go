package s3store

import (
	"bytes"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/minio/crc64nvme"
	"github.com/stretchr/testify/require"

	"spillway/store"
)

// TestMeasureCompletion times the completion of one upload of
// SPILLWAY_MEASURE_MIB MiB through presigned parts to versitygw, and counts
// the bytes the store reads from S3 meanwhile: the figures of
// docs/BENCHMARKS.md. It skips unless the variable is set.
func TestMeasureCompletion(t *testing.T) {
	mib, _ := strconv.Atoi(os.Getenv("SPILLWAY_MEASURE_MIB"))
	if mib <= 0 {
		t.Skip("set SPILLWAY_MEASURE_MIB to measure")
	}
	e := newEnv(t, Options{})
	cnt := &counting{base: &http.Transport{}}
	st := New(s3.New(e.gw.Client().Options(), func(o *s3.Options) { o.HTTPClient = &http.Client{Transport: cnt} }), e.gw.Bucket, Options{})
	size := int64(mib) << 20
	partSize := store.PartSizeFor(size)
	count := int((size + partSize - 1) / partSize)
	// Each part is its number's byte repeated: the whole file's CRC
	// comes from the parts in order, with no file in memory.
	partData := func(n int) []byte {
		return bytes.Repeat([]byte{byte(n)}, int(min(partSize, size-int64(n-1)*partSize)))
	}
	var crc uint64
	for n := 1; n <= count; n++ {
		crc = crc64nvme.Update(crc, partData(n))
	}
	u, err := st.CreateUpload(t.Context(), store.Upload{Name: "measure.bin", Size: size, CRC64NVME: store.EncodeCRC64NVME(crc), PartSize: partSize})
	require.NoError(t, err)
	parts := make([]store.Part, count)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for n := 1; n <= count; n++ {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			pu, err := st.PresignPart(t.Context(), u, n, time.Hour)
			if !assertNoError(t, err) {
				return
			}
			status, etag := putPart(t, http.DefaultClient, pu, partData(n))
			if status == http.StatusOK {
				parts[n-1] = store.Part{Number: n, Size: pu.Size, ETag: etag}
			}
		})
	}
	wg.Wait()
	cnt.mu.Lock()
	cnt.requests, cnt.bodyBytes = nil, 0
	cnt.mu.Unlock()
	start := time.Now()
	done, err := st.Complete(t.Context(), u.ID, parts)
	elapsed := time.Since(start)
	require.NoError(t, err)
	require.Equal(t, size, done.Size)
	cnt.mu.Lock()
	defer cnt.mu.Unlock()
	t.Logf("%d MiB in %d parts: Complete took %v, %d requests, %d bytes of objects read from S3", mib, count, elapsed.Round(time.Millisecond), len(cnt.requests), cnt.bodyBytes)
}

func assertNoError(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Error(err)
		return false
	}
	return true
}
