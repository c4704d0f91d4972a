package main

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

// stat is the median and range of one case on one server, over its
// successful runs.
type stat struct {
	n             int
	med, lo, hi   float64
	hwm           int64 // max peak RSS over all runs
	startRSS      int64 // max RSS once listening
	serverCPU     float64
	clientCPU     float64 // medians, seconds per GB or µs per request
	failed, total int
}

func (rep *report) stat(c caseSpec, server string) stat {
	var s stat
	var rates, scpu, ccpu []float64
	for _, r := range rep.results[c.id] {
		if r.server != server {
			continue
		}
		s.total++
		s.hwm = max(s.hwm, r.hwm)
		s.startRSS = max(s.startRSS, r.startRSS)
		if r.err != "" {
			s.failed++
			if c.kind != kindSmall || r.ok == 0 {
				continue
			}
		}
		rates = append(rates, r.rate(c.kind))
		if c.kind == kindSmall {
			if r.ok > 0 {
				scpu = append(scpu, float64(r.serverCPU.Microseconds())/float64(r.ok))
				ccpu = append(ccpu, float64(r.clientCPU.Microseconds())/float64(r.ok))
			}
		} else if r.bytes > 0 {
			scpu = append(scpu, r.serverCPU.Seconds()/(float64(r.bytes)/1e9))
			ccpu = append(ccpu, r.clientCPU.Seconds()/(float64(r.bytes)/1e9))
		}
	}
	s.n = len(rates)
	if s.n > 0 {
		s.med, s.lo, s.hi = median(rates), slices.Min(rates), slices.Max(rates)
		s.serverCPU, s.clientCPU = median(scpu), median(ccpu)
	}
	return s
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func (rep *report) caseOf(kind string, size int64) caseSpec {
	for _, c := range rep.cases {
		if c.kind == kind && c.size == size {
			return c
		}
	}
	return caseSpec{id: "(not run)", kind: kind, size: size}
}

// goal is one line of the goals table, one measure of issue 17's.
type goal struct {
	measure, measured, goal string
	met                     *bool  // nil: not measured
	why                     string // when not measured: "pending", "skipped: …"
}

func (g goal) result() string {
	switch {
	case g.met == nil && g.why != "":
		return g.why
	case g.met == nil:
		return "not measured"
	case *g.met:
		return "met"
	}
	return "**not met**"
}

// vsFloor is the goal for Spillway's raw PUT at one size and durability:
// ≥ 0.95× the floor's throughput, and server CPU per GB ≤ the floor's / 0.95.
func vsFloor(what string, sp, fl stat) goal {
	g := goal{measure: what, goal: "≥ 0.95× the floor's MB/s, and server CPU/GB ≤ the floor's / 0.95"}
	if sp.n == 0 || fl.n == 0 || fl.med == 0 || fl.serverCPU == 0 {
		return g
	}
	r, c := sp.med/fl.med, sp.serverCPU/fl.serverCPU
	g.measured = fmt.Sprintf("%.2f× (%.0f / %.0f MB/s); CPU %.2f× (%.2f / %.2f s/GB)", r, sp.med, fl.med, c, sp.serverCPU, fl.serverCPU)
	ok := r >= 0.95 && c <= 1/0.95
	g.met = &ok
	return g
}

// ratioGoal is a goal of one throughput against another.
func ratioGoal(what, unit string, num, den stat, min float64) goal {
	g := goal{measure: what, goal: fmt.Sprintf("≥ %.2f×", min)}
	if num.n == 0 || den.n == 0 || den.med == 0 {
		return g
	}
	r := num.med / den.med
	g.measured = fmt.Sprintf("%.2f× (%.0f / %.0f %s)", r, num.med, den.med, unit)
	ok := r >= min
	g.met = &ok
	return g
}

func (rep *report) skipped(peer string) string {
	if rep.peers == nil {
		return ""
	}
	return rep.peers.skipped[peer]
}

func (rep *report) goals() []goal {
	o := rep.opts
	large1, large2 := o.large[0], o.large[len(o.large)-1]
	var gs []goal
	for _, size := range []int64{large1, large2} {
		c := rep.caseOf(kindRaw, size)
		gs = append(gs,
			vsFloor(fmt.Sprintf("raw PUT %s, fsync off: spillway vs floor", sizeLabel(size)), rep.stat(c, srvSpillway), rep.stat(c, srvFloor)),
			vsFloor(fmt.Sprintf("raw PUT %s, durable: spillway-fsync vs floor-fsync", sizeLabel(size)), rep.stat(c, srvFsync), rep.stat(c, srvFloorFsync)))
	}
	for _, srv := range []string{srvSpillway, srvFsync} {
		gs = append(gs, ratioGoal(fmt.Sprintf("multipart POST %s vs raw PUT %s, %s", sizeLabel(large1), sizeLabel(large1), srv), "MB/s",
			rep.stat(rep.caseOf(kindMultipart, large1), srv), rep.stat(rep.caseOf(kindRaw, large1), srv), 0.9))
	}
	for _, kind := range []string{kindRaw, kindMultipart} {
		g := goal{measure: fmt.Sprintf("peak RSS, %s %s, and above %s (spillway, spillway-fsync)", kind, sizeLabel(large2), sizeLabel(large1)),
			goal: "≤ 10 MiB, and flat (≤ 1 MiB more than at the smaller size)"}
		var big, small int64
		for _, srv := range []string{srvSpillway, srvFsync} {
			big = max(big, rep.stat(rep.caseOf(kind, large2), srv).hwm)
			small = max(small, rep.stat(rep.caseOf(kind, large1), srv).hwm)
		}
		if big > 0 && small > 0 {
			ok := big <= 10<<20 && big-small <= 1<<20
			g.met, g.measured = &ok, fmt.Sprintf("%.1f MiB; %+.1f MiB above %s", mib(big), mib(big-small), sizeLabel(large1))
		}
		gs = append(gs, g)
	}
	lc := rep.caseOf(kindLoad, loadSize)
	g := goal{measure: fmt.Sprintf("peak RSS, %d concurrent %s uploads, `--memory-budget %dMiB`", loadClients, sizeLabel(loadSize), loadBudget>>20),
		goal: fmt.Sprintf("≤ budget + 16 MiB (%d MiB)", (loadBudget+16<<20)>>20)}
	if st := rep.stat(lc, srvBudget); st.n > 0 && st.hwm > 0 {
		ok := st.hwm <= loadBudget+16<<20
		g.met, g.measured = &ok, fmt.Sprintf("%.1f MiB", mib(st.hwm))
	}
	gs = append(gs, g)
	for _, size := range o.small {
		c := rep.caseOf(kindSmall, size)
		ng := rep.stat(c, srvNginx)
		for _, x := range []struct {
			srv string
			min float64
		}{{srvFsync, 1.0}, {srvSpillway, 1.2}} {
			g := ratioGoal(fmt.Sprintf("small PUTs %s ×%d conns: %s vs nginx", sizeLabel(size), o.conns, x.srv), "req/s", rep.stat(c, x.srv), ng, x.min)
			if why := rep.skipped(peerNginx); why != "" {
				g.why = "skipped: " + why
			}
			gs = append(gs, g)
		}
	}
	sc := rep.caseOf(kindS3, large1)
	for _, srv := range []string{srvPushBucket, srvPushEmulator} {
		peer := map[string]string{srvPushBucket: peerPush, srvPushEmulator: peerPushEmu}[srv]
		g := ratioGoal(fmt.Sprintf("`spillway push` %s to S3 (%s) vs `aws s3 cp`", sizeLabel(large1), srv), "MB/s", rep.stat(sc, srv), rep.stat(sc, srvAWSCLI), 1.0)
		if why := rep.skipped(peerAWSCLI) + rep.skipped(peer); why != "" {
			g.why = "skipped: " + why
		}
		gs = append(gs, g)
	}
	tc := rep.caseOf(kindTus, large1)
	g = ratioGoal(fmt.Sprintf("tus upload %s, same client: spillway-tus vs tusd", sizeLabel(large1)), "MB/s", rep.stat(tc, srvSpillwayTus), rep.stat(tc, srvTusd), 1.0)
	if why := rep.skipped(peerSpillTus); strings.HasPrefix(why, "pending") {
		g.why = "pending: no `/tus/` endpoint in this tree"
	} else if why := rep.skipped(peerTusd) + why; why != "" {
		g.why = "skipped: " + why
	}
	gs = append(gs, g)
	gs = append(gs, goal{measure: "function binary (linux/arm64) and cold start", goal: "≤ 10 MiB and ≤ 20 ms init",
		why: "judged in [Lambda cold start](#lambda-cold-start) (`make coldstart`)"})
	yes := true
	gs = append(gs, goal{measure: "server CPU per GB", goal: "reported for every row", measured: "a column of every table", met: &yes})
	lg := goal{measure: "Lambda: 4 MiB base64 event, allocated beyond the event (max of runs)", goal: "< 1 MiB"}
	if rep.lambda.err == "" && rep.lambda.measuredEvents > 0 {
		ok := rep.lambda.maxBytes < 1<<20
		lg.met = &ok
		lg.measured = fmt.Sprintf("%.1f KiB (mean %.1f KiB, %.0f allocs)", float64(rep.lambda.maxBytes)/1024, rep.lambda.bytesPerOp/1024, rep.lambda.allocsPerOp)
	}
	return append(gs, lg)
}

func (rep *report) markdown() string {
	o := rep.opts
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := rep.machine

	p("# Benchmarks\n\n")
	p("> **Generated file — do not edit by hand.** `make bench` (`go run ./bench`) writes it; to update the figures, run that command again.\n\n")
	if o.quick {
		p("> **Quick mode** (`--quick`): smoke-test sizes and one repetition. The figures check that the harness works; they are not the benchmark.\n\n")
	}
	p("- Command: `%s`\n", strings.TrimSpace(o.command))
	p("- Date: %s (the run took %s)\n", rep.started.UTC().Format("2006-01-02 15:04 MST"), rep.duration.Round(time.Second))
	if m.commit != "" {
		p("- Commit: `%s`\n", m.commit)
	}
	p("- Machine: %d CPUs (nproc), %s, %s RAM, Linux %s, %s\n", m.nproc, m.cpu, m.memTotal, m.kernel, m.goVersion)
	p("- Temporary directory: `%s`, %s. Creating a file there, writing 1 KiB and closing it took %s before the uploads and %s after "+
		"(the floor of every small upload).\n", o.tmp, m.fs, m.createCost.Round(time.Microsecond), m.createCostAfter.Round(time.Microsecond))
	p("- Load average (1, 5, 15 min) before the run: %s; after: %s. Anything else running on the machine skews the figures.\n", rep.loadStart, rep.loadEnd)
	p("- Client and servers share the machine and talk over loopback. Each case starts a fresh server process, so peak RSS (VmHWM) is per case; "+
		"each case runs %d time(s), the servers interleaved; figures are medians with min–max. MB = 10⁶ bytes.\n", o.reps)

	p("- Peers:")
	if rep.peers != nil {
		for _, k := range slices.Sorted(maps.Keys(rep.peers.versions)) {
			p(" %s;", rep.peers.versions[k])
		}
		for _, k := range slices.Sorted(maps.Keys(rep.peers.skipped)) {
			p(" %s skipped (%s);", k, strings.ReplaceAll(rep.peers.skipped[k], "\n", " "))
		}
	}
	p(" the hashing floor and the other reference servers are in `bench/`.\n\n")

	p("## Goals\n\n")
	p("Issue 17's goals, judged on this run's medians. Throughput swings from run to run on a shared machine; server CPU per GB is steadier, " +
		"so the raw PUT goals need both.\n\n")
	p("| measure | measured | goal | result |\n|---|---|---|---|\n")
	for _, g := range rep.goals() {
		measured := g.measured
		if measured == "" {
			measured = "–"
		}
		p("| %s | %s | %s | %s |\n", g.measure, measured, g.goal, g.result())
	}

	p("\n## Large uploads\n\n")
	p("One upload per run: raw is `PUT /files/large.bin` with a Content-Length, multipart is `POST /files` with one file part. ")
	p("The client repeats a 1 MiB pattern; Spillway's and the floor's answered SHA-256 and every stored file's size are checked. ")
	p("`floor` is the least work a server that answers with the SHA-256 must do (`bench/floor.go`: 256 KiB reads, the write, SHA-256 and CRC64NVME "+
		"on their own goroutine over %d buffers, and for `floor-fsync` an fsync of the file and its directory); `baseline-256k` copies without hashing; "+
		"`nginx` is WebDAV `PUT` with its request-body buffering, `nginx-256k` the same with `client_body_buffer_size 256k` (neither fsyncs). ", floorBuffers)
	p("Spillway and the floor both compute SHA-256 and CRC64NVME. The floor parses multipart with mime/multipart, so only its raw rows are the floor. " +
		"`discard`'s peak RSS is where any Go server with net/http starts. ")
	p("× ref is against the floor at the same durability. CPU columns are seconds of CPU per GB sent, for the server's processes and for the client " +
		"(this process, or the client program). Peak RSS of a server of several processes (nginx, the emulator) is the sum of theirs.\n\n")
	rep.table(&b, "MB/s", "s/GB", func(c caseSpec) bool { return c.kind == kindRaw || c.kind == kindMultipart })

	p("\n## Small uploads\n\n")
	p("`PUT /files/{unique name}` from %d keep-alive connections for %s per run. × ref is against `nginx`. "+
		"`floor` is the least a Go server on net/http does to store a small file and answer with its SHA-256: create it, write the body, hash it, close it; no check, nothing atomic. "+
		"CPU columns are µs of CPU per stored request.\n\n", o.conns, o.smallFor)
	p("Each run stores into a folder of its own and keeps its files, emptied, until the end of the benchmark. ")
	switch {
	case rep.dropsCaches:
		p("Before each run the page cache is written back and dropped. ")
	case o.quick:
		p("A quick run leaves the page cache alone, so files deleted on this disk shortly before a run slow its creates. ")
	default:
		p("The page cache could not be dropped before the runs (that needs root), so files deleted on this disk shortly before a run slow its creates. ")
	}
	p("Both because this disk is ext4 without a journal: before giving out a new inode, ext4 then reads, one by one, every inode of the folder's group " +
		"deleted in the last minute (longer while its inode table is not yet written back), so a run that created its files just after another run's files " +
		"were deleted paid ten times as much per create, and the order of the servers decided their ratio.\n\n")
	rep.table(&b, "req/s", "µs/req", func(c caseSpec) bool { return c.kind == kindSmall })

	p("\n## Resumable and S3 uploads\n\n")
	p("tus: one `POST` that creates the upload, then `PATCH`es of %s, from the same Go client (`bench/peers.go`) to tusd's filestore and to Spillway's `%s` "+
		"(fsync off, as tusd does not fsync); × ref is against tusd. ", sizeLabel(tusChunk), tusEndpoint)
	p("S3: the same file from disk into a fresh versitygw: `aws s3 cp` with its default multipart settings, against `spillway push` to `localserver --bucket` " +
		"(`push-bucket`) and to the function behind the local Function URL emulator (`push-emulator`); × ref is against `aws s3 cp`. " +
		"Server CPU counts the gateway and, for Spillway, localserver (with the emulator and the function); client CPU is the `aws` or `spillway` process.\n\n")
	rep.table(&b, "MB/s", "s/GB", func(c caseSpec) bool { return c.kind == kindTus || c.kind == kindS3 })

	p("\n## Memory under load\n\n")
	p("%d uploads of %s sent at once, each once, to `localserver --fsync=false --memory-budget %dMiB`.\n\n", loadClients, sizeLabel(loadSize), loadBudget>>20)
	rep.table(&b, "MB/s", "s/GB", func(c caseSpec) bool { return c.kind == kindLoad })

	p("\n## Client alone\n\n")
	p("The generator into `io.Discard` with 32 KiB copies (what net/http's transport does with a request body), no network: ")
	var parts []string
	for _, size := range o.large {
		k := "raw " + sizeLabel(size)
		parts = append(parts, fmt.Sprintf("%s at %.1f GB/s", sizeLabel(size), rep.clientGBps[k]))
	}
	p("%s. The `discard` rows above are the client plus loopback with a server that stores nothing: the ceiling of every other row.\n", strings.Join(parts, ", "))

	p("\n## Lambda\n\n")
	l := rep.lambda
	if l.err != "" {
		p("Not measured: %s\n", l.err)
	} else {
		p("A %s raw PUT as a base64 Function URL event (body string %d bytes), through `lambdahttp.New(api.New(…)).Serve` with the function's "+
			"JSON log and EMF metrics (to `io.Discard`) and a directory store; the event is built beforehand. Over %d runs after a warm-up: "+
			"%.1f KiB and %.0f allocations per event (max %.1f KiB); spooled to %s.\n",
			sizeLabel(lambdaEventSize), l.eventBody, l.measuredEvents, l.bytesPerOp/1024, l.allocsPerOp, float64(l.maxBytes)/1024, l.spool)
	}

	if rep.s3Complete != nil {
		p("\n## Multipart completion on S3\n\n")
		p("%s", rep.s3Complete.markdown())
	}

	if rep.dirComplete != nil {
		p("\n## Multipart completion on the directory store\n\n")
		p("%s", rep.dirComplete.markdown())
	}

	if rep.goBench != "" {
		p("\n## Go benchmarks\n\n")
		p("`go test -run '^$' -bench . -benchmem -count 1 ./spool ./api ./lambdahttp`, then CPU profiles of the API handler "+
			"(with a directory store, in process) for a large raw PUT and for 1 KiB PUTs: where the server's CPU goes.\n\n```\n%s\n```\n", strings.TrimSpace(rep.goBench))
	}
	if len(rep.errors) > 0 {
		p("\n## Failures\n\n")
		for _, e := range rep.errors {
			p("- %s\n", strings.ReplaceAll(e, "\n", " "))
		}
	}
	return b.String()
}

// ref is the server a row is compared with in its table.
func ref(c caseSpec, s serverSpec) string {
	switch c.kind {
	case kindSmall:
		return srvNginx
	case kindTus:
		return srvTusd
	case kindS3:
		return srvAWSCLI
	case kindLoad:
		return ""
	}
	if s.fsync {
		return srvFloorFsync
	}
	return srvFloor
}

func (rep *report) table(b *strings.Builder, unit, cpuUnit string, want func(caseSpec) bool) {
	fmt.Fprintf(b, "| case | server | durable | %s | min–max | × ref | peak RSS MiB | RSS at start MiB | server CPU %s | client CPU %s | failed |\n", unit, cpuUnit, cpuUnit)
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range rep.cases {
		if want(c) {
			rep.rows(b, c)
		}
	}
}

func (rep *report) rows(b *strings.Builder, c caseSpec) {
	for _, s := range servers {
		st := rep.stat(c, s.name)
		if st.total == 0 {
			continue
		}
		ratio := "–"
		if r := ref(c, s); r != "" {
			if base := rep.stat(c, r); base.n > 0 && base.med > 0 && st.n > 0 {
				ratio = fmt.Sprintf("%.2f", st.med/base.med)
			}
		}
		rate, rng := "–", "–"
		if st.n > 0 {
			prec := 0
			if st.med < 100 {
				prec = 1
			}
			rate = fmt.Sprintf("%.*f", prec, st.med)
			rng = fmt.Sprintf("%.*f–%.*f", prec, st.lo, prec, st.hi)
		}
		cpuPrec := 2
		if c.kind == kindSmall {
			cpuPrec = 0
		}
		durable := map[bool]string{true: "yes", false: "no"}[s.fsync]
		if c.kind == kindS3 {
			durable = "–" // whatever the gateway does
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s | %.1f | %.1f | %.*f | %.*f | %d/%d |\n",
			c.id, s.name, durable, rate, rng, ratio, mib(st.hwm), mib(st.startRSS), cpuPrec, st.serverCPU, cpuPrec, st.clientCPU, st.failed, st.total)
	}
}

// sectionBegin matches the opening marker of a section that another
// command or a person writes into the report, `<!-- NAME: who writes it -->`;
// it ends at `<!-- /NAME -->`. A full run keeps every such section, in order
// (the cold start section is one).
var sectionBegin = regexp.MustCompile(`<!-- ([a-z][a-z0-9-]*): [^>]*-->`)

// markedSections returns the marked sections of doc, markers included, each
// ending in a newline.
func markedSections(doc string) []string {
	var out []string
	for len(doc) > 0 {
		m := sectionBegin.FindStringSubmatchIndex(doc)
		if m == nil {
			break
		}
		end := "<!-- /" + doc[m[2]:m[3]] + " -->"
		j := strings.Index(doc[m[1]:], end)
		if j < 0 {
			break
		}
		j += m[1] + len(end)
		out = append(out, doc[m[0]:j]+"\n")
		doc = doc[j:]
	}
	return out
}
