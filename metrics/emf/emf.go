// Package emf reports what the API handler and the spooler do as CloudWatch
// Embedded Metric Format lines, for the Lambda function. It has the same
// counters as package prom, which the local server uses, and shares no code
// with it: the function must not link Prometheus.
package emf

import (
	"encoding/json"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"spillway/api"
	"spillway/spool"
)

// Writer writes CloudWatch Embedded Metric Format lines: JSON log lines with
// an "_aws" block that CloudWatch Logs turns into metrics, with no agent and
// no API calls. It writes one line per request with the same counters the
// local server exports to Prometheus, and one at cold start. It implements
// api.Observer.
type Writer struct {
	w         io.Writer
	namespace string
	spooler   *spool.Spooler
	now       func() time.Time
	mu        sync.Mutex // serialises lines
	inFlight  atomic.Int64
}

var _ api.Observer = (*Writer)(nil)

// New returns a Writer for namespace, reading the spooler's gauges.
func New(w io.Writer, namespace string, sp *spool.Spooler) *Writer {
	return &Writer{w: w, namespace: namespace, spooler: sp, now: time.Now}
}

type emfMetric struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

type emfDirective struct {
	Namespace  string      `json:"Namespace"`
	Dimensions [][]string  `json:"Dimensions"`
	Metrics    []emfMetric `json:"Metrics"`
}

type emfMeta struct {
	Timestamp         int64          `json:"Timestamp"`
	CloudWatchMetrics []emfDirective `json:"CloudWatchMetrics"`
}

// requestMetrics are the metrics of one request line, in order.
var requestMetrics = []emfMetric{
	{"Requests", "Count"},
	{"Uploads", "Count"},
	{"UploadsCreated", "Count"},
	{"Rejected", "Count"},
	{"BytesReceived", "Bytes"},
	{"BytesStored", "Bytes"},
	{"FilesStored", "Count"},
	{"Duration", "Milliseconds"},
	{"UploadsInFlight", "Count"},
	{"MemoryBudgetInUse", "Bytes"},
	{"SpoolFilesOpen", "Count"},
	{"SpoolCleanupFailures", "Count"},
}

// UploadStarted implements api.Observer.
func (e *Writer) UploadStarted() { e.inFlight.Add(1) }

// UploadDone implements api.Observer.
func (e *Writer) UploadDone() { e.inFlight.Add(-1) }

// RequestDone implements api.Observer: one line for the request. Route and
// Result are dimensions; Code and Spool are searchable properties.
func (e *Writer) RequestDone(o api.Outcome) {
	route := "other"
	if o.Upload {
		route = "upload"
	}
	result := o.Code
	if result == "" {
		result = "ok"
	}
	st := e.spooler.Stats()
	line := map[string]any{
		"Route":                route,
		"Result":               result,
		"Status":               o.Status,
		"Spool":                o.Spool,
		"Requests":             1,
		"Uploads":              b2i(o.Upload),
		"UploadsCreated":       b2i(o.Upload && o.Code == ""),
		"Rejected":             b2i(o.Code != ""),
		"BytesReceived":        o.BytesReceived,
		"BytesStored":          o.BytesStored,
		"FilesStored":          o.Files,
		"Duration":             float64(o.Duration.Microseconds()) / 1000,
		"UploadsInFlight":      e.inFlight.Load(),
		"MemoryBudgetInUse":    st.MemoryInUse,
		"SpoolFilesOpen":       st.OpenFiles,
		"SpoolCleanupFailures": st.CleanupFailures,
	}
	e.write(line, [][]string{{"Route"}, {"Route", "Result"}}, requestMetrics)
}

// ColdStart writes the line for a cold start: the orphans it swept.
func (e *Writer) ColdStart(swept int) {
	e.write(map[string]any{"Event": "cold_start", "OrphansSwept": swept},
		[][]string{{}}, []emfMetric{{"OrphansSwept", "Count"}})
}

func (e *Writer) write(line map[string]any, dims [][]string, ms []emfMetric) {
	line["_aws"] = emfMeta{
		Timestamp:         e.now().UnixMilli(),
		CloudWatchMetrics: []emfDirective{{Namespace: e.namespace, Dimensions: dims, Metrics: ms}},
	}
	b, err := json.Marshal(line)
	if err != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.w.Write(append(b, '\n'))
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
