package emf_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/api"
	"spillway/metrics/emf"
	"spillway/spool"
)

func newSpooler(t *testing.T) *spool.Spooler {
	t.Helper()
	sp, err := spool.New(spool.Config{Dir: t.TempDir(), Threshold: 10, MemoryBudget: 1 << 20})
	require.NoError(t, err)
	return sp
}

// TestEMFSchema checks each line against the Embedded Metric Format
// specification: an _aws object with a millisecond Timestamp and
// CloudWatchMetrics directives whose dimensions and metrics name top-level
// members, dimension values being strings and metric values numbers.
func TestEMFSchema(t *testing.T) {
	sp := newSpooler(t)
	var buf bytes.Buffer
	e := emf.New(&buf, "Spillway", sp)
	e.ColdStart(2)
	e.UploadStarted()
	e.RequestDone(api.Outcome{Upload: true, Status: 201, Spool: "memory", Files: 2, BytesReceived: 300, BytesStored: 256, Duration: 1500 * time.Microsecond})
	e.UploadDone()
	e.RequestDone(api.Outcome{Status: 400, Code: "invalid_name"})

	lines := readLines(t, &buf)
	require.Len(t, lines, 3)
	for _, l := range lines {
		requireEMF(t, l)
	}
	assert.EqualValues(t, 2, lines[0]["OrphansSwept"])
	up := lines[1]
	assert.Equal(t, "upload", up["Route"])
	assert.Equal(t, "ok", up["Result"])
	assert.EqualValues(t, 1, up["UploadsCreated"])
	assert.EqualValues(t, 256, up["BytesStored"])
	assert.EqualValues(t, 2, up["FilesStored"])
	assert.EqualValues(t, 1.5, up["Duration"])
	assert.EqualValues(t, 1, up["UploadsInFlight"])
	bad := lines[2]
	assert.Equal(t, "other", bad["Route"])
	assert.Equal(t, "invalid_name", bad["Result"])
	assert.EqualValues(t, 1, bad["Rejected"])
	assert.EqualValues(t, 0, bad["UploadsInFlight"])
}

func readLines(t *testing.T, r io.Reader) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		var l map[string]any
		require.NoError(t, json.Unmarshal(sc.Bytes(), &l), sc.Text())
		lines = append(lines, l)
	}
	return lines
}

var emfUnits = map[string]bool{
	"Seconds": true, "Microseconds": true, "Milliseconds": true, "Bytes": true, "Kilobytes": true,
	"Megabytes": true, "Gigabytes": true, "Terabytes": true, "Bits": true, "Percent": true,
	"Count": true, "Bytes/Second": true, "Count/Second": true, "None": true,
}

// requireEMF fails t unless line is a valid EMF log line.
func requireEMF(t *testing.T, line map[string]any) {
	t.Helper()
	aws, ok := line["_aws"].(map[string]any)
	require.True(t, ok, "no _aws object")
	ts, ok := aws["Timestamp"].(float64)
	require.True(t, ok, "Timestamp must be a number")
	assert.InDelta(t, float64(time.Now().UnixMilli()), ts, 60_000, "Timestamp in epoch milliseconds")
	directives, ok := aws["CloudWatchMetrics"].([]any)
	require.True(t, ok)
	require.NotEmpty(t, directives)
	for _, d := range directives {
		dir := d.(map[string]any)
		ns, _ := dir["Namespace"].(string)
		require.NotEmpty(t, ns)
		dims, ok := dir["Dimensions"].([]any)
		require.True(t, ok, "Dimensions must be an array of arrays")
		for _, set := range dims {
			keys := set.([]any)
			assert.LessOrEqual(t, len(keys), 30)
			for _, k := range keys {
				v, ok := line[k.(string)].(string)
				assert.True(t, ok && v != "", "dimension %v must be a non-empty top-level string", k)
			}
		}
		ms, ok := dir["Metrics"].([]any)
		require.True(t, ok)
		assert.LessOrEqual(t, len(ms), 100)
		for _, m := range ms {
			def := m.(map[string]any)
			name := def["Name"].(string)
			_, isNum := line[name].(float64)
			assert.True(t, isNum, "metric %s must be a top-level number", name)
			assert.True(t, emfUnits[def["Unit"].(string)], "unit %v", def["Unit"])
		}
	}
}
