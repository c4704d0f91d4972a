package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"spillway/internal/testservers"
)

// checkLeaks waits up to a few seconds for the server to finish cleaning up
// after the last answers, then records whatever is still there: spool
// files, staging files, files of this run that were not deleted (a request
// that failed but stored something), and open descriptors beyond the
// baseline.
func (lt *loadTest) checkLeaks(ctx context.Context, spoolDir string, pid int, ownSpool bool) {
	var leaks []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		leaks = leaks[:0]
		if spoolDir != "" {
			if left := spoolEntries(spoolDir, ownSpool); len(left) > 0 {
				leaks = append(leaks, fmt.Sprintf("spool dir: %d entries left: %s", len(left), strings.Join(first(left, 5), ", ")))
			}
		}
		staging, leftover, err := scanUploads(lt.dir, lt.runID)
		if err != nil {
			leaks = append(leaks, "upload dir: "+err.Error())
		}
		if len(staging) > 0 {
			leaks = append(leaks, fmt.Sprintf("upload dir: %d staging files: %s", len(staging), strings.Join(first(staging, 5), ", ")))
		}
		if len(leftover) > 0 {
			leaks = append(leaks, fmt.Sprintf("upload dir: %d files of this run left: %s", len(leftover), strings.Join(first(leftover, 5), ", ")))
		}
		if pid != 0 && lt.sum.FDsStart >= 0 {
			lt.sum.FDsEnd = testservers.CountFDs(pid)
			if lt.sum.FDsEnd > lt.sum.FDsStart {
				leaks = append(leaks, fmt.Sprintf("server has %d open fds, %d before the run", lt.sum.FDsEnd, lt.sum.FDsStart))
			}
		}
		if len(leaks) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	lt.sum.Leaks = append(lt.sum.Leaks, leaks...)
	// This run's (now empty) folders.
	os.RemoveAll(filepath.Join(lt.dir, lt.runID))
}

// spoolEntries lists what is in the spool dir: everything when the dir is
// the test's own, else only Spillway's spool files.
func spoolEntries(dir string, all bool) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return []string{err.Error()}
	}
	var names []string
	for _, e := range entries {
		if all || (strings.HasPrefix(e.Name(), "spillway-") && strings.HasSuffix(e.Name(), ".spool")) {
			names = append(names, e.Name())
		}
	}
	return names
}

// scanUploads lists staging files (.spillway-*) anywhere in dir and regular
// files whose path has runID in it.
func scanUploads(dir, runID string) (staging, leftover []string, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a folder removed while walking
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, path)
		switch {
		case strings.HasPrefix(d.Name(), ".spillway-"):
			staging = append(staging, rel)
		case strings.Contains(rel, runID):
			leftover = append(leftover, rel)
		}
		return nil
	})
	return staging, leftover, err
}

func first(s []string, n int) []string { return s[:min(len(s), n)] }

// checkDiskSpace refuses to start when the upload or spool filesystem
// cannot hold one largest request per client, plus 1 GiB.
func checkDiskSpace(cfg config, dirs ...string) error {
	need := int64(cfg.Clients)*cfg.MaxSize + 1<<30
	for _, d := range dirs {
		if d == "" {
			continue
		}
		free, ok := testservers.FreeBytes(existingParent(d))
		if ok && free < need {
			return fmt.Errorf("%s has %s free; %d clients × %s in flight need %s: lower --clients or --max-size",
				d, mib(free), cfg.Clients, mib(cfg.MaxSize), mib(need))
		}
	}
	return nil
}

func existingParent(d string) string {
	for range 64 {
		if _, err := os.Stat(d); err == nil {
			return d
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	return d
}

// sampler polls the server's VmRSS and the upload filesystem's free space.
type sampler struct {
	done    chan struct{}
	result  chan samples
	pid     int
	dir     string
	maxRSS  int64
	minFree int64
}

type samples struct{ maxRSS, minFree int64 }

func startSampler(pid int, dir string) *sampler {
	s := &sampler{done: make(chan struct{}), result: make(chan samples, 1), pid: pid, dir: existingParent(dir), minFree: -1}
	go s.loop()
	return s
}

func (s *sampler) loop() {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		if s.pid != 0 {
			if rss, err := testservers.ProcStatusBytes(s.pid, "VmRSS"); err == nil {
				s.maxRSS = max(s.maxRSS, rss)
			}
		}
		if i%10 == 0 {
			if free, ok := testservers.FreeBytes(s.dir); ok && (s.minFree < 0 || free < s.minFree) {
				s.minFree = free
			}
		}
		select {
		case <-s.done:
			s.result <- samples{s.maxRSS, s.minFree}
			return
		case <-tick.C:
		}
	}
}

func (s *sampler) stop() samples {
	close(s.done)
	return <-s.result
}
