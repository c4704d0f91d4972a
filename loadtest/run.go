package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"spillway/internal/testservers"
)

// kindStats counts one kind of request.
type kindStats struct {
	Requests int // sent
	Created  int // answered 201 and verified or not
	Files    int // files in the 201s
}

// Summary is the outcome of a load test.
type Summary struct {
	Config  config
	Target  string // the server's URL
	PID     int
	Elapsed time.Duration // from the first request to the last answer

	Requests        int
	ByStatus        map[int]int
	ByKind          map[string]*kindStats
	BySpool         map[string]int // the response's spool field, per file
	TransportErrors int            // requests with no HTTP answer
	Status5xx       int
	OtherStatus     int   // neither 201 nor 5xx
	BytesSent       int64 // payload bytes of every request sent
	BytesStored     int64 // payload bytes of the 201s
	P50, P99, Max   time.Duration

	FilesVerified  int
	VerifyFailures int
	Leaks          []string

	RSSChecked    bool
	PeakRSS       int64 // max(VmHWM, sampled VmRSS)
	HWM           int64
	MaxSampledRSS int64
	RSSLimit      int64
	FDsStart      int
	FDsEnd        int
	MinFreeDisk   int64 // least free space seen in the upload directory's filesystem

	ServerLog ServerLog
	Samples   []string // the first few failures, for the report
	Failures  []string // why the run fails; empty when it passes
}

// ServerLog is what the started server logged.
type ServerLog struct {
	Lines, Warn, Error int
	Tail               []string // last warn and error lines
	Stopped            string   // the "stopped" line with its spool counters
}

// OK tells whether every check passed.
func (s *Summary) OK() bool { return len(s.Failures) == 0 }

// run runs one load test. Its error is for a test that could not run (bad
// configuration, a server that does not start); failed checks are in the
// summary.
func run(ctx context.Context, cfg config) (*Summary, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	sum := &Summary{
		Config:   cfg,
		ByStatus: map[int]int{},
		ByKind:   map[string]*kindStats{},
		BySpool:  map[string]int{},
		RSSLimit: cfg.MemoryBudget + rssOverhead,
		FDsStart: -1,
		FDsEnd:   -1,
	}
	for _, k := range kinds {
		sum.ByKind[k] = &kindStats{}
	}

	var srv *server
	dir, spoolDir, pid, base := cfg.Directory, cfg.SpoolDir, cfg.PID, cfg.URL
	if cfg.Server != "" {
		work, err := os.MkdirTemp(cfg.WorkDir, "spillway-loadtest-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(work)
		dir, spoolDir = filepath.Join(work, "uploads"), filepath.Join(work, "spool")
		if err := os.Mkdir(spoolDir, 0o700); err != nil {
			return nil, err
		}
		if srv, err = startServer(ctx, cfg, dir, spoolDir); err != nil {
			return nil, err
		}
		defer srv.Kill()
		pid, base = srv.Pid(), srv.URL
	}
	base = strings.TrimRight(base, "/")
	sum.Target, sum.PID = base, pid
	if err := checkDiskSpace(cfg, dir, spoolDir); err != nil {
		return nil, err
	}
	if pid != 0 {
		sum.FDsStart = testservers.CountFDs(pid)
	}

	client := newClient(cfg.Clients)
	defer client.CloseIdleConnections()
	if err := healthz(ctx, client, base); err != nil {
		return nil, err
	}

	lt := &loadTest{
		cfg:    cfg,
		client: client,
		base:   base,
		dir:    dir,
		runID:  "lt" + strconv.FormatInt(time.Now().UnixNano()%1e12, 36),
		sum:    sum,
	}
	sampler := startSampler(pid, dir)
	lt.run(ctx)
	client.CloseIdleConnections()

	lt.checkLeaks(ctx, spoolDir, pid, srv != nil)
	rss := sampler.stop()
	if pid != 0 {
		if hwm, err := testservers.ProcStatusBytes(pid, "VmHWM"); err == nil {
			sum.RSSChecked = true
			sum.HWM = hwm
			sum.MaxSampledRSS = rss.maxRSS
			sum.PeakRSS = max(hwm, rss.maxRSS)
		}
	}
	sum.MinFreeDisk = rss.minFree

	if srv != nil {
		if err := srv.stop(); err != nil {
			sum.Failures = append(sum.Failures, "server: "+err.Error())
		}
		if left := spoolEntries(spoolDir, true); len(left) > 0 {
			sum.Leaks = append(sum.Leaks, fmt.Sprintf("spool dir after shutdown: %d entries left: %s", len(left), strings.Join(first(left, 5), ", ")))
		}
		sum.ServerLog = srv.log()
		if st := sum.ServerLog.Stopped; st != "" {
			for _, key := range []string{"spool_files_open", "cleanup_failures"} {
				if v := logField(st, key); v != "" && v != "0" {
					sum.Leaks = append(sum.Leaks, fmt.Sprintf("server stopped with %s=%s", key, v))
				}
			}
		}
	}
	sum.judge()
	return sum, nil
}

// judge fills in the failures.
func (s *Summary) judge() {
	fail := func(format string, args ...any) { s.Failures = append(s.Failures, fmt.Sprintf(format, args...)) }
	if s.Status5xx > 0 {
		fail("%d responses with a 5xx status", s.Status5xx)
	}
	if s.OtherStatus > 0 {
		fail("%d responses with a status other than 201", s.OtherStatus)
	}
	if s.TransportErrors > 0 {
		fail("%d requests got no HTTP answer", s.TransportErrors)
	}
	if s.VerifyFailures > 0 {
		fail("%d verification failures", s.VerifyFailures)
	}
	if len(s.Leaks) > 0 {
		fail("%d leaks", len(s.Leaks))
	}
	if s.RSSChecked && s.PeakRSS > s.RSSLimit {
		fail("peak RSS %s over the limit %s", mib(s.PeakRSS), mib(s.RSSLimit))
	}
	if s.Requests == 0 {
		fail("no request was sent")
	}
}
