package main

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"spillway/funcurl"
	"spillway/internal/testservers"
)

// The cold start section is the one part of docs/BENCHMARKS.md that
// `go run ./bench coldstart` writes; `make bench` rewrites the rest and
// keeps it.
const (
	coldStartBegin = "<!-- coldstart: written by `go run ./bench coldstart`; `make bench` keeps it -->"
	coldStartEnd   = "<!-- /coldstart -->"
)

// coldStartOptions are the flags of `go run ./bench coldstart`.
type coldStartOptions struct {
	base    string // git revision to compare with; "" for none
	n       int    // measured cold starts per build
	out     string
	tmp     string
	timeout time.Duration
	command string
	log     io.Writer
}

func parseColdStartFlags(args []string) (coldStartOptions, error) {
	o := coldStartOptions{log: os.Stderr}
	fs := flag.NewFlagSet("bench coldstart", flag.ContinueOnError)
	fs.StringVar(&o.base, "base", "", "also build the function at this git revision (from `git archive`) and compare")
	fs.IntVar(&o.n, "n", 101, "measured cold starts per build, after one warm-up")
	fs.StringVar(&o.out, "out", "docs/BENCHMARKS.md", "replace the cold start section of this file (\"\" for none)")
	fs.StringVar(&o.tmp, "tmp", os.TempDir(), "directory for the builds and spool directories")
	fs.DurationVar(&o.timeout, "timeout", 15*time.Minute, "bound on the whole run")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.n < 1 || o.n > 1000 {
		return o, errors.New("--n must be 1 to 1000")
	}
	o.command = strings.TrimSpace("go run ./bench coldstart " + strings.Join(args, " "))
	return o, nil
}

