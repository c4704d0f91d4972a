package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"spillway/internal/bytesize"
)

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// Write prints the summary.
func (s *Summary) Write(w io.Writer) {
	c := s.Config
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	secs := s.Elapsed.Seconds()
	if secs <= 0 {
		secs = 1
	}
	target := s.Target
	if c.Server != "" {
		target = fmt.Sprintf("%s (%s, pid %d, fsync=%t)", s.Target, c.Server, s.PID, c.Fsync)
	}
	p("spillway load test against %s", target)
	p("  clients %d, duration %s (ran %.1fs), largest request %s, seed %d",
		c.Clients, c.Duration, s.Elapsed.Seconds(), bytesize.Format(c.MaxSize), c.Seed)

	var statuses []string
	for _, code := range slices.Sorted(maps.Keys(s.ByStatus)) {
		statuses = append(statuses, fmt.Sprintf("%d: %d", code, s.ByStatus[code]))
	}
	if s.TransportErrors > 0 {
		statuses = append(statuses, fmt.Sprintf("no answer: %d", s.TransportErrors))
	}
	p("requests      %d (%s)", s.Requests, strings.Join(statuses, ", "))
	var byKind []string
	for _, k := range kinds {
		ks := s.ByKind[k]
		byKind = append(byKind, fmt.Sprintf("%s %d/%d", k, ks.Created, ks.Requests))
	}
	p("  201/sent    %s; %d files stored", strings.Join(byKind, ", "), s.FilesVerified)
	var spools []string
	for _, k := range slices.Sorted(maps.Keys(s.BySpool)) {
		spools = append(spools, fmt.Sprintf("%s %d", k, s.BySpool[k]))
	}
	p("  spool       %s", strings.Join(spools, ", "))
	p("bytes         %.1f MB sent, %.1f MB stored and verified", float64(s.BytesSent)/1e6, float64(s.BytesStored)/1e6)
	p("throughput    %.1f MB/s, %.1f req/s", float64(s.BytesStored)/1e6/secs, float64(s.Requests)/secs)
	p("latency       p50 %s, p99 %s, max %s", s.P50.Round(100*time.Microsecond), s.P99.Round(100*time.Microsecond), s.Max.Round(100*time.Microsecond))
	p("5xx           %d", s.Status5xx)
	p("verification  %d files checked (201 sha256 and stored file), %d failures", s.FilesVerified, s.VerifyFailures)
	if len(s.Leaks) == 0 {
		fds := "fds not checked"
		if s.FDsEnd >= 0 {
			fds = fmt.Sprintf("fds %d before, %d after", s.FDsStart, s.FDsEnd)
		}
		spool := "spool dir empty"
		if c.URL != "" && c.SpoolDir == "" {
			spool = "spool dir not checked"
		}
		p("leaks         0 (%s, no staging or leftover files, %s)", spool, fds)
	} else {
		p("leaks         %d", len(s.Leaks))
		for _, l := range s.Leaks {
			p("  %s", l)
		}
	}
	if s.RSSChecked {
		verdict := "within"
		if s.PeakRSS > s.RSSLimit {
			verdict = "OVER"
		}
		p("peak RSS      %s (VmHWM %s, max sampled VmRSS %s), %s the limit %s (budget %s + %s)",
			mib(s.PeakRSS), mib(s.HWM), mib(s.MaxSampledRSS), verdict, mib(s.RSSLimit), mib(c.MemoryBudget), mib(rssOverhead))
	} else {
		p("peak RSS      not checked (no --pid)")
	}
	if s.MinFreeDisk >= 0 {
		p("disk          least free during the run: %.1f GiB", float64(s.MinFreeDisk)/(1<<30))
	}
	if c.Server != "" {
		p("server log    %d lines, %d warn, %d error", s.ServerLog.Lines, s.ServerLog.Warn, s.ServerLog.Error)
		for _, l := range s.ServerLog.Tail {
			p("  %s", l)
		}
	}
	if len(s.Samples) > 0 {
		p("first problems:")
		for _, m := range s.Samples {
			p("  %s", m)
		}
	}
	if s.OK() {
		p("result        PASS")
		return
	}
	p("result        FAIL: %s", strings.Join(s.Failures, "; "))
}
