package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
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
	fs.Var(sizeFlag{&c.MemoryBudget}, "memory-budget", "the server's --memory-budget; peak RSS may be this + "+bytesize.Format(rssOverhead))
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