// coldStartMain is `go run ./bench coldstart`.
func coldStartMain(args []string) int {
	o, err := parseColdStartFlags(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench coldstart:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	if _, err := runColdStart(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench coldstart:", err)
		return 1
	}
	return 0
}

// coldBuild is the function built from one source tree.
type coldBuild struct {
	label     string    // "base" or "this tree"
	source    string    // the revision, as git describes it
	dir       string    // module root it was built from
	bin       string    // for this machine, run under the emulator
	size      int64     // bytes of bin
	sizeArm64 int64     // bytes of the linux/arm64 build `sam build` deploys
	modules   int       // dependency modules in the build info
	packages  int       // packages linked, from go list -deps
	banned    []string  // Prometheus and protobuf modules it links
	initMs    []float64 // Init Duration of each measured cold start
}

type coldStartReport struct {
	opts      coldStartOptions
	started   time.Time
	duration  time.Duration
	machine   machineInfo
	loadStart string
	loadEnd   string
	builds    []*coldBuild
}

// runColdStart builds the function (and the base's, with --base) as the
// Makefile's build-UploadFunction builds it, then starts each under the
// Runtime Interface Emulator n+1 times, alternating the builds, and reads
// the Init Duration the emulator reports. The first start of each build is
// a warm-up and is not counted: it pays for reading the binary from disk.
func runColdStart(ctx context.Context, o coldStartOptions) (*coldStartReport, error) {
	rep := &coldStartReport{opts: o, started: time.Now()}
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.tmp, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(o.tmp, "spillway-coldstart-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	rie, err := testservers.Install(testservers.RIE)
	if err != nil {
		return nil, fmt.Errorf("the Runtime Interface Emulator: %w", err)
	}
	if o.base != "" {
		dir := filepath.Join(work, "base-src")
		if err := exportRevision(ctx, root, o.base, dir); err != nil {
			return nil, err
		}
		rep.builds = append(rep.builds, &coldBuild{label: "base", source: describe(ctx, root, o.base), dir: dir})
	}
	rep.builds = append(rep.builds, &coldBuild{label: "this tree", source: describe(ctx, root, "--dirty"), dir: root})
	for i, b := range rep.builds {
		coldLogf(o.log, "building %s (%s)", b.label, b.source)
		if err := b.build(ctx, filepath.Join(work, "bin-"+strconv.Itoa(i))); err != nil {
			return nil, fmt.Errorf("%s: %w", b.label, err)
		}
	}

	rep.machine = probeMachine(work)
	rep.loadStart = loadAvg()
	for round := range o.n + 1 {
		// Alternate which build goes first, so that neither always runs
		// right after the other.
		order := slices.Clone(rep.builds)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, b := range order {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			ms, err := coldStart(ctx, rie, b.bin, work)
			if err != nil {
				return nil, fmt.Errorf("%s, cold start %d: %w", b.label, round, err)
			}
			if round > 0 {
				b.initMs = append(b.initMs, ms)
			}
		}
		if round%20 == 0 || round == o.n {
			coldLogf(o.log, "round %d/%d done", round, o.n)
		}
	}
	rep.loadEnd = loadAvg()
	rep.duration = time.Since(rep.started)

	md := rep.markdown()
	fmt.Fprint(o.log, md)
	if o.out != "" {
		old, err := os.ReadFile(o.out)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return rep, err
		}
		if err := writeFileAtomic(o.out, []byte(replaceSection(string(old), md))); err != nil {
			return rep, err
		}
		coldLogf(o.log, "wrote the cold start section of %s", o.out)
	}
	return rep, nil
}

// exportRevision writes the files of rev into dir, without touching the
// repository's worktrees or index.
func exportRevision(ctx context.Context, root, rev, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tarball := dir + ".tar"
	defer os.Remove(tarball)
	archive := exec.CommandContext(ctx, "git", "-C", root, "archive", "--format=tar", "-o", tarball, rev)
	if out, err := archive.CombinedOutput(); err != nil {
		return fmt.Errorf("git archive %s: %w: %s", rev, err, out)
	}
	untar := exec.CommandContext(ctx, "tar", "-xf", tarball, "-C", dir)
	if out, err := untar.CombinedOutput(); err != nil {
		return fmt.Errorf("tar: %w: %s", err, out)
	}
	return nil
}

// describe names rev (or the worktree, for "--dirty") as git describe does.
func describe(ctx context.Context, root, rev string) string {
	out, err := exec.CommandContext(ctx, "git", "-C", root, "describe", "--always", rev).Output()
	if err != nil {
		return rev
	}
	return strings.TrimSpace(string(out))
}

// build builds the function as the Makefile's build-UploadFunction does
// (static, lambda.norpc, trimmed paths, stripped), once for this machine to
// run and once for linux/arm64 to weigh what `sam build` deploys. VCS
// stamping is off for both trees alike: a `git archive` export has none.
func (b *coldBuild) build(ctx context.Context, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	goBuild := func(goarch, out string) error {
		cmd := exec.CommandContext(ctx, goTool(), "build", "-tags", "lambda.norpc", "-trimpath", "-buildvcs=false",
			"-ldflags=-s -w", "-o", out, "./functions/upload")
		cmd.Dir = b.dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOFLAGS=")
		if msg, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build ./functions/upload (%s): %w: %s", goarch, err, msg)
		}
		return nil
	}
	b.bin = filepath.Join(dir, "bootstrap")
	arm := filepath.Join(dir, "bootstrap-arm64")
	if err := goBuild(runtime.GOARCH, b.bin); err != nil {
		return err
	}
	if err := goBuild("arm64", arm); err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		size *int64
	}{{b.bin, &b.size}, {arm, &b.sizeArm64}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			return err
		}
		*f.size = fi.Size()
	}
	info, err := buildinfo.ReadFile(b.bin)
	if err != nil {
		return fmt.Errorf("build info: %w", err)
	}
	b.modules = len(info.Deps)
	for _, d := range info.Deps {
		if strings.HasPrefix(d.Path, "github.com/prometheus/") || strings.HasPrefix(d.Path, "google.golang.org/protobuf") {
			b.banned = append(b.banned, d.Path)
		}
	}
	list := exec.CommandContext(ctx, goTool(), "list", "-deps", "-tags", "lambda.norpc", "./functions/upload")
	list.Dir = b.dir
	list.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH, "GOFLAGS=")
	out, err := list.Output()
	if err != nil {
		return fmt.Errorf("go list -deps: %w", err)
	}
	b.packages = bytes.Count(out, []byte("\n"))
	return nil
}

