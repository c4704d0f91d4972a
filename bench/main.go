// Command bench is Spillway's benchmark harness, behind `make bench`. It
// measures the real localserver binary against a hashing floor, reference
// servers kept here and the real tools a user would pick instead, on
// loopback, and writes docs/BENCHMARKS.md with a goal table.
//
// For each case it starts a fresh server (so that its peak RSS, VmHWM,
// belongs to that case alone) with its own temporary directories on one
// filesystem, sends the uploads, reads the peak RSS and CPU time of the
// server's processes from /proc, stops it and deletes what was stored. The
// servers are
//
//   - floor and floor-fsync: the least work a server answering with the
//     body's SHA-256 must do (floor.go), without and with fsync;
//   - spillway and spillway-fsync: localserver with --fsync=false and with
//     its durable default; spillway-case-sensitive: --fsync=false with
//     --case-sensitive-names, for small uploads;
//   - baseline-256k: io.CopyBuffer into a new file, no hash;
//   - nginx and nginx-256k: Debian's nginx with WebDAV PUT, default and
//     with client_body_buffer_size 256k (peers.go);
//   - discard: the body read into io.Discard, the ceiling of the client and
//     loopback;
//   - tusd and spillway-tus: the same tus client against tusd's filestore
//     and Spillway's /tus/ (pending while there is none);
//   - aws-s3-cp, push-bucket and push-emulator: the same file into a fresh
//     versitygw with `aws s3 cp`, and with `spillway push` through
//     localserver --bucket, directly and as the function behind the local
//     Function URL emulator;
//   - spillway-8MiB-budget: 64 uploads of 10 MiB at once, for peak RSS
//     under a memory budget.
//
// The cases are 1 GiB and 4 GiB uploads, raw (PUT with Content-Length) and
// multipart (one file), from a client that repeats a 1 MiB pattern (it holds
// no body and costs next to no CPU), 1 KiB and 64 KiB PUTs from 32
// connections for a fixed time, each under a new name, and the tus, S3 and
// load cases at the smaller size. Every case runs --reps times, the servers
// interleaved within each repetition; the report gives medians and min–max.
// It also measures the client alone, the allocations of a 4 MB base64
// Lambda event through the real adapter, runs the Go benchmarks of spool,
// api and lambdahttp, and profiles the API handler's CPU.
//
// Every loop is bounded by a count and by time (--timeout for the whole
// run). --quick runs small sizes once, as a smoke test. --cases and
// --servers run some cases on some servers only (`--cases small --servers
// spillway,spillway-fsync,nginx`), without the measurements around them,
// and write no report unless --out is given.
//
// `go run ./bench coldstart [--base REV]` measures the Lambda function
// instead: its binary size and its Init Duration under the Runtime Interface
// Emulator, against the function at REV, and rewrites only its own marked
// section of docs/BENCHMARKS.md, which the full run keeps with every other
// marked section (coldstart.go, markedSections).
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
	"spillway/wire"
)

func main() {
	if isChild() {
		os.Exit(childMain())
	}
	if len(os.Args) > 1 && os.Args[1] == "coldstart" {
		os.Exit(coldStartMain(os.Args[2:]))
	}
	opts, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.timeout)
	defer cancel()
	rep, err := run(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if len(rep.errors) > 0 {
		fmt.Fprintf(os.Stderr, "bench: %d runs failed; see the report\n", len(rep.errors))
		os.Exit(1)
	}
}

type options struct {
	server   string        // localserver binary; "" builds one
	out      string        // where the markdown goes; "" for none
	quick    bool          // small sizes, one repetition
	reps     int           // repetitions of each case
	large    []int64       // the two large upload sizes
	small    []int64       // the small PUT sizes
	smallFor time.Duration // how long each small-upload run lasts
	conns    int           // connections for small uploads
	tmp      string        // parent of every temporary directory
	goBench  bool          // run the Go benchmarks and include their output
	kinds    []string      // --cases: the case kinds to run; nil for all
	only     []string      // --servers: the servers to run; nil for all
	s3Size   int64         // the multipart upload whose completion on S3 is timed; 0: none
	dirSize  int64         // the same on the directory store; 0: none
	timeout  time.Duration // for the whole run
	command  string        // the command line shown in the report
	noApt    bool          // never apt-get install a missing peer (the smoke test)
	log      io.Writer     // progress lines
}

