// Command loadtest is Spillway's bounded load test. It drives a local server
// on loopback with many concurrent clients uploading a mix of sizes (1 KiB to
// 64 MiB) as raw PUTs with a Content-Length, raw chunked PUTs and multipart
// POSTs of one to three files, and checks that:
//
//   - no request gets a 5xx (nor any other status but 201),
//   - every 201 is right: the sha256 the server answers equals the one the
//     client computed while sending, and so does the SHA-256 of the stored
//     file, read back from the upload directory,
//   - nothing leaks: the spool dir ends empty, no .spillway-* staging file
//     and no file of a failed request is left, the server's open file
//     descriptors return to where they started,
//   - the server's peak RSS (VmHWM, and VmRSS sampled while it runs) stays
//     within the memory budget plus a fixed 48 MiB overhead.
//
// It builds nothing. Given --server (a binary from `go build ./localserver`)
// it starts that server on 127.0.0.1:0 with its own temporary upload and
// spool directories and stops it with SIGTERM at the end. Given --url it
// targets a server that is already running, and then needs --directory (to
// verify and delete stored files; the API has no DELETE) and, for the RSS,
// fd and spool checks, --pid and --spool-dir.
//
// Every verified file is deleted at once, so the disk holds at most one
// request's bytes per client; every loop is bounded by --duration and by
// --max-requests and --max-bytes. It exits 1 when a check fails and 2 when
// the test cannot run.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"maps"
	"math/rand/v2"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"spillway/internal/bytesize"
)

// rssOverhead is what the server may use beyond its memory budget: the
// runtime, connection buffers and copy buffers. It matches memoryOverhead
// in localserver, which sets the server's GOMEMLIMIT to budget + overhead.
const rssOverhead = 48 << 20

// Request kinds.
const (
	kindRaw       = "raw"       // PUT with Content-Length
	kindChunked   = "chunked"   // PUT with Transfer-Encoding: chunked
	kindMultipart = "multipart" // POST multipart/form-data, 1–3 files
)

var kinds = []string{kindRaw, kindChunked, kindMultipart}

// sizeClass is one band of the size mix: a file's size is drawn uniformly
// from [min, max] of a band chosen by weight.
type sizeClass struct {
	weight   int
	min, max int64
}

// sizeMix is mostly small files, some around the 2 MiB threshold, and a few
// large ones.
var sizeMix = []sizeClass{
	{70, 1 << 10, 256 << 10},
	{25, 1 << 20, 8 << 20},
	{5, 32 << 20, 64 << 20},
}

// config is one load test.
type config struct {
	Server     string   // localserver binary to start; or
	URL        string   // a running server on loopback
	ServerArgs []string // extra flags for the started server
	Token      string   // bearer token to send, if the server wants one

	PID       int    // the running server's pid (with URL): RSS and fd checks
	Directory string // its upload directory (required with URL)
	SpoolDir  string // its spool dir (with URL): leak check
	WorkDir   string // where a started server's directories go (default os.TempDir())

	Fsync        bool  // start the server with --fsync
	MemoryBudget int64 // the server's --memory-budget; the RSS limit is this + rssOverhead

	Clients     int
	Duration    time.Duration // no request starts after this
	Grace       time.Duration // in-flight requests are cancelled this long after Duration
	MaxRequests int           // total, over all clients
	MaxBytes    int64         // total payload, over all clients
	MaxSize     int64         // largest payload of one request
	Seed        uint64

	Progress io.Writer // a line every few seconds while running; nil for none
}

func defaultConfig() config {
	return config{
		MemoryBudget: 64 << 20,
		Clients:      64,
		Duration:     30 * time.Second,
		Grace:        2 * time.Minute,
		MaxRequests:  100_000,
		MaxBytes:     64 << 30,
		MaxSize:      64 << 20,
		Seed:         1,
	}
}

type sizeFlag struct{ p *int64 }

func (f sizeFlag) String() string {
	if f.p == nil {
		return ""
	}
	return bytesize.Format(*f.p)
}

func (f sizeFlag) Set(s string) error {
	n, err := bytesize.Parse(s)
	if err == nil {
		*f.p = n
	}
	return err
}

type listFlag struct{ p *[]string }

func (f listFlag) String() string {
	if f.p == nil {
		return ""
	}
	return strings.Join(*f.p, " ")
}