var initReportRE = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)\)`)

// coldStart starts a new emulator with bin, sends it one event (a GET the
// function answers 404 without calling S3), stops it, and returns the Init
// Duration it reported: from starting the process to its first request for
// an event, so the Go runtime, every package's init and the function's own
// set-up.
func coldStart(ctx context.Context, rie, bin, work string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	spoolDir, err := os.MkdirTemp(work, "spool-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(spoolDir)
	var out bytes.Buffer
	r, err := funcurl.StartRIE(ctx, funcurl.RIEConfig{
		Path: rie, Bootstrap: bin, Output: &out,
		// The emulator hands its whole environment to the function, so
		// it gets only what the function reads, as on Lambda. Nothing
		// listens on the S3 endpoint; the event never reaches the store.
		Env: []string{
			"PATH=" + os.Getenv("PATH"),
			"SPILLWAY_BUCKET=coldstart", "SPILLWAY_SPOOL_DIR=" + spoolDir,
			"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=coldstart", "AWS_SECRET_ACCESS_KEY=coldstart",
			"AWS_EC2_METADATA_DISABLED=true", "AWS_ENDPOINT_URL_S3=http://127.0.0.1:9",
		},
	})
	if err != nil {
		return 0, err
	}
	const event = `{"version":"2.0","rawPath":"/coldstart","headers":{"host":"localhost"},` +
		`"requestContext":{"http":{"method":"GET","path":"/coldstart","sourceIp":"127.0.0.1"}},"isBase64Encoded":false}`
	payload, err := r.Invoke(ctx, funcurl.Invocation{RequestID: "coldstart", Event: strings.NewReader(event), Size: int64(len(event))})
	// Once the emulator has exited, all its output has been copied.
	r.Close()
	if err != nil {
		return 0, fmt.Errorf("%w (emulator: %s)", err, lastLines(out.String(), 5))
	}
	if !bytes.Contains(payload, []byte(`"statusCode":404`)) {
		return 0, fmt.Errorf("the function answered %s", payload)
	}
	m := initReportRE.FindSubmatch(out.Bytes())
	if m == nil {
		return 0, fmt.Errorf("no INIT REPORT from the emulator: %s", lastLines(out.String(), 5))
	}
	return strconv.ParseFloat(string(m[1]), 64)
}

// freeAddr is a loopback address whose port was free a moment ago, for a
// program that cannot report the port it chose.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

func coldLogf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "bench coldstart: "+format+"\n", args...)
}

// markdown is the section, markers included.
func (rep *coldStartReport) markdown() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := rep.machine
	p("%s\n## Lambda cold start\n\n", coldStartBegin)
	p("- Command: `%s` (the rest of this file is `make bench`'s; this section only this command's)\n", rep.opts.command)
	p("- Date: %s (the run took %s)\n", rep.started.UTC().Format("2006-01-02 15:04 MST"), rep.duration.Round(time.Second))
	p("- Machine: %d CPUs (nproc), %s, %s RAM, Linux %s, %s\n", m.nproc, m.cpu, m.memTotal, m.kernel, m.goVersion)
	p("- Load average (1, 5, 15 min) before the run: %s; after: %s. The machine was shared; other work skews the times.\n\n", rep.loadStart, rep.loadEnd)
	p("Each build is the function built as `make build-UploadFunction` builds it (`CGO_ENABLED=0 go build -tags lambda.norpc -trimpath -ldflags=\"-s -w\"`, VCS stamping off for both), " +
		"for linux/arm64 (what `sam build` deploys) and for this machine, whose build runs under the real Runtime Interface Emulator. " +
		"A cold start is a new emulator process given one event; its Init Duration (`INIT REPORT`) runs from starting the bootstrap to the bootstrap's first request for an event: " +
		"the Go runtime, every package's `init`, and the function's own set-up (reading the environment, sweeping the spool directory, building the S3 client from the environment). ")
	p("Each build was started %d times after one warm-up, the builds alternating; figures are the median, the middle half (25th to 75th percentile) and min–max.\n\n", len(rep.builds[0].initMs))
	p("| build | source | bootstrap linux/arm64 | bootstrap linux/%s | modules (`go version -m`) | packages (`go list -deps`) | Prometheus or protobuf modules | Init Duration median | middle half | min–max |\n", runtime.GOARCH)
	p("|---|---|---:|---:|---:|---:|---|---:|---:|---:|\n")
	for _, c := range rep.builds {
		banned := "none"
		if len(c.banned) > 0 {
			banned = strconv.Itoa(len(c.banned)) + ": " + strings.Join(c.banned, ", ")
		}
		p("| %s | `%s` | %d B | %d B | %d | %d | %s | %.2f ms | %.2f–%.2f ms | %.2f–%.2f ms |\n", c.label, c.source, c.sizeArm64, c.size,
			c.modules, c.packages, banned, median(c.initMs), percentile(c.initMs, 25), percentile(c.initMs, 75),
			slices.Min(c.initMs), slices.Max(c.initMs))
	}
	if len(rep.builds) == 2 {
		base, cur := rep.builds[0], rep.builds[1]
		pct := func(cur, base float64) float64 { return 100 * (cur - base) / base }
		p("\nThis tree against the base: linux/arm64 bootstrap %+d B (%+.1f%%); Init Duration median %+.2f ms (%+.0f%%), minimum %+.2f ms (%+.0f%%).\n",
			cur.sizeArm64-base.sizeArm64, pct(float64(cur.sizeArm64), float64(base.sizeArm64)),
			median(cur.initMs)-median(base.initMs), pct(median(cur.initMs), median(base.initMs)),
			slices.Min(cur.initMs)-slices.Min(base.initMs), pct(slices.Min(cur.initMs), slices.Min(base.initMs)))
	}
	cur := rep.builds[len(rep.builds)-1]
	verdict := "not met"
	if cur.sizeArm64 <= coldStartMaxSize && median(cur.initMs) <= coldStartMaxInitMs {
		verdict = "met"
	}
	p("\nIssue 17's goal for this tree (linux/arm64 bootstrap ≤ %d MiB, Init Duration median ≤ %.0f ms): %.2f MiB and %.2f ms, **%s**.\n",
		coldStartMaxSize>>20, coldStartMaxInitMs, float64(cur.sizeArm64)/(1<<20), median(cur.initMs), verdict)
	p("%s\n", coldStartEnd)
	return b.String()
}