func parseFlags(args []string) (options, error) {
	o := options{log: os.Stderr}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.server, "server", "", "localserver binary (default: build ./localserver into a temporary directory)")
	fs.StringVar(&o.out, "out", "docs/BENCHMARKS.md", "write the report here (\"\" for none)")
	fs.BoolVar(&o.quick, "quick", false, "smoke test: 32 MiB and 128 MiB uploads, 1 s of small uploads, one repetition, no Go benchmarks")
	fs.IntVar(&o.reps, "reps", 3, "repetitions of each case")
	fs.DurationVar(&o.smallFor, "small-duration", 5*time.Second, "duration of each small-upload run")
	fs.IntVar(&o.conns, "conns", 32, "connections for small uploads")
	fs.StringVar(&o.tmp, "tmp", os.TempDir(), "directory for the servers' upload and spool directories")
	fs.BoolVar(&o.goBench, "gobench", true, "run the Go benchmarks (spool, api, lambdahttp) and include their output")
	fs.Int64Var(&o.s3Size, "s3-complete-mib", 1024, "time the completion on S3 (versitygw) of a multipart upload of this many MiB; 0: skip")
	fs.Int64Var(&o.dirSize, "dir-complete-mib", 1024, "time the completion on the directory store of a multipart upload of this many MiB; 0: skip")
	fs.DurationVar(&o.timeout, "timeout", 45*time.Minute, "bound on the whole run")
	cases := fs.String("cases", "", "comma-separated case kinds to run alone ("+strings.Join(allKinds, ", ")+"); no other measurement, no report unless --out")
	only := fs.String("servers", "", "comma-separated servers to run (default: all)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if *cases != "" {
		o.kinds = strings.Split(*cases, ",")
		for _, k := range o.kinds {
			if !slices.Contains(allKinds, k) {
				return o, fmt.Errorf("--cases: no case kind %q", k)
			}
		}
	}
	if *only != "" {
		o.only = strings.Split(*only, ",")
		for _, n := range o.only {
			if !slices.ContainsFunc(servers, func(s serverSpec) bool { return s.name == n }) {
				return o, fmt.Errorf("--servers: no server %q", n)
			}
		}
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.kinds != nil {
		if !set["out"] {
			o.out = ""
		}
		o.goBench, o.s3Size, o.dirSize = false, 0, 0
	}
	o.s3Size <<= 20
	o.dirSize <<= 20
	o.large = []int64{1 << 30, 4 << 30}
	o.small = []int64{1 << 10, 64 << 10}
	if o.quick {
		o.large = []int64{32 << 20, 128 << 20}
		if !set["reps"] {
			o.reps = 1
		}
		if !set["small-duration"] {
			o.smallFor = time.Second
		}
		if !set["gobench"] {
			o.goBench = false
		}
		if !set["s3-complete-mib"] {
			o.s3Size = 64 << 20
		}
		if !set["dir-complete-mib"] {
			o.dirSize = 64 << 20
		}
	}
	if o.reps < 1 || o.reps > 20 {
		return o, errors.New("--reps must be 1 to 20")
	}
	if o.conns < 1 || o.conns > 256 {
		return o, errors.New("--conns must be 1 to 256")
	}
	if o.smallFor <= 0 || o.smallFor > time.Minute {
		return o, errors.New("--small-duration must be positive and at most 1m")
	}
	o.command = "go run ./bench " + strings.Join(args, " ")
	return o, nil
}

// Servers, in the order each repetition runs them: each Spillway row right
// after the floor it is held to.
const (
	srvFloor        = "floor"
	srvSpillway     = "spillway"
	srvFloorFsync   = "floor-fsync"
	srvFsync        = "spillway-fsync"
	srvBaseline     = "baseline-256k"
	srvNginx        = "nginx"
	srvNginxTuned   = "nginx-256k"
	srvDiscard      = "discard"
	srvTusd         = "tusd"
	srvSpillwayTus  = "spillway-tus"
	srvAWSCLI       = "aws-s3-cp"
	srvPushBucket   = "push-bucket"
	srvPushEmulator = "push-emulator"
	srvBudget       = "spillway-8MiB-budget"
	srvCaseSens     = "spillway-case-sensitive"
)

// The memory case: loadClients uploads of loadSize at once, to a server with
// a memory budget of loadBudget.
const (
	loadClients = 64
	loadSize    = 10 << 20
	loadBudget  = 8 << 20
)

type serverSpec struct {
	name  string
	mode  string   // reference server mode; "" for the others
	peer  string   // peer* for a real tool, "" for a reference server or localserver
	fsync bool     // durable: fsyncs each file (and its directory) before answering
	args  []string // more localserver flags
	kinds []string
	// firstLargeOnly limits large cases to the smaller size, for peers
	// compared at one size.
	firstLargeOnly bool
}

