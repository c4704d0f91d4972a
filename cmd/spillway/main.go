// Command spillway is Spillway's command-line client.
//
//	spillway push [flags] FILE|DIR... URL
//
// pushes files to a Spillway server: files up to --direct-max with one PUT,
// larger ones in parallel parts sent straight to storage, resumable: run an
// interrupted push again and it sends only the parts it has not seen
// confirmed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"golang.org/x/term"

	"spillway/client"
	"spillway/internal/bytesize"
)

// Exit statuses.
const (
	exitOK          = 0
	exitFailed      = 1 // some file was not pushed
	exitUsage       = 2
	exitInterrupted = 130
)

func main() {
	if printVersion(os.Args[1:], os.Stdout) {
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	isTerm := term.IsTerminal(int(os.Stderr.Fd()))
	os.Exit(run(ctx, os.Args[1:], os.Stderr, os.Getenv, isTerm))
}

const usage = `usage: spillway push [flags] FILE|DIR... [URL]

Pushes files to the Spillway server at URL (or --url). A directory is pushed whole,
each file named by its slash-separated path below it. Files up to
--direct-max go with one PUT; larger ones in parallel parts, --jobs files
at a time. Run an interrupted push again: it resumes where it stopped, and
a file the server already holds with the same size and SHA-256 counts as
pushed.

flags:
`

const overview = `usage: spillway COMMAND [flags] ARGS

Commands:
  push   send files and folders, in parallel parts when large; resumable
  ls     list the stored files
  get    download a stored file, resuming a partial download
  rm     delete stored files

Every command takes the server from --url or SPILLWAY_URL (push also from
its last argument), and a bearer token from --token or SPILLWAY_TOKEN, or
signs its requests with --aws-iam. Exit status: 0 done, 1 some file failed,
2 usage, 130 interrupted.

`

// help prints the overview, then every command's usage and flags.
func help(ctx context.Context, stderr io.Writer, getenv func(string) string) {
	fmt.Fprint(stderr, overview)
	_, _ = parsePush([]string{"-h"}, stderr, getenv)
	for _, cmd := range []func(context.Context, []string, io.Writer, func(string) string) int{
		func(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string) int {
			return ls(ctx, args, io.Discard, stderr, getenv)
		},
		get, rm,
	} {
		fmt.Fprintln(stderr)
		cmd(ctx, []string{"-h"}, stderr, getenv)
	}
}

// pushConfig is the push command's command line.
type pushConfig struct {
	serverFlags
	name, prefix  string
	parallel      int
	jobs          int
	directMax     int64
	partSize      int64
	noResume      bool
	quiet         bool
	sources       []string
	progressEvery time.Duration
}

// run is the whole command, apart from the process: it returns the exit
// status.
func run(ctx context.Context, args []string, stderr io.Writer, getenv func(string) string, isTerm bool) int {
	if len(args) > 0 {
		switch args[0] {
		case "ls":
			return ls(ctx, args[1:], os.Stdout, stderr, getenv)
		case "get":
			return get(ctx, args[1:], stderr, getenv)
		case "rm":
			return rm(ctx, args[1:], stderr, getenv)
		}
	}
	if len(args) == 0 || args[0] != "push" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			help(ctx, stderr, getenv)
			return exitOK
		}
		fmt.Fprint(stderr, "spillway: unknown command; the commands are push, ls, get and rm\n\n"+usage)
		return exitUsage
	}
	cfg, err := parsePush(args[1:], stderr, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "spillway push: %v\n", err)
		return exitUsage
	}
	return push(ctx, cfg, stderr, isTerm)
}

func parsePush(args []string, stderr io.Writer, getenv func(string) string) (pushConfig, error) {
	cfg := pushConfig{parallel: client.DefaultParallel, jobs: defaultJobs, directMax: client.DefaultDirectMax, progressEvery: 5 * time.Second}
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.name, "name", "", "the name on the server, for a single FILE (default: its base name)")
	fs.StringVar(&cfg.prefix, "prefix", "", "put every name below this folder on the server")
	cfg.serverFlags.register(fs)
	fs.IntVar(&cfg.parallel, "parallel", cfg.parallel, "parts of one file sent at once")
	fs.IntVar(&cfg.jobs, "jobs", cfg.jobs, "files pushed at once")
	fs.Func("direct-max", "largest file sent with one PUT, such as 4MiB; 0: every non-empty file in parts (default 4MiB)", func(s string) error {
		n, err := bytesize.Parse(s)
		cfg.directMax = n
		return err
	})
	fs.Func("part-size", "size of the parts of a multipart upload, from 5MiB to 5GiB, such as 64MiB (default: the server's choice, 16MiB, more for files past 10,000 parts)", func(s string) error {
		n, err := bytesize.Parse(s)
		cfg.partSize = n
		return err
	})
	fs.BoolVar(&cfg.noResume, "no-resume", false, "neither resume earlier uploads nor keep state to resume this one; a push that fails aborts its upload")
	fs.BoolVar(&cfg.quiet, "quiet", false, "print only errors")

	pos, err := parseArgs(fs, args)
	if err != nil {
		return cfg, err
	}
	if cfg.sources, cfg.url, err = pushTarget(pos, cfg.url, getenv); err != nil {
		fs.Usage()
		return cfg, err
	}
	if err := cfg.serverFlags.resolve(getenv); err != nil {
		return cfg, err
	}
	switch {
	case cfg.parallel < 1:
		return cfg, errors.New("--parallel must be at least 1")
	case cfg.partSize != 0 && (cfg.partSize < client.MinPartSize || cfg.partSize > client.MaxPartSize):
		return cfg, errors.New("--part-size must be from 5MiB to 5GiB")
	case cfg.jobs < 1 || cfg.jobs > maxJobs:
		return cfg, fmt.Errorf("--jobs must be from 1 to %d", maxJobs)
	case cfg.name != "" && len(cfg.sources) != 1:
		return cfg, errors.New("--name needs exactly one FILE")
	}
	return cfg, nil
}

