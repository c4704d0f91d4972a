package api_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/internal/uploadtest"
	"spillway/spool"
	"spillway/wire"
)

type recordingObserver struct {
	mu       sync.Mutex
	inFlight int
	peak     int
	outcomes []api.Outcome
}

func (o *recordingObserver) UploadStarted() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.inFlight++
	o.peak = max(o.peak, o.inFlight)
}

func (o *recordingObserver) UploadDone() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.inFlight--
}

func (o *recordingObserver) RequestDone(out api.Outcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.outcomes = append(o.outcomes, out)
}

func TestObserverSeesEveryRequest(t *testing.T) {
	obs := &recordingObserver{}
	s := newServer(t, options{observer: obs})
	files := []uploadtest.File{{Name: "a.bin", Seed: 1, Size: 10}, {Name: "b.bin", Seed: 2, Size: spool.DefaultThreshold + 1}}
	resp, body := s.send(t, uploadtest.Case{Mode: uploadtest.MultipartMany, Files: files})
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	s.waitServed(t)
	resp, body = s.send(t, uploadtest.Case{Mode: uploadtest.RawLength, Files: files[:1]})
	requireError(t, resp, body, http.StatusConflict, "exists")
	s.waitServed(t)
	resp, _ = s.do(t, s.request(t, http.MethodGet, "/files", nil, 0))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	s.waitServed(t)

	obs.mu.Lock()
	defer obs.mu.Unlock()
	require.Len(t, obs.outcomes, 3)
	up := obs.outcomes[0]
	assert.True(t, up.Upload)
	assert.Equal(t, http.StatusCreated, up.Status)
	assert.Equal(t, wire.SpoolMixed, up.Spool)
	assert.Equal(t, 2, up.Files)
	assert.Equal(t, int64(10+spool.DefaultThreshold+1), up.BytesStored)
	assert.Greater(t, up.BytesReceived, up.BytesStored, "multipart framing counts as received")
	assert.Positive(t, up.Duration)

	refused := obs.outcomes[1]
	assert.True(t, refused.Upload)
	assert.Equal(t, wire.CodeExists, refused.Code)
	assert.Zero(t, refused.Files)

	assert.False(t, obs.outcomes[2].Upload)
	assert.Equal(t, 1, obs.peak, "one upload at a time")
	assert.Zero(t, obs.inFlight)
}

func TestProgressIsLoggedForLongUploadsOnly(t *testing.T) {
	quiet := newServer(t, options{})
	f := uploadtest.File{Name: "quick.bin", Size: 3 << 20}
	resp, body := quiet.send(t, uploadtest.Case{Mode: uploadtest.RawLength, Files: []uploadtest.File{f}})
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	quiet.waitServed(t)
	assert.NotContains(t, quiet.logs.String(), "upload progress", "a quick upload logs no progress")

	// With a tiny interval every read is "long" enough to report.
	chatty := newServer(t, options{progress: 1})
	resp, body = chatty.send(t, uploadtest.Case{Mode: uploadtest.RawLength, Files: []uploadtest.File{f}})
	require.Equal(t, http.StatusCreated, resp.StatusCode, string(body))
	chatty.waitServed(t)
	logs := chatty.logs.String()
	require.Contains(t, logs, `"msg":"upload progress"`)
	line := logs[strings.Index(logs, `"msg":"upload progress"`):]
	line = line[:strings.Index(line, "\n")]
	assert.Contains(t, line, `"path":"/files/quick.bin"`)
	assert.Contains(t, line, `"expected":3145728`)
	assert.Contains(t, line, `"mb_per_s":`)
}