// Peers, the tools a user would pick instead (peers.go).
const (
	peerNginx      = "nginx"
	peerNginxTuned = "nginx-tuned"
	peerTusd       = "tusd"
	peerAWSCLI     = "aws-cli"
	peerPush       = "push" // spillway push to localserver --bucket
	peerPushEmu    = "push-emulator"
	peerSpillTus   = "spillway-tus"
)

var servers = []serverSpec{
	{name: srvFloor, mode: modeFloor, kinds: []string{kindRaw, kindMultipart, kindSmall}},
	{name: srvSpillway, kinds: []string{kindRaw, kindMultipart, kindSmall}},
	{name: srvFloorFsync, mode: modeFloorFsync, fsync: true, kinds: []string{kindRaw, kindMultipart, kindSmall}},
	{name: srvFsync, fsync: true, kinds: []string{kindRaw, kindMultipart, kindSmall}},
	// Without the case-fold check, which reads the whole folder on every
	// upload: how much of the small-upload rate that check costs.
	{name: srvCaseSens, args: []string{"--case-sensitive-names"}, kinds: []string{kindSmall}},
	{name: srvBaseline, mode: modeCopyBuffer, kinds: []string{kindRaw, kindSmall}},
	{name: srvNginx, peer: peerNginx, kinds: []string{kindRaw, kindSmall}, firstLargeOnly: true},
	{name: srvNginxTuned, peer: peerNginxTuned, kinds: []string{kindRaw, kindSmall}, firstLargeOnly: true},
	{name: srvDiscard, mode: modeDiscard, kinds: []string{kindRaw, kindMultipart, kindSmall}},
	{name: srvTusd, peer: peerTusd, kinds: []string{kindTus}},
	{name: srvSpillwayTus, peer: peerSpillTus, kinds: []string{kindTus}},
	{name: srvAWSCLI, peer: peerAWSCLI, kinds: []string{kindS3}},
	{name: srvPushBucket, peer: peerPush, kinds: []string{kindS3}},
	{name: srvPushEmulator, peer: peerPushEmu, kinds: []string{kindS3}},
	{name: srvBudget, args: []string{"--memory-budget", strconv.Itoa(loadBudget>>20) + "MiB"}, kinds: []string{kindLoad}},
}

// runs reports whether s takes part in case c of a run whose smaller large
// size is first.
func (s serverSpec) runs(c caseSpec, first int64) bool {
	return slices.Contains(s.kinds, c.kind) && (!s.firstLargeOnly || c.kind == kindSmall || c.size == first)
}

// wantsKind reports whether the run includes cases of kind (--cases).
func (o options) wantsKind(kind string) bool { return o.kinds == nil || slices.Contains(o.kinds, kind) }

// wantsServer reports whether s runs in this run (--servers), on some case.
func (o options) wantsServer(s serverSpec) bool {
	return (o.only == nil || slices.Contains(o.only, s.name)) && slices.ContainsFunc(s.kinds, o.wantsKind)
}

// wantsPeer reports whether a server of this run uses the peer tool p.
func (o options) wantsPeer(p string) bool {
	return slices.ContainsFunc(servers, func(s serverSpec) bool { return s.peer == p && o.wantsServer(s) })
}

// Case kinds.
const (
	kindRaw       = "raw"
	kindMultipart = "multipart"
	kindSmall     = "small"
	kindTus       = "tus"
	kindS3        = "s3"
	kindLoad      = "load"
)

var allKinds = []string{kindRaw, kindMultipart, kindSmall, kindTus, kindS3, kindLoad}

type caseSpec struct {
	id   string // "raw 1 GiB"
	kind string
	size int64
}

// runResult is one case on one server, once.
type runResult struct {
	server    string
	elapsed   time.Duration
	bytes     int64 // body bytes sent in successful requests
	ok        int64 // 201s
	failed    int64
	err       string // the first failure
	hwm       int64  // the server's peak RSS, bytes
	startRSS  int64  // its RSS once listening
	serverCPU time.Duration
	clientCPU time.Duration
	skipped   bool // the server turned out not to support the case
}

// rate is MB/s (10^6 bytes) for large uploads and requests/s for small ones.
func (r runResult) rate(kind string) float64 {
	if r.elapsed <= 0 {
		return 0
	}
	if kind == kindSmall {
		return float64(r.ok) / r.elapsed.Seconds()
	}
	return float64(r.bytes) / 1e6 / r.elapsed.Seconds()
}

