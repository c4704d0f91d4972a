package s3store

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/uploadtest"
	"spillway/store/storetest"
)

// throttled is a transport that carries at most rate bytes a second each
// way, as a slow link between a function and S3 would.
type throttled struct {
	base http.RoundTripper
	rate int64 // bytes a second
}

func (t *throttled) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r = r.Clone(r.Context())
		r.Body = &slowReader{r: r.Body, rate: t.rate, start: time.Now()}
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &slowReader{r: resp.Body, rate: t.rate, start: time.Now()}
	return resp, nil
}

// slowReader paces its reads to rate bytes a second since start.
type slowReader struct {
	r     io.ReadCloser
	rate  int64
	start time.Time
	n     int64
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(p) > 64<<10 {
		p = p[:64<<10]
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	// The link's pace, not a wait for another goroutine.
	if due := s.start.Add(time.Duration(s.n * int64(time.Second) / s.rate)); time.Until(due) > 0 {
		time.Sleep(time.Until(due))
	}
	return n, err
}

func (s *slowReader) Close() error { return s.r.Close() }

// TestCompletionFitsAShortTimeoutOnASlowLink is the scale model of a
// function completing a large upload within its timeout: a 60 MiB upload
// whose parts the client sent straight to S3, completed by a store whose
// link to S3 carries 4 MB/s, within 5 s. Reading the object back, as
// completion did up to commit 40001d9, would alone take 15 s on that link;
// completion now moves no bytes of the file, so its time does not depend
// on the file's size.
func TestCompletionFitsAShortTimeoutOnASlowLink(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 60 MiB")
	}
	e := newEnv(t, Options{})
	slow := New(s3.New(e.gw.Client().Options(), func(o *s3.Options) {
		o.HTTPClient = &http.Client{Transport: &throttled{base: &http.Transport{}, rate: 4_000_000}}
	}), e.gw.Bucket, Options{})
	f := uploadtest.File{Name: "model.bin", Seed: 240, Size: 60 << 20}
	u := createUploadCRC(t, slow, f, f.SHA256(), crcOf(f))
	// The client sends the parts straight to S3, not over the function's
	// link.
	parts := sendParts(t, http.DefaultClient, slow, u, f.Bytes())

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	done, err := slow.Complete(ctx, u.ID, parts)
	took := time.Since(start)
	require.NoError(t, err, "completion within the model's 5 s timeout (took %s)", took)
	t.Logf("60 MiB completed over a 4 MB/s link in %s", took)
	assert.Equal(t, crcOf(f), done.CRC64NVME)
	storetest.RequireStored(t, e.store, f)
	requireGone(t, e, e.store, "", u.ID)
}