// Issue 17's aim for the function: its deployed binary and its cold start.
const (
	coldStartMaxSize   = 10 << 20
	coldStartMaxInitMs = 20.0
)

// replaceSection puts section, markers included, in place of the marked
// section of doc, or appends it.
func replaceSection(doc, section string) string {
	i := strings.Index(doc, coldStartBegin)
	j := strings.Index(doc, coldStartEnd)
	if i < 0 || j < i {
		if doc != "" && !strings.HasSuffix(doc, "\n\n") {
			doc = strings.TrimRight(doc, "\n") + "\n\n"
		}
		return doc + section
	}
	rest := strings.TrimPrefix(doc[j+len(coldStartEnd):], "\n")
	return doc[:i] + section + rest
}

// markedSection returns the marked section of doc, markers included, or "".
func markedSection(doc string) string {
	i := strings.Index(doc, coldStartBegin)
	j := strings.Index(doc, coldStartEnd)
	if i < 0 || j < i {
		return ""
	}
	return doc[i:j+len(coldStartEnd)] + "\n"
}

// percentile is the p-th percentile of v, interpolating between the two
// nearest ranks; percentile(v, 50) is median(v).
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	pos := p / 100 * float64(len(v)-1)
	i := int(pos)
	if i+1 >= len(v) {
		return v[len(v)-1]
	}
	return v[i] + (pos-float64(i))*(v[i+1]-v[i])
}