func (f listFlag) Set(s string) error { *f.p = append(*f.p, s); return nil }

func parseFlags(args []string, out io.Writer) (config, error) {
	c := defaultConfig()
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.Server, "server", "", "path of a built localserver binary to start (go build -o PATH ./localserver)")
	fs.StringVar(&c.URL, "url", "", "base URL of a running server on loopback, instead of --server")
	fs.Var(listFlag{&c.ServerArgs}, "server-arg", "extra flag for the started server, e.g. --server-arg=--threshold=1MiB (repeatable)")
	fs.StringVar(&c.Token, "token", "", "bearer token to send (with --url, for a server started with --token)")
	fs.IntVar(&c.PID, "pid", 0, "pid of the running server (with --url), for the RSS and fd checks")
	fs.StringVar(&c.Directory, "directory", "", "upload directory of the running server (required with --url)")
	fs.StringVar(&c.SpoolDir, "spool-dir", "", "spool dir of the running server (with --url), for the leak check")
	fs.StringVar(&c.WorkDir, "work-dir", "", "parent of the started server's temporary directories (default the system temp dir)")
	fs.BoolVar(&c.Fsync, "fsync", false, "start the server with --fsync=true (default false)")
	fs.Var(sizeFlag{&c.MemoryBudget}, "memory-budget", "the server's --memory-budget; peak RSS may be this + 32MiB")
	fs.IntVar(&c.Clients, "clients", c.Clients, "concurrent clients")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "how long clients start new requests")
	fs.DurationVar(&c.Grace, "grace", c.Grace, "how long after --duration in-flight requests may take before they are cancelled")
	fs.IntVar(&c.MaxRequests, "max-requests", c.MaxRequests, "cap on requests, over all clients")
	fs.Var(sizeFlag{&c.MaxBytes}, "max-bytes", "cap on payload bytes sent, over all clients")
	fs.Var(sizeFlag{&c.MaxSize}, "max-size", "largest payload of one request (at least 1KiB)")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed for sizes, kinds and payloads")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	return c, c.validate()
}

func (c *config) validate() error {
	switch {
	case (c.Server == "") == (c.URL == ""):
		return errors.New("give exactly one of --server and --url")
	case c.URL != "" && c.Directory == "":
		return errors.New("--url needs --directory: stored files are verified and deleted there")
	case c.Server != "" && (c.PID != 0 || c.Directory != "" || c.SpoolDir != ""):
		return errors.New("--pid, --directory and --spool-dir are for --url; --server makes its own")
	case c.Clients < 1, c.Duration <= 0, c.Grace < 0, c.MaxRequests < 1, c.MaxBytes < 1:
		return errors.New("--clients, --duration, --max-requests and --max-bytes must be positive, --grace not negative")
	case c.MaxSize < sizeMix[0].min:
		return fmt.Errorf("--max-size must be at least %s", bytesize.Format(sizeMix[0].min))
	case c.MemoryBudget < 1:
		return errors.New("--memory-budget must be positive")
	}
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil || u.Scheme != "http" || u.Host == "" {
			return fmt.Errorf("--url %q: want http://127.0.0.1:PORT", c.URL)
		}
		if h := u.Hostname(); h != "localhost" && !isLoopbackIP(h) {
			return fmt.Errorf("--url %q: loopback only", c.URL)
		}
	}
	return nil
}

