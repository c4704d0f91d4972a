package main

import (
	"fmt"
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

// target is one line of the targets table.
type target struct {
	what, figure, required string
	pass                   *bool // nil: could not be measured
}

func ratioTarget(what string, num, den stat, numName, denName string, min float64) target {
	t := target{what: what, required: fmt.Sprintf("≥ %.2f×", min)}
	if num.n == 0 || den.n == 0 || den.med == 0 {
		t.figure = "not measured"
		return t
	}
	r := num.med / den.med
	t.figure = fmt.Sprintf("%.2f× (%s %.0f / %s %.0f)", r, numName, num.med, denName, den.med)
	ok := r >= min
	t.pass = &ok
	return t
}

func (rep *report) targets() []target {
	o := rep.opts
	large1, large2 := o.large[0], o.large[len(o.large)-1]
	var ts []target
	for _, size := range []int64{large1, large2} {
		c := rep.caseOf(kindRaw, size)
		ts = append(ts, ratioTarget(fmt.Sprintf("raw PUT %s, fsync off, vs baseline-256k (MB/s)", sizeLabel(size)),
			rep.stat(c, srvSpillway), rep.stat(c, srvBaseline), "spillway", "baseline", 0.95))
	}
	ts = append(ts, ratioTarget(fmt.Sprintf("multipart %s vs raw PUT %s, spillway fsync off (MB/s)", sizeLabel(large1), sizeLabel(large1)),
		rep.stat(rep.caseOf(kindMultipart, large1), srvSpillway), rep.stat(rep.caseOf(kindRaw, large1), srvSpillway), "multipart", "raw", 0.8))
	for _, kind := range []string{kindRaw, kindMultipart} {
		big := rep.stat(rep.caseOf(kind, large2), srvSpillway)
		small := rep.stat(rep.caseOf(kind, large1), srvSpillway)
		t := target{what: fmt.Sprintf("peak RSS, %s %s, spillway fsync off", kind, sizeLabel(large2)), required: "≤ 16 MiB"}
		if big.total > 0 && big.hwm > 0 {
			ok := big.hwm <= 16<<20
			t.pass, t.figure = &ok, fmt.Sprintf("%.1f MiB", mib(big.hwm))
		} else {
			t.figure = "not measured"
		}
		ts = append(ts, t)
		t = target{what: fmt.Sprintf("peak RSS, %s %s above %s %s", kind, sizeLabel(large2), kind, sizeLabel(large1)), required: "≤ 2 MiB"}
		if big.hwm > 0 && small.hwm > 0 {
			d := big.hwm - small.hwm
			ok := d <= 2<<20
			t.pass, t.figure = &ok, fmt.Sprintf("%+.1f MiB (%.1f − %.1f)", mib(d), mib(big.hwm), mib(small.hwm))
		} else {
			t.figure = "not measured"
		}
		ts = append(ts, t)
	}
	sc := rep.caseOf(kindSmall, o.small[0])
	ts = append(ts, ratioTarget(fmt.Sprintf("small PUTs, %s ×%d connections, fsync off, vs baseline-256k (req/s)", sizeLabel(o.small[0]), o.conns),
		rep.stat(sc, srvSpillway), rep.stat(sc, srvBaseline), "spillway", "baseline", 0.8))
	t := target{what: "Lambda: 4 MiB base64 event, allocated beyond the event (max of runs)", required: "< 1 MiB"}
	if rep.lambda.err == "" && rep.lambda.measuredEvents > 0 {
		ok := rep.lambda.maxBytes < 1<<20
		t.pass = &ok
		t.figure = fmt.Sprintf("%.1f KiB (mean %.1f KiB, %.0f allocs)", float64(rep.lambda.maxBytes)/1024, rep.lambda.bytesPerOp/1024, rep.lambda.allocsPerOp)
	} else {
		t.figure = "not measured: " + rep.lambda.err
	}
	return append(ts, t)
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
		"each case runs %d time(s), the servers interleaved; figures are medians with min–max. MB = 10⁶ bytes.\n\n", o.reps)

	p("## Targets\n\n")
	p("| target | measured | required | result |\n|---|---|---|---|\n")
	for _, t := range rep.targets() {
		res := "n/a"
		if t.pass != nil {
			res = map[bool]string{true: "PASS", false: "**FAIL**"}[*t.pass]
		}
		p("| %s | %s | %s | %s |\n", t.what, t.figure, t.required, res)
	}

	p("\n## Large uploads\n\n")
	p("One upload per run: raw is `PUT /files/large.bin` with a Content-Length, multipart is `POST /files` with one file part. ")
	p("The client repeats a 1 MiB pattern; Spillway's answered SHA-256 and every stored file's size are checked. ")
	p("CPU columns are seconds of CPU per GB sent, for the server process and for the client (this process).\n\n")
	p("| case | server | MB/s | min–max | × baseline-256k | peak RSS MiB | RSS at start MiB | server CPU s/GB | client CPU s/GB | failed |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range rep.cases {
		if c.kind == kindSmall {
			continue
		}
		rep.rows(&b, c)
	}

	p("\n## Small uploads\n\n")
	p("`PUT /files/{unique name}` from %d keep-alive connections for %s per run. CPU columns are µs of CPU per stored request.\n\n", o.conns, o.smallFor)
	p("| case | server | req/s | min–max | × baseline-256k | peak RSS MiB | RSS at start MiB | server CPU µs/req | client CPU µs/req | failed |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, c := range rep.cases {
		if c.kind == kindSmall {
			rep.rows(&b, c)
		}
	}

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
		p("`go test -run '^$' -bench . -benchmem -count 1 ./spool ./api ./lambdahttp`:\n\n```\n%s\n```\n", strings.TrimSpace(rep.goBench))
	}
	if len(rep.errors) > 0 {
		p("\n## Failures\n\n")
		for _, e := range rep.errors {
			p("- %s\n", strings.ReplaceAll(e, "\n", " "))
		}
	}
	return b.String()
}

func (rep *report) rows(b *strings.Builder, c caseSpec) {
	base := rep.stat(c, srvBaseline)
	for _, s := range servers {
		st := rep.stat(c, s.name)
		if st.total == 0 {
			continue
		}
		ratio := "–"
		if base.n > 0 && base.med > 0 && st.n > 0 {
			ratio = fmt.Sprintf("%.2f", st.med/base.med)
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
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %.1f | %.1f | %.*f | %.*f | %d/%d |\n",
			c.id, s.name, rate, rng, ratio, mib(st.hwm), mib(st.startRSS), cpuPrec, st.serverCPU, cpuPrec, st.clientCPU, st.failed, st.total)
	}
}
