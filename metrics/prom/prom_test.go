package prom_test

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/metrics/prom"
	"spillway/spool"
)

func newSpooler(t *testing.T) *spool.Spooler {
	t.Helper()
	sp, err := spool.New(spool.Config{Dir: t.TempDir(), Threshold: 10, MemoryBudget: 1 << 20})
	require.NoError(t, err)
	return sp
}

func scrape(t *testing.T, p *prom.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	p.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	return rec.Body.String()
}

func TestPrometheus(t *testing.T) {
	sp := newSpooler(t)
	p := prom.New(sp)
	p.Swept(3)
	b, err := sp.Spool(t.Context(), strings.NewReader("held on disk"), -1)
	require.NoError(t, err)
	defer b.Close()

	p.UploadStarted()
	p.UploadStarted()
	p.UploadDone()
	p.RequestDone(api.Outcome{Upload: true, Status: 201, Spool: "disk", Files: 1, BytesReceived: 100, BytesStored: 100, Duration: 20 * time.Millisecond})
	p.RequestDone(api.Outcome{Upload: true, Status: 409, Code: "exists", BytesReceived: 0, Duration: time.Millisecond})
	p.RequestDone(api.Outcome{Upload: false, Status: 404, Code: "not_found"})

	out := scrape(t, p)
	for _, want := range []string{
		`spillway_uploads_total{result="created",spool="disk"} 1`,
		`spillway_uploads_total{result="exists",spool="none"} 1`,
		`spillway_rejected_requests_total{code="exists"} 1`,
		`spillway_rejected_requests_total{code="not_found"} 1`,
		`spillway_received_bytes_total 100`,
		`spillway_stored_bytes_total 100`,
		`spillway_upload_duration_seconds_count 2`,
		`spillway_uploads_in_flight 1`,
		`spillway_orphans_swept_total 3`,
		`spillway_spool_files_open 1`,
		`spillway_memory_budget_in_use_bytes 0`,
		`spillway_spool_cleanup_failures_total 0`,
		`spillway_spooled_bodies_total{spool="disk"} 1`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	} {
		assert.Contains(t, out, want)
	}
}
