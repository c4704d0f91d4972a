// Package prom turns what the API handler and the spooler do into
// Prometheus metrics, for the local server's /metrics. The Lambda function
// reports the same counters through package emf instead; it is kept apart so
// that the function links no Prometheus code and runs none of its init at
// cold start.
package prom

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"spillway/api"
	"spillway/spool"
	"spillway/wire"
)

// Metrics collects the server's metrics in its own registry. It implements
// api.Observer.
type Metrics struct {
	registry *prometheus.Registry

	uploads  *prometheus.CounterVec
	rejected *prometheus.CounterVec
	received prometheus.Counter
	stored   prometheus.Counter
	duration prometheus.Histogram
	inFlight prometheus.Gauge
	swept    prometheus.Counter
	expired  prometheus.Counter
}

var _ api.Observer = (*Metrics)(nil)

// New returns the collectors, with the Go and process collectors and gauges
// that read the spooler's counters when scraped.
func New(sp *spool.Spooler) *Metrics {
	reg := prometheus.NewRegistry()
	p := &Metrics{
		registry: reg,
		uploads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spillway_uploads_total",
			Help: "Upload requests by result (created or the error code) and by where their bodies were spooled.",
		}, []string{"result", "spool"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "spillway_rejected_requests_total",
			Help: "Requests answered with an error, by error code.",
		}, []string{"code"}),
		received: counter("spillway_received_bytes_total", "Request body bytes read."),
		stored:   counter("spillway_stored_bytes_total", "Bytes of files stored."),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "spillway_upload_duration_seconds",
			Help:    "Time from an upload request's start to its response.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10), // 1 ms to about 4.4 min
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{Name: "spillway_uploads_in_flight", Help: "Uploads being handled now."}),
		swept:    counter("spillway_orphans_swept_total", "Orphaned spool and staging files removed at start-up."),
		expired:  counter("spillway_retention_removed_total", "Stored files removed for being older than the retention."),
	}
	// The spooler's counters are read when scraped.
	stat := func(f func(spool.Stats) int64) func() float64 {
		return func() float64 { return float64(f(sp.Stats())) }
	}
	spooled := func(where wire.Spool, f func(spool.Stats) int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "spillway_spooled_bodies_total",
			Help:        "Bodies spooled, to memory and to disk.",
			ConstLabels: prometheus.Labels{"spool": string(where)},
		}, stat(f))
	}
	reg.MustRegister(
		p.uploads, p.rejected, p.received, p.stored, p.duration, p.inFlight, p.swept, p.expired,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "spillway_memory_budget_in_use_bytes",
			Help: "Bytes of the memory budget held by bodies now.",
		}, stat(func(s spool.Stats) int64 { return s.MemoryInUse })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "spillway_spool_files_open",
			Help: "Spool files open now.",
		}, stat(func(s spool.Stats) int64 { return s.OpenFiles })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "spillway_spool_cleanup_failures_total",
			Help: "Spool files that could not be closed or removed.",
		}, stat(func(s spool.Stats) int64 { return s.CleanupFailures })),
		spooled(wire.SpoolMemory, func(s spool.Stats) int64 { return s.MemoryBodies }),
		spooled(wire.SpoolDisk, func(s spool.Stats) int64 { return s.DiskBodies }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return p
}

func counter(name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
}

// Swept records the orphans removed at start-up.
func (p *Metrics) Swept(n int) { p.swept.Add(float64(n)) }

// Expired records files the retention sweep removed.
func (p *Metrics) Expired(n int) { p.expired.Add(float64(n)) }

// UploadStarted implements api.Observer.
func (p *Metrics) UploadStarted() { p.inFlight.Inc() }

// UploadDone implements api.Observer.
func (p *Metrics) UploadDone() { p.inFlight.Dec() }

// RequestDone implements api.Observer.
func (p *Metrics) RequestDone(o api.Outcome) {
	p.received.Add(float64(o.BytesReceived))
	p.stored.Add(float64(o.BytesStored))
	if o.Code != "" {
		p.rejected.WithLabelValues(string(o.Code)).Inc()
	}
	if !o.Upload {
		return
	}
	result := string(o.Code)
	if result == "" {
		result = "created"
	}
	spooled := string(o.Spool)
	if spooled == "" {
		spooled = "none"
	}
	p.uploads.WithLabelValues(result, spooled).Inc()
	p.duration.Observe(o.Duration.Seconds())
}

// Handler serves the metrics in the Prometheus text format.
func (p *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(p.registry, promhttp.HandlerOpts{})
}