type report struct {
	opts        options
	started     time.Time
	duration    time.Duration
	machine     machineInfo
	cases       []caseSpec
	results     map[string][]runResult // by case id, in run order
	clientGBps  map[string]float64     // generator alone, by label
	loadStart   string                 // load averages before and after the run: other
	loadEnd     string                 // work on the machine skews every figure
	dropsCaches bool                   // whether small runs start with the page cache dropped
	lambda      lambdaResult
	s3Complete  *s3Completion
	dirComplete *dirCompletion
	peers       *peerTools
	goBench     string
	errors      []string
}

// run is the whole harness. It returns an error only when it cannot run at
// all; failed uploads are recorded in the report.
func run(ctx context.Context, o options) (*report, error) {
	rep := &report{opts: o, started: time.Now(), results: map[string][]runResult{}, clientGBps: map[string]float64{}}
	if err := os.MkdirAll(o.tmp, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(o.tmp, "spillway-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	need := o.large[len(o.large)-1] + o.large[0] + 2<<30 // the largest upload, the S3 rows' source file, room
	if free, ok := testservers.FreeBytes(work); ok && free < need {
		return nil, fmt.Errorf("%s has %d MiB free; the largest case needs %d MiB", work, free>>20, need>>20)
	}
	if o.server == "" {
		o.server = filepath.Join(work, "localserver")
		logf(o, "building localserver into %s", o.server)
		if err := testservers.GoBuild(ctx, o.server, testservers.LocalServer); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(o.server); err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	rep.opts = o
	rep.machine = probeMachine(work)
	rep.loadStart = loadAvg()

	pattern := makePattern()
	sums := map[int64]string{}
	if o.kinds == nil {
		for _, size := range o.large {
			rep.clientGBps["raw "+sizeLabel(size)] = clientAlone(size, pattern)
		}
		logf(o, "client alone: %v GB/s", rep.clientGBps)
		logf(o, "lambda: 4 MB base64 event through lambdahttp + api")
		rep.lambda = measureLambda(ctx, work)
		if rep.lambda.err != "" {
			rep.errors = append(rep.errors, "lambda: "+rep.lambda.err)
		}
	}
	if slices.ContainsFunc(allKinds, func(k string) bool { return k != kindSmall && k != kindLoad && o.wantsKind(k) }) {
		for _, size := range o.large {
			sums[size] = patternSHA256(pattern, size)
		}
	}

	for _, kind := range []string{kindRaw, kindMultipart} {
		for _, size := range o.large {
			rep.cases = append(rep.cases, caseSpec{id: kind + " " + sizeLabel(size), kind: kind, size: size})
		}
	}
	for _, size := range o.small {
		rep.cases = append(rep.cases, caseSpec{id: fmt.Sprintf("PUT %s ×%d conns", sizeLabel(size), o.conns), kind: kindSmall, size: size})
	}
	rep.cases = append(rep.cases,
		caseSpec{id: "tus " + sizeLabel(o.large[0]), kind: kindTus, size: o.large[0]},
		caseSpec{id: "S3 " + sizeLabel(o.large[0]), kind: kindS3, size: o.large[0]},
		caseSpec{id: fmt.Sprintf("PUT %s ×%d at once", sizeLabel(loadSize), loadClients), kind: kindLoad, size: loadSize})
	rep.cases = slices.DeleteFunc(rep.cases, func(c caseSpec) bool { return !o.wantsKind(c.kind) })
	logf(o, "setting up the peers")
	rep.peers = setupPeers(ctx, o, work, pattern)
	if !o.quick && slices.ContainsFunc(rep.cases, func(c caseSpec) bool { return c.kind == kindSmall }) {
		rep.dropsCaches = forgetDeletedInodes()
	}
	runs := 0
	for i, c := range rep.cases {
		caseDir := filepath.Join(work, fmt.Sprintf("case-%d", i))
		if err := os.Mkdir(caseDir, 0o755); err != nil {
			return nil, err
		}
		for r := range o.reps {
			for _, s := range servers {
				if !s.runs(c, o.large[0]) || !o.wantsServer(s) || rep.peers.skipped[s.peer] != "" {
					continue
				}
				if err := ctx.Err(); err != nil {
					rep.errors = append(rep.errors, "stopped: "+err.Error())
					return finish(rep)
				}
				dir := caseDir
				if c.kind == kindSmall {
					// Each small run stores its files in a folder of its
					// own and keeps them, emptied, until the whole run
					// ends: see keepFiles.
					runs++
					dir = filepath.Join(caseDir, fmt.Sprintf("run-%d", runs))
				}
				res := runCase(ctx, o, dir, c, s, rep.peers, pattern, sums[c.size])
				if res.skipped {
					logf(o, "skipping %s: %s", s.name, rep.peers.skipped[s.peer])
					continue
				}
				rep.results[c.id] = append(rep.results[c.id], res)
				if res.err != "" {
					rep.errors = append(rep.errors, fmt.Sprintf("%s on %s (rep %d): %s", c.id, s.name, r+1, res.err))
				}
				logf(o, "%-24s rep %d/%d %-15s %s", c.id, r+1, o.reps, s.name, res.summary(c.kind))
			}
		}
		if err := os.RemoveAll(caseDir); err != nil {
			rep.errors = append(rep.errors, "cleanup: "+err.Error())
		}
	}
	if o.kinds == nil {
		rep.machine.createCostAfter = fileCreateCost(work)
	}

	if o.s3Size > 0 {
		logf(o, "completion of a %s multipart upload on versitygw", sizeLabel(o.s3Size))
		c := runS3Completion(ctx, o.s3Size, o.reps)
		rep.s3Complete = &c
		if c.err != "" {
			rep.errors = append(rep.errors, "s3 completion: "+c.err)
		}
	}
	if o.dirSize > 0 {
		logf(o, "completion of a %s multipart upload on the directory store", sizeLabel(o.dirSize))
		c := runDirCompletion(ctx, o.dirSize, o.reps)
		rep.dirComplete = &c
		if c.err != "" {
			rep.errors = append(rep.errors, "directory completion: "+c.err)
		}
	}
	if o.goBench {
		logf(o, "go test -bench for spool, api, lambdahttp")
		out, err := runGoBench(ctx)
		rep.goBench = out
		if err != nil {
			rep.errors = append(rep.errors, "go benchmarks: "+err.Error())
		}
	}
	return finish(rep)
}

func finish(rep *report) (*report, error) {
	rep.duration = time.Since(rep.started)
	rep.loadEnd = loadAvg()
	md := rep.markdown()
	if rep.opts.out != "" {
		if old, err := os.ReadFile(rep.opts.out); err == nil {
			for _, section := range markedSections(string(old)) {
				md = strings.TrimRight(md, "\n") + "\n\n" + section
			}
		}
		if err := writeFileAtomic(rep.opts.out, []byte(md)); err != nil {
			return rep, err
		}
		logf(rep.opts, "wrote %s (%s)", rep.opts.out, rep.duration.Round(time.Second))
	} else {
		fmt.Fprint(rep.opts.log, md)
	}
	return rep, nil
}

func (r runResult) summary(kind string) string {
	s := fmt.Sprintf("%9.1f %s  peak RSS %5.1f MiB  server CPU %6.2fs  client CPU %6.2fs",
		r.rate(kind), map[bool]string{true: "req/s", false: "MB/s "}[kind == kindSmall],
		mib(r.hwm), r.serverCPU.Seconds(), r.clientCPU.Seconds())
	if r.err != "" {
		s += "  ERROR: " + r.err
	}
	return s
}

func logf(o options, format string, args ...any) {
	if o.log != nil {
		fmt.Fprintf(o.log, "bench: "+format+"\n", args...)
	}
}

// runCase starts a fresh server on the case's directories, runs one case
// against it, stops it, and empties the directories.
func runCase(ctx context.Context, o options, dir string, c caseSpec, s serverSpec, peers *peerTools, pattern []byte, sum string) (res runResult) {
	res.server = s.name
	defer func() {
		clean := emptyDir
		if c.kind == kindSmall {
			clean = keepFiles
		}
		for _, d := range []string{"uploads", "spool", "nginx", "s3"} {
			if err := clean(filepath.Join(dir, d)); err != nil && res.err == "" {
				res.err = "cleanup: " + err.Error()
			}
		}
		// Leave no dirty pages from this case to be written back during
		// the next one.
		syscall.Sync()
	}()
	if c.kind == kindSmall && !o.quick {
		// A smoke test leaves the machine's page cache alone.
		forgetDeletedInodes()
	}
	p, err := startServer(ctx, o, s, peers, dir)
	if err != nil {
		res.err = err.Error()
		return res
	}
	defer func() {
		if err := p.stop(); err != nil && res.err == "" {
			res.err = err.Error()
		}
		if s.mode == "" && s.peer != peerAWSCLI && s.peer != peerTusd && !isNginx(s) {
			if names, _ := dirNames(p.spoolDir); len(names) > 0 && res.err == "" {
				res.err = fmt.Sprintf("spool dir not empty after stop: %v", names)
			}
		}
	}()
	if s.peer == peerSpillTus && !hasTus(ctx, p.URL, tusEndpoint) {
		peers.skipped[peerSpillTus] = "pending: this localserver has no tus endpoint at " + tusEndpoint
		res.skipped = true
		return res
	}
	pids := p.pids()
	res.startRSS = sumStatus(pids, "VmRSS")
	cpu0 := treeCPU(pids)
	self0 := selfCPU()
	switch c.kind {
	case kindSmall:
		runSmall(ctx, o, p, c, pattern, &res)
	case kindTus:
		runTus(ctx, p, c, pattern, &res)
	case kindS3:
		runS3(ctx, p, s, peers, c, &res)
	case kindLoad:
		runLoad(ctx, p, c, pattern, &res)
	default:
		runLarge(ctx, p, s, c, pattern, sum, &res)
	}
	res.clientCPU += selfCPU() - self0
	// Processes started during the run (nginx's workers, the function
	// under the emulator) count too.
	pids = p.pids()
	res.serverCPU = treeCPU(pids) - cpu0
	res.hwm = sumStatus(pids, "VmHWM")
	return res
}

func isNginx(s serverSpec) bool { return s.peer == peerNginx || s.peer == peerNginxTuned }

// server is a started server: a process, an S3 gateway, or both.
type server struct {
	*testservers.Process // nil when the gateway is the whole server
	gw                   *testservers.S3
	dir                  string // uploads
	spoolDir             string
	tusPath              string // where a tus server creates uploads
	startRSS             int64  // its RSS once listening
}

// pids is every process of the server and their descendants.
func (p *server) pids() []int {
	var roots []int
	if p.Process != nil {
		roots = append(roots, p.Pid())
	}
	if p.gw != nil {
		roots = append(roots, p.gw.Pid())
	}
	return procTree(roots)
}

// startServer starts s on 127.0.0.1 with its directories under dir and
// waits until it listens.
func startServer(ctx context.Context, o options, s serverSpec, peers *peerTools, dir string) (*server, error) {
	p := &server{dir: filepath.Join(dir, "uploads"), spoolDir: filepath.Join(dir, "spool")}
	for _, d := range []string{p.dir, p.spoolDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	var err error
	switch {
	case isNginx(s):
		err = startNginx(ctx, peers.nginx, s.peer == peerNginxTuned, p, dir)
	case s.peer == peerTusd:
		err = startTusd(ctx, peers.tusd, p)
	case s.peer == peerAWSCLI || s.peer == peerPush || s.peer == peerPushEmu:
		err = startS3Peer(ctx, o, s, peers, p, dir)
	default:
		err = startLocal(ctx, o, s, p)
		p.tusPath = tusEndpoint
	}
	if err != nil {
		if p.Process != nil || p.gw != nil {
			p.stop()
		}
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	return p, nil
}

// startLocal starts localserver or a reference server, which print
// "url=http://…" once they listen.
func startLocal(ctx context.Context, o options, s serverSpec, p *server) error {
	var cmd *exec.Cmd
	if s.mode == "" {
		// Spillway's tus row runs without fsync, as tusd does.
		cmd = exec.Command(o.server, "--addr", "127.0.0.1:0", "--directory", p.dir, "--spool-dir", p.spoolDir,
			"--fsync="+strconv.FormatBool(s.fsync))
		cmd.Args = append(cmd.Args, s.args...)
		cmd.Env = testservers.CleanEnv()
	} else {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		cmd = exec.Command(self)
		cmd.Env = append(os.Environ(), roleEnv+"=reference", modeEnv+"="+s.mode, dirEnv+"="+p.dir)
	}
	// The output is read to its end, never left to fill a pipe: a server
	// blocked on it would measure the pipe.
	proc, err := testservers.StartProcess(ctx, cmd, testservers.Options{})
	if err != nil {
		return err
	}
	p.Process = proc
	return nil
}

// stop sends SIGTERM to the server and waits up to a minute, then kills;
// the gateway goes last.
func (p *server) stop() error {
	var err error
	if p.Process != nil {
		err = p.Stop(time.Minute)
	}
	if p.gw != nil {
		p.gw.Stop()
	}
	return err
}

func newClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DisableCompression:  true,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     30 * time.Second,
	}}
}

// runLarge sends one upload of c.size bytes and checks what was stored.
func runLarge(ctx context.Context, p *server, s serverSpec, c caseSpec, pattern []byte, sum string, res *runResult) {
	if free, ok := testservers.FreeBytes(p.dir); ok && free < c.size+1<<30 {
		res.err = fmt.Sprintf("only %d MiB free for a %d MiB upload", free>>20, c.size>>20)
		res.failed = 1
		return
	}
	client := newClient(1)
	defer client.CloseIdleConnections()
	// At least 20 MB/s, or the run is broken anyway.
	ctx, cancel := context.WithTimeout(ctx, time.Minute+time.Duration(c.size/20e6)*time.Second)
	defer cancel()
	name := "large.bin"
	var req *http.Request
	var err error
	body := &uploadtest.PatternReader{P: pattern, N: c.size}
	if c.kind == kindRaw {
		req, err = http.NewRequestWithContext(ctx, http.MethodPut, p.URL+"/files/"+name, body)
		if err == nil {
			req.ContentLength = c.size
		}
	} else {
		ct, mp, n := uploadtest.StreamedMultipart(name, body)
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, p.URL+"/files", mp)
		if err == nil {
			req.ContentLength = n
			req.Header.Set("Content-Type", ct)
		}
	}
	if err != nil {
		res.err = err.Error()
		return
	}
	start := time.Now()
	resp, err := client.Do(req)
	var respBody []byte
	if err == nil {
		respBody, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
	}
	res.elapsed = time.Since(start)
	if err == nil && resp.StatusCode != http.StatusCreated {
		err = fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(respBody))
	}
	if err == nil {
		err = verifyLarge(p, s, c, name, sum, respBody)
	}
	if err != nil {
		res.err = err.Error()
		res.failed = 1
		return
	}
	res.ok, res.bytes = 1, c.size
}