func isLoopbackIP(host string) bool {
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func main() {
	cfg, err := parseFlags(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
	cfg.Progress = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(2)
	}
	sum.Write(os.Stdout)
	if !sum.OK() {
		os.Exit(1)
	}
}

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
		defer srv.kill()
		pid, base = srv.cmd.Process.Pid, srv.url
	}
	base = strings.TrimRight(base, "/")
	sum.Target, sum.PID = base, pid
	if err := checkDiskSpace(cfg, dir, spoolDir); err != nil {
		return nil, err
	}
	if pid != 0 {
		sum.FDsStart = countFDs(pid)
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
		if hwm, ok := readStatusKB(pid, "VmHWM"); ok {
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

// loadTest is the state the clients share.
type loadTest struct {
	cfg    config
	client *http.Client
	base   string
	dir    string
	runID  string // in every name this run uploads

	issued  atomic.Int64
	claimed atomic.Int64 // payload bytes

	mu        sync.Mutex
	sum       *Summary
	latencies []time.Duration
}

// run starts the clients and waits for them. No request starts after
// Duration; requests still running Grace later are cancelled.
func (lt *loadTest) run(ctx context.Context) {
	start := time.Now()
	hardCtx, cancel := context.WithDeadline(ctx, start.Add(lt.cfg.Duration+lt.cfg.Grace))
	defer cancel()
	issueUntil := start.Add(lt.cfg.Duration)

	done := make(chan struct{})
	go lt.progress(start, done)
	var wg sync.WaitGroup
	for id := range lt.cfg.Clients {
		wg.Go(func() { lt.worker(hardCtx, id, issueUntil) })
	}
	wg.Wait()
	close(done)
	lt.sum.Elapsed = time.Since(start)

	slices.Sort(lt.latencies)
	lt.sum.P50 = percentile(lt.latencies, 0.50)
	lt.sum.P99 = percentile(lt.latencies, 0.99)
	if n := len(lt.latencies); n > 0 {
		lt.sum.Max = lt.latencies[n-1]
	}
}

func (lt *loadTest) progress(start time.Time, done <-chan struct{}) {
	if lt.cfg.Progress == nil {
		return
	}
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		lt.mu.Lock()
		s := lt.sum
		fmt.Fprintf(lt.cfg.Progress, "loadtest: %5.1fs  %d requests, %d created, %d 5xx, %d verification failures, %.1f MB stored\n",
			time.Since(start).Seconds(), s.Requests, s.ByStatus[http.StatusCreated], s.Status5xx, s.VerifyFailures, float64(s.BytesStored)/1e6)
		lt.mu.Unlock()
	}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// worker is one client: it sends requests one after another until the
// duration, the request cap or the byte cap runs out.
func (lt *loadTest) worker(ctx context.Context, id int, issueUntil time.Time) {
	rng := rand.New(rand.NewPCG(lt.cfg.Seed, uint64(id)+1))
	for seq := range lt.cfg.MaxRequests {
		if ctx.Err() != nil || !time.Now().Before(issueUntil) {
			return
		}
		if lt.issued.Add(1) > int64(lt.cfg.MaxRequests) {
			return
		}
		up := lt.plan(rng, id, seq)
		if lt.claimed.Add(up.total) > lt.cfg.MaxBytes {
			return
		}
		lt.do(ctx, up)
	}
}

// file is one file of a request: its payload is generated from seed while
// it is sent, and hashed on the way.
type file struct {
	name string
	size int64
	seed uint64
	body *payload
}

type upload struct {
	kind  string
	files []*file
	total int64
}

// plan picks a request's kind, files and sizes.
func (lt *loadTest) plan(rng *rand.Rand, id, seq int) *upload {
	up := &upload{kind: kinds[rng.IntN(len(kinds))]}
	n := 1
	if up.kind == kindMultipart {
		n = 1 + rng.IntN(3)
	}
	for i := range n {
		size := min(lt.drawSize(rng), lt.cfg.MaxSize-up.total)
		if size <= 0 {
			break
		}
		f := &file{size: size, seed: rng.Uint64()}
		if up.kind == kindMultipart {
			// Multipart stores base names.
			f.name = fmt.Sprintf("%s-c%02d-%06d-%d.bin", lt.runID, id, seq, i+1)
		} else {
			f.name = fmt.Sprintf("%s/c%02d/%06d.bin", lt.runID, id, seq)
		}
		up.files = append(up.files, f)
		up.total += size
	}
	return up
}

func (lt *loadTest) drawSize(rng *rand.Rand) int64 {
	var classes []sizeClass
	total := 0
	for _, c := range sizeMix {
		if c.min <= lt.cfg.MaxSize {
			c.max = min(c.max, lt.cfg.MaxSize)
			classes = append(classes, c)
			total += c.weight
		}
	}
	w := rng.IntN(total)
	for _, c := range classes {
		if w < c.weight {
			return c.min + rng.Int64N(c.max-c.min+1)
		}
		w -= c.weight
	}
	panic("unreachable")
}

// response is the body of a 201.
type response struct {
	Files []struct {
		Name   string `json:"name"`
		Size   int64  `json:"size"`
		SHA256 string `json:"sha256"`
		Spool  string `json:"spool"`
	} `json:"files"`
}

// do sends one request, then verifies and deletes what it stored.
func (lt *loadTest) do(ctx context.Context, up *upload) {
	body, closed, req, err := lt.request(ctx, up)
	if err != nil {
		lt.record(up, 0, 0, nil, fmt.Errorf("building the request: %w", err))
		return
	}
	start := time.Now()
	resp, err := lt.client.Do(req)
	if err != nil {
		body.Close()
		lt.record(up, 0, 0, nil, err)
		return
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	latency := time.Since(start)
	if err != nil {
		lt.record(up, 0, 0, nil, fmt.Errorf("reading the answer: %w", err))
		return
	}
	if resp.StatusCode != http.StatusCreated {
		lt.record(up, resp.StatusCode, latency, nil, fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, strings.TrimSpace(string(raw))))
		return
	}
	// The transport may still be finishing with the body in its own
	// goroutine; the hashes are complete once it has closed it.
	select {
	case <-closed:
	case <-time.After(time.Minute):
		lt.record(up, resp.StatusCode, latency, []string{"request body never closed by the transport"}, nil)
		return
	}
	lt.record(up, resp.StatusCode, latency, lt.verify(up, raw), nil)
}

// request builds the HTTP request for up. The returned channel is closed
// when the transport closes the body.
func (lt *loadTest) request(ctx context.Context, up *upload) (io.Closer, <-chan struct{}, *http.Request, error) {
	for _, f := range up.files {
		f.body = newPayload(f.seed, f.size)
	}
	var (
		r      io.Reader
		length int64
		method = http.MethodPut
		target = lt.base + "/files/"
		ctype  string
	)
	switch up.kind {
	case kindRaw, kindChunked:
		f := up.files[0]
		r, length = f.body, f.size
		target += (&url.URL{Path: f.name}).EscapedPath()
		if up.kind == kindChunked {
			length = -1
		}
	case kindMultipart:
		method, target = http.MethodPost, lt.base+"/files"
		ctype, r, length = multipartBody(up)
	}
	body := &closeNotifier{r: r, closed: make(chan struct{})}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, nil, nil, err
	}
	req.ContentLength = length
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	req.Header.Set("Content-Type", ctype)
	if lt.cfg.Token != "" {
		req.Header.Set("Authorization", "Bearer "+lt.cfg.Token)
	}
	return body, body.closed, req, nil
}

// multipartBody streams up's files as multipart/form-data with an exact
// length: the part headers are rendered up front and the payloads stream
// between them. Sometimes a plain form field, which the server ignores,
// comes first.
func multipartBody(up *upload) (ctype string, body io.Reader, length int64) {
	var buf strings.Builder
	mw := multipart.NewWriter(&buf)
	var readers []io.Reader
	flush := func() {
		readers = append(readers, strings.NewReader(buf.String()))
		length += int64(buf.Len())
		buf.Reset()
	}
	if up.files[0].seed%2 == 0 {
		mw.WriteField("note", "ignored by the server")
	}
	for i, f := range up.files {
		if _, err := mw.CreateFormFile(fmt.Sprintf("file%d", i+1), f.name); err != nil {
			panic(err) // writes to a strings.Builder do not fail
		}
		flush()
		readers = append(readers, f.body)
		length += f.size
	}
	mw.Close()
	flush()
	return mw.FormDataContentType(), io.MultiReader(readers...), length
}

// closeNotifier is a request body that tells when the transport is done
// with it.
type closeNotifier struct {
	r      io.Reader
	once   sync.Once
	closed chan struct{}
}

func (c *closeNotifier) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *closeNotifier) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// payload yields size pseudo-random bytes from seed and hashes them as they
// are read.
type payload struct {
	src  *rand.ChaCha8
	left int64
	h    hash.Hash
}

