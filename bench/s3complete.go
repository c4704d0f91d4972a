package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// s3Completion is what TestMeasureCompletion (store/s3store) reports: the
// time of completing one multipart upload on versitygw, the requests the
// store made to complete it, and the bytes of objects it read from S3.
type s3Completion struct {
	size     int64
	times    []time.Duration
	requests int
	read     int64
	err      string
}

var measureRE = regexp.MustCompile(`Complete took (\S+), (\d+) requests, (\d+) bytes of objects read from S3`)

// runS3Completion runs the measurement reps times, each with its own
// gateway and upload of size bytes.
func runS3Completion(ctx context.Context, size int64, reps int) s3Completion {
	res := s3Completion{size: size}
	var err error
	res.times, err = measureCompletions(ctx, "./store/s3store", size, reps, measureRE, func(m [][]byte) {
		res.requests, _ = strconv.Atoi(string(m[2]))
		res.read, _ = strconv.ParseInt(string(m[3]), 10, 64)
	})
	if err != nil {
		res.err = err.Error()
	}
	return res
}

// beforeFullObject records the same measurement of the version before
// completions stayed at the file's key (up to commit 40001d9), which no
// later run can repeat.
const beforeFullObject = "Before, up to commit `40001d9`, completing assembled the parts at a staging key, read the object back through SHA-256 " +
	"and copied it to its name with `UploadPartCopy`, all within the function's timeout. The same measurement then, on 2026-12-06 on this machine: " +
	"1 GiB took 11.7 s and 21.7 s (2 runs), 11 requests, 1,073,741,824 bytes read from S3; 8 GiB took 1m51s, 12 requests, 8,589,934,592 bytes read. " +
	"After, 8 GiB: 32.4 s (1 run, versitygw joining the parts), 6 requests, 0 bytes read.\n"

// markdown is the report's section on it.
func (c s3Completion) markdown() string {
	if c.err != "" {
		return "Not measured: " + c.err + "\n"
	}
	return fmt.Sprintf("`TestMeasureCompletion` (`store/s3store`, `SPILLWAY_MEASURE_MIB=%d`): a %s upload sent in presigned parts to versitygw on loopback, "+
		"then `Complete` timed, counting the store's requests to S3 and the bytes of objects it read. Over %s, "+
		"%d requests, %d bytes read from S3. The requests are the same whatever the size (the record read, claimed and deleted, the parts listed, "+
		"the completion, a HEAD); the time is versitygw's, whose posix backend joins the parts into one file and computes the CRC64NVME as it completes.\n\n"+
		beforeFullObject,
		c.size>>20, sizeLabel(c.size), spread(c.times), c.requests, c.read)
}

// measureCompletions runs pkg's TestMeasureCompletion reps times for an
// upload of size bytes, giving the submatches of re in each run's output
// to each, and returns the completion times, the first submatch.
func measureCompletions(ctx context.Context, pkg string, size int64, reps int, re *regexp.Regexp, each func(m [][]byte)) ([]time.Duration, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	var times []time.Duration
	for range reps {
		d, m, err := measureCompletion(ctx, root, pkg, size, re)
		if err != nil {
			return times, err
		}
		times = append(times, d)
		each(m)
	}
	return times, nil
}

// measureCompletion runs pkg's TestMeasureCompletion once for an upload of
// size bytes, and returns the completion time and the submatches of re in
// its output, whose first is that time.
func measureCompletion(ctx context.Context, root, pkg string, size int64, re *regexp.Regexp) (time.Duration, [][]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool(), "test", "-count=1", "-timeout", "15m", "-v",
		"-run", "^TestMeasureCompletion$", pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "SPILLWAY_MEASURE_MIB="+strconv.FormatInt(size>>20, 10))
	out, err := cmd.CombinedOutput()
	m := re.FindSubmatch(out)
	if err != nil || m == nil {
		return 0, nil, fmt.Errorf("go test -run TestMeasureCompletion %s: %v: %.500s", pkg, err, out)
	}
	d, err := time.ParseDuration(string(m[1]))
	if err != nil {
		return 0, nil, err
	}
	return d, m, nil
}

// spread is the median and the range of the times of runs.
func spread(times []time.Duration) string {
	ts := slices.Clone(times)
	slices.Sort(ts)
	return fmt.Sprintf("%d runs: median %s (min–max %s–%s)", len(ts),
		ts[len(ts)/2].Round(time.Millisecond), ts[0].Round(time.Millisecond), ts[len(ts)-1].Round(time.Millisecond))
}