// verifyLarge checks the answer and the stored file's size; for Spillway,
// the SHA-256 it answered too.
func verifyLarge(p *server, s serverSpec, c caseSpec, name, sum string, body []byte) error {
	switch {
	case s.mode == modeDiscard:
		return nil
	case s.mode == modeFloor || s.mode == modeFloorFsync:
		var got struct{ SHA256 string }
		if err := json.Unmarshal(body, &got); err != nil {
			return fmt.Errorf("answer: %w", err)
		}
		if got.SHA256 != sum {
			return fmt.Errorf("answer %s does not match sha256 %s", body, sum)
		}
	case s.mode == "" && s.peer == "":
		var got wire.UploadResponse
		if err := json.Unmarshal(body, &got); err != nil {
			return fmt.Errorf("answer: %w", err)
		}
		if len(got.Files) != 1 || got.Files[0].Size != c.size || got.Files[0].SHA256 != sum {
			return fmt.Errorf("answer %s does not match %d bytes with sha256 %s", body, c.size, sum)
		}
	}
	fi, err := os.Stat(filepath.Join(p.dir, name))
	if err != nil {
		return err
	}
	if fi.Size() != c.size {
		return fmt.Errorf("stored %d bytes, sent %d", fi.Size(), c.size)
	}
	return nil
}