func newPayload(seed uint64, size int64) *payload {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	return &payload{src: rand.NewChaCha8(key), left: size, h: sha256.New()}
}

func (p *payload) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n, _ := p.src.Read(b)
	p.h.Write(b[:n])
	p.left -= int64(n)
	return n, nil
}

// sum returns the hex SHA-256 of the bytes read, or "" when not all were.
func (p *payload) sum() string {
	if p.left != 0 {
		return ""
	}
	return hex.EncodeToString(p.h.Sum(nil))
}

// verify checks a 201's answer and the stored files against what was sent,
// and deletes the files. It returns what was wrong.
func (lt *loadTest) verify(up *upload, raw []byte) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	var resp response
	if err := json.Unmarshal(raw, &resp); err != nil {
		bad("%s: 201 with a body that is not JSON: %v: %.200q", up.files[0].name, err, raw)
	}
	answered := map[string]int{}
	for i, f := range resp.Files {
		answered[f.Name] = i
	}
	if len(resp.Files) != len(up.files) {
		bad("%s: sent %d files, the 201 lists %d", up.kind, len(up.files), len(resp.Files))
	}
	for _, f := range up.files {
		want := f.body.sum()
		i, ok := answered[f.name]
		switch {
		case want == "":
			bad("%s: 201 although the client did not send all %d bytes", f.name, f.size)
		case !ok:
			bad("%s: missing from the 201's file list", f.name)
		case resp.Files[i].Size != f.size:
			bad("%s: sent %d bytes, the 201 says %d", f.name, f.size, resp.Files[i].Size)
		case resp.Files[i].SHA256 != want:
			bad("%s: sha256 sent %s, the 201 says %s", f.name, want, resp.Files[i].SHA256)
		}
		if ok {
			lt.mu.Lock()
			lt.sum.BySpool[resp.Files[i].Spool]++
			lt.mu.Unlock()
		}
		path := filepath.Join(lt.dir, filepath.FromSlash(f.name))
		got, n, err := hashFile(path)
		switch {
		case err != nil:
			bad("%s: reading the stored file: %v", f.name, err)
		case n != f.size:
			bad("%s: sent %d bytes, stored %d", f.name, f.size, n)
		case got != want:
			bad("%s: sha256 sent %s, stored file has %s", f.name, want, got)
		}
		if err == nil {
			if err := os.Remove(path); err != nil {
				bad("%s: deleting the verified file: %v", f.name, err)
			}
		}
	}
	return problems
}