func push(ctx context.Context, cfg pushConfig, stderr io.Writer, isTerm bool) int {
	opts := client.Options{
		Token:     cfg.token,
		Parallel:  cfg.parallel,
		DirectMax: cfg.directMax,
		PartSize:  cfg.partSize,
		NoResume:  cfg.noResume,
	}
	if opts.DirectMax == 0 {
		opts.DirectMax = -1
	}
	if cfg.awsIAM {
		signer, err := sigV4(ctx, cfg.serverFlags)
		if err != nil {
			fmt.Fprintf(stderr, "spillway push: --aws-iam: %v\n", err)
			return exitUsage
		}
		opts.Signer = signer
	}

	// Every source is listed before anything is sent, so that the total is
	// known and a typo fails at once.
	var files []client.File
	failed := 0 // sources that could not be listed, then files not pushed
	for _, src := range cfg.sources {
		found, skipped, err := client.Walk(src, cfg.prefix)
		if err != nil {
			fmt.Fprintf(stderr, "spillway push: %v\n", err)
			failed++
			continue
		}
		for _, s := range skipped {
			if !cfg.quiet {
				fmt.Fprintf(stderr, "skip %s: not a regular file\n", s)
			}
		}
		if cfg.name != "" {
			if len(found) != 1 || found[0].Path != src {
				fmt.Fprintf(stderr, "spillway push: --name needs a FILE, and %s is not one\n", src)
				return exitUsage
			}
			found[0].Name = cfg.name
		}
		files = append(files, found...)
	}

	out := newUI(stderr, cfg.quiet, isTerm, cfg.progressEvery, files)
	opts.Progress = out.progress
	c, err := client.New(cfg.url, opts)
	if err != nil {
		fmt.Fprintf(stderr, "spillway push: %v\n", err)
		return exitUsage
	}

	start := time.Now()
	pushed, existing, bytes, pushFailed := pushAll(ctx, c, files, cfg.jobs, out)
	failed += pushFailed
	out.finish()
	if ctx.Err() != nil {
		fmt.Fprintf(stderr, "interrupted after %d of %d files; run the same command again to resume\n", pushed, len(files))
		return exitInterrupted
	}
	if !cfg.quiet || failed > 0 {
		summary := fmt.Sprintf("pushed %d of %d files (%s", pushed, pushed+failed, formatBytes(bytes))
		if existing > 0 {
			summary += fmt.Sprintf("; %d already there", existing)
		}
		summary += fmt.Sprintf(") in %s", time.Since(start).Round(time.Millisecond))
		if failed > 0 {
			summary += fmt.Sprintf("; %d failed", failed)
		}
		fmt.Fprintln(stderr, summary)
	}
	if failed > 0 {
		return exitFailed
	}
	return exitOK
}

// sigV4 returns a signer with the AWS SDK's default credentials and the
// region the command line names, or the Function URL's, or the SDK's.
func sigV4(ctx context.Context, cfg serverFlags) (*client.SigV4, error) {
	region := cfg.region
	if region == "" {
		region = client.RegionFromURL(cfg.url)
	}
	var loadOpts []func(*config.LoadOptions) error
	if region != "" {
		loadOpts = append(loadOpts, config.WithRegion(region))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, err
	}
	if awsCfg.Region == "" {
		return nil, errors.New("no region: give --region, or a *.lambda-url.REGION.on.aws URL")
	}
	if awsCfg.Credentials == nil {
		return nil, errors.New("no AWS credentials found")
	}
	return client.NewSigV4(awsCfg.Credentials, awsCfg.Region), nil
}

// formatBytes prints n in IEC units with one decimal, as people read sizes.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// rate prints bytes over d in MiB/s, the unit the sizes are in.
func rate(bytes int64, d time.Duration) string {
	if d <= 0 {
		return "- MiB/s"
	}
	return fmt.Sprintf("%.1f MiB/s", float64(bytes)/(1<<20)/d.Seconds())
}

// shorten keeps a name to at most n runes for a progress line, keeping its
// end, which tells files apart.
func shorten(name string, n int) string {
	r := []rune(name)
	if len(r) <= n {
		return name
	}
	return "…" + strings.TrimLeft(string(r[len(r)-n+1:]), "/")
}