// runSmall PUTs c.size-byte bodies from o.conns connections, each under a
// new name, for o.smallFor (and at most maxSmall requests).
func runSmall(ctx context.Context, o options, p *server, c caseSpec, pattern []byte, res *runResult) {
	const maxSmall = 2_000_000
	client := newClient(o.conns)
	defer client.CloseIdleConnections()
	body := pattern[:c.size]
	var t tally
	var issued atomic.Int64
	start := time.Now()
	deadline := start.Add(o.smallFor)
	var wg sync.WaitGroup
	for g := range o.conns {
		wg.Go(func() {
			for i := 0; i < maxSmall && time.Now().Before(deadline) && issued.Add(1) <= maxSmall; i++ {
				url := fmt.Sprintf("%s/files/s%03d-%07d.bin", p.URL, g, i)
				err := put(ctx, client, url, bytes.NewReader(body), c.size, 30*time.Second)
				t.add(err)
				if err != nil && ctx.Err() != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	t.report(res, time.Since(start), c.size, "requests")
}

// runLoad sends loadClients uploads of c.size bytes at once, each once, for
// the server's peak RSS under load.
func runLoad(ctx context.Context, p *server, c caseSpec, pattern []byte, res *runResult) {
	client := newClient(loadClients)
	defer client.CloseIdleConnections()
	var t tally
	start := time.Now()
	var wg sync.WaitGroup
	for g := range loadClients {
		wg.Go(func() {
			url := fmt.Sprintf("%s/files/load-%03d.bin", p.URL, g)
			t.add(put(ctx, client, url, &uploadtest.PatternReader{P: pattern, N: c.size}, c.size, 5*time.Minute))
		})
	}
	wg.Wait()
	t.report(res, time.Since(start), c.size, "uploads")
}

// tally counts the requests of a run that succeeded and that failed,
// keeping the first failure.
type tally struct {
	ok, failed atomic.Int64
	once       sync.Once
	first      string
}

func (t *tally) add(err error) {
	if err != nil {
		t.failed.Add(1)
		t.once.Do(func() { t.first = err.Error() })
		return
	}
	t.ok.Add(1)
}

// report writes the counts into res, each success having stored size
// bytes; what names the requests in the error.
func (t *tally) report(res *runResult, elapsed time.Duration, size int64, what string) {
	res.elapsed = elapsed
	res.ok, res.failed = t.ok.Load(), t.failed.Load()
	res.bytes = res.ok * size
	if res.failed > 0 {
		res.err = fmt.Sprintf("%d of %d %s failed; first: %s", res.failed, res.failed+res.ok, what, t.first)
	}
}

// put PUTs size bytes of body to url, within timeout, and wants 201.
func put(ctx context.Context, client *http.Client, url string, body io.Reader, size int64, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

// makePattern returns the 1 MiB of pseudo-random bytes every upload
// repeats.
func makePattern() []byte {
	return uploadtest.File{Seed: 1, Size: 1 << 20}.Bytes()
}

// clientAlone is the generator's speed into io.Discard, in GB/s, with the
// 32 KiB copies net/http's transport makes of a request body.
func clientAlone(size int64, pattern []byte) float64 {
	start := time.Now()
	// A plain Writer, so that io.CopyBuffer uses this buffer rather than
	// io.Discard's own ReadFrom.
	n, _ := io.CopyBuffer(struct{ io.Writer }{io.Discard}, io.LimitReader(&uploadtest.PatternReader{P: pattern, N: size}, size), make([]byte, 32<<10))
	return float64(n) / 1e9 / time.Since(start).Seconds()
}

func patternSHA256(pattern []byte, size int64) string {
	h := sha256.New()
	io.CopyBuffer(h, &uploadtest.PatternReader{P: pattern, N: size}, make([]byte, 1<<20))
	return hex.EncodeToString(h.Sum(nil))
}

func sizeLabel(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func dirNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, err
}

// emptyDir removes everything inside dir, which may not exist.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// keepFiles empties every file under dir but removes none. On ext4
// without a journal, a new inode is given out only after the allocator has
// skipped, one by one, every inode of the folder's group deleted in the
// last minute or so; deleting one small run's tens of thousands of files
// made each create of the next server's run cost many times as much, so the
// order of the servers decided their ratio. Emptied files give back their
// blocks and keep their inodes; the work directory goes at the end.
func keepFiles(dir string) error {
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		return os.Truncate(path, 0)
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// forgetDeletedInodes writes back and drops the clean page cache, where
// ext4 keeps the inode tables it reads a deletion's time from (keepFiles
// says why that matters). A table no longer cached counts as written out
// long ago, so files deleted before a small run, by an earlier case or by
// anything else on the machine, cost its creates nothing. Without root it
// does nothing, and the report says so.
func forgetDeletedInodes() bool {
	syscall.Sync()
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0) == nil
}

func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// moduleRoot is the directory of spillway's go.mod.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, goTool(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the spillway module")
	}
	return filepath.Dir(mod), nil
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}

// runGoBench runs the packages' Go benchmarks and returns their output.
func runGoBench(ctx context.Context) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool(), "test", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1",
		"-timeout", "10m", "./spool", "./api", "./lambdahttp")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), err
	}
	// Where the server's CPU goes: the handler with a directory store, in
	// process, for a large raw PUT and for small PUTs.
	dir, err := os.MkdirTemp("", "spillway-bench-pprof-")
	if err != nil {
		return string(out), err
	}
	defer os.RemoveAll(dir)
	for _, bm := range []string{"BenchmarkHandlerLarge/raw/spillway", "BenchmarkHandlerPut/1KiB/spillway"} {
		prof := filepath.Join(dir, "cpu.pprof")
		cmd := exec.CommandContext(ctx, goTool(), "test", "-run", "^$", "-bench", "^"+strings.ReplaceAll(bm, "/", "$/^")+"$",
			"-benchtime", "3s", "-count", "1", "-cpuprofile", prof, "-o", filepath.Join(dir, "api.test"), "./api")
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			return string(out), fmt.Errorf("profile %s: %w: %s", bm, err, msg)
		}
		top, err := exec.CommandContext(ctx, goTool(), "tool", "pprof", "-top", "-cum", "-nodecount", "30", filepath.Join(dir, "api.test"), prof).Output()
		if err != nil {
			return string(out), fmt.Errorf("pprof %s: %w", bm, err)
		}
		out = append(out, fmt.Sprintf("\n--- CPU profile of %s (go tool pprof -top -cum -nodecount 30)\n%s", bm, top)...)
	}
	return string(out), nil
}