func hashFile(path string) (string, int64, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return "", n, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// record adds one request's outcome to the summary. status is 0 when there
// was no HTTP answer.
func (lt *loadTest) record(up *upload, status int, latency time.Duration, problems []string, reqErr error) {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	s := lt.sum
	s.Requests++
	s.BytesSent += up.total
	k := s.ByKind[up.kind]
	k.Requests++
	sample := func(msg string) {
		if len(s.Samples) < 10 {
			s.Samples = append(s.Samples, msg)
		}
	}
	switch {
	case status == 0:
		s.TransportErrors++
		sample(fmt.Sprintf("%s %s: %v", up.kind, up.files[0].name, reqErr))
		return
	case status >= 500:
		s.Status5xx++
	case status != http.StatusCreated:
		s.OtherStatus++
	}
	s.ByStatus[status]++
	lt.latencies = append(lt.latencies, latency)
	if reqErr != nil {
		sample(reqErr.Error())
	}
	if status != http.StatusCreated {
		return
	}
	k.Created++
	k.Files += len(up.files)
	s.BytesStored += up.total
	s.FilesVerified += len(up.files)
	if len(problems) > 0 {
		s.VerifyFailures++
		for _, p := range problems {
			sample("verify: " + p)
		}
	}
}

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
			lt.sum.FDsEnd = countFDs(pid)
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

// newClient is an HTTP client that dials loopback addresses only and keeps
// one idle connection per client.
func newClient(clients int) *http.Client {
	dialer := &net.Dialer{
		Timeout: 10 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil || !isLoopbackIP(host) {
				return fmt.Errorf("loadtest dials loopback only, not %s", address)
			}
			return nil
		},
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         dialer.DialContext,
			MaxIdleConns:        clients,
			MaxIdleConnsPerHost: clients,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func healthz(ctx context.Context, client *http.Client, base string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("server not reachable: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /healthz: %s", resp.Status)
	}
	return nil
}

// checkDiskSpace refuses to start when the upload or spool filesystem
// cannot hold one largest request per client, plus 1 GiB.
func checkDiskSpace(cfg config, dirs ...string) error {
	need := int64(cfg.Clients)*cfg.MaxSize + 1<<30
	for _, d := range dirs {
		if d == "" {
			continue
		}
		free, ok := freeBytes(existingParent(d))
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
			if rss, ok := readStatusKB(s.pid, "VmRSS"); ok {
				s.maxRSS = max(s.maxRSS, rss)
			}
		}
		if i%10 == 0 {
			if free, ok := freeBytes(s.dir); ok && (s.minFree < 0 || free < s.minFree) {
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

// readStatusKB reads a "Name:   123 kB" line of /proc/PID/status, in bytes.
func readStatusKB(pid int, name string) (int64, bool) {
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, name+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

func countFDs(pid int) int {
	entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

// server is a started localserver.
type server struct {
	cmd    *exec.Cmd
	url    string
	exited chan struct{}
	err    error // from Wait, once exited is closed

	mu  sync.Mutex
	sl  ServerLog
	all []string // the first lines, for a server that does not start
}

var urlRE = regexp.MustCompile(`url=(http://\S+)`)

// startServer starts the binary on a free loopback port and reads its URL
// from the listening line on stderr. The SPILLWAY_* environment is not
// passed on, so only the flags given here configure it.
func startServer(ctx context.Context, cfg config, dir, spoolDir string) (*server, error) {
	args := []string{
		"--addr", "127.0.0.1:0",
		"--directory", dir,
		"--spool-dir", spoolDir,
		"--fsync=" + strconv.FormatBool(cfg.Fsync),
		"--memory-budget", bytesize.Format(cfg.MemoryBudget),
	}
	args = append(args, cfg.ServerArgs...)
	s := &server{cmd: exec.Command(cfg.Server, args...), exited: make(chan struct{})}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SPILLWAY_") {
			s.cmd.Env = append(s.cmd.Env, kv)
		}
	}
	s.cmd.SysProcAttr = serverProcAttr()
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the server: %w", err)
	}
	urls := make(chan string, 1)
	go s.readLog(stderr, urls)
	select {
	case s.url = <-urls:
		return s, nil
	case <-s.exited:
		return nil, fmt.Errorf("the server exited before listening (%v):\n%s", s.err, strings.Join(s.lines(), "\n"))
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	s.kill()
	return nil, fmt.Errorf("no listening line from the server:\n%s", strings.Join(s.lines(), "\n"))
}

// readLog reads the server's stderr to the end, so the server never blocks
// on it, then waits for the process.
func (s *server) readLog(stderr io.Reader, urls chan<- string) {
	defer close(s.exited)
	defer func() { s.err = s.cmd.Wait() }()
	lines := bufio.NewScanner(stderr)
	lines.Buffer(make([]byte, 64<<10), 1<<20)
	found := false
	for lines.Scan() {
		line := lines.Text()
		if !found {
			if m := urlRE.FindStringSubmatch(line); m != nil {
				found = true
				urls <- m[1]
			}
		}
		s.mu.Lock()
		s.sl.Lines++
		if len(s.all) < 50 {
			s.all = append(s.all, line)
		}
		level := logField(line, "level")
		if level == "WARN" || level == "ERROR" {
			if level == "WARN" {
				s.sl.Warn++
			} else {
				s.sl.Error++
			}
			s.sl.Tail = append(s.sl.Tail, line)
			if len(s.sl.Tail) > 10 {
				s.sl.Tail = s.sl.Tail[1:]
			}
		}
		if logField(line, "msg") == "stopped" {
			s.sl.Stopped = line
		}
		s.mu.Unlock()
	}
	io.Copy(io.Discard, stderr) // after a line too long to scan
}

func (s *server) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.all)
}

func (s *server) log() ServerLog {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.sl
	l.Tail = slices.Clone(l.Tail)
	return l
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop() error {
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-s.exited:
		if s.err != nil {
			return fmt.Errorf("exited after SIGTERM: %w", s.err)
		}
		return nil
	case <-time.After(2 * time.Minute):
		s.kill()
		return errors.New("did not exit within 2m of SIGTERM")
	}
}

// kill ends the server if it still runs.
func (s *server) kill() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Kill()
	<-s.exited
}

// logField returns the value of key=value in a slog text line.
func logField(line, key string) string {
	i := strings.Index(" "+line, " "+key+"=")
	if i < 0 {
		return ""
	}
	rest := line[i+len(key)+1:]
	if strings.HasPrefix(rest, `"`) {
		if v, err := strconv.QuotedPrefix(rest); err == nil {
			u, _ := strconv.Unquote(v)
			return u
		}
	}
	v, _, _ := strings.Cut(rest, " ")
	return v
}

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
