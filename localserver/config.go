package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"spillway/internal/bytesize"
	"spillway/spool"
	"spillway/store/dirstore"
)

// config is everything the server is started with. It is built only here,
// from flags and the environment.
type config struct {
	Addr            string
	Directory       string
	Bucket          string
	Prefix          string
	SpoolDir        string
	Threshold       int64
	MaxUploadSize   int64
	MemoryBudget    int64
	Overwrite       bool
	FileMode        fs.FileMode
	Fsync           bool
	LogLevel        slog.Level
	ReadTimeout     time.Duration
	ShutdownTimeout time.Duration
	MaxUploads      int
	MaxConnections  int // 0: derived from the open-file limit
	Token           string
	UploadSecret    string
	CORSOrigins     string
	MetricsPublic   bool
	Function        string
	RIE             string

	// CaseSensitiveNames lets the directory store keep names that differ
	// only in case side by side.
	CaseSensitiveNames bool
}

// sizeValue is a flag.Value for byte counts with units.
type sizeValue struct{ p *int64 }

func (v sizeValue) String() string {
	if v.p == nil {
		return ""
	}
	return bytesize.Format(*v.p)
}

func (v sizeValue) Set(s string) error {
	n, err := bytesize.Parse(s)
	if err != nil {
		return err
	}
	*v.p = n
	return nil
}

// modeValue is a flag.Value for the permission bits of stored files, in
// octal.
type modeValue struct{ p *fs.FileMode }

func (v modeValue) String() string {
	if v.p == nil {
		return ""
	}
	return fmt.Sprintf("%#o", uint32(*v.p))
}

func (v modeValue) Set(s string) error {
	n, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil {
		return errors.New("not an octal mode such as 0644")
	}
	m := fs.FileMode(n)
	switch {
	case m&^fs.ModePerm != 0:
		return errors.New("only permission bits (0777) may be set")
	case m&0o400 == 0:
		return errors.New("the owner must be able to read stored files")
	}
	*v.p = m
	return nil
}

// parseConfig reads flags from args; each flag falls back to its SPILLWAY_*
// environment variable, and then to the default.
func parseConfig(args []string, getenv func(string) string, usage io.Writer) (config, error) {
	c := config{
		Addr:            "127.0.0.1:8080",
		Directory:       "./uploads",
		SpoolDir:        os.TempDir(),
		Threshold:       spool.DefaultThreshold,
		MemoryBudget:    spool.DefaultMemoryBudget,
		FileMode:        dirstore.DefaultFileMode,
		Fsync:           true,
		LogLevel:        slog.LevelInfo,
		ReadTimeout:     60 * time.Second,
		ShutdownTimeout: 30 * time.Second,
		MaxUploads:      64,
		RIE:             "aws-lambda-rie",
	}
	fs := flag.NewFlagSet("localserver", flag.ContinueOnError)
	fs.SetOutput(usage)
	env := map[string]string{} // flag name → variable
	def := func(name, variable string) { env[name] = variable }

	fs.StringVar(&c.Addr, "addr", c.Addr, "listen address (env SPILLWAY_ADDR)")
	def("addr", "SPILLWAY_ADDR")
	fs.StringVar(&c.Directory, "directory", c.Directory, "upload directory, created if missing (env SPILLWAY_DIRECTORY)")
	def("directory", "SPILLWAY_DIRECTORY")
	fs.StringVar(&c.Bucket, "bucket", c.Bucket, "store in this S3 bucket instead of --directory (env SPILLWAY_BUCKET)")
	def("bucket", "SPILLWAY_BUCKET")
	fs.StringVar(&c.Prefix, "prefix", c.Prefix, "S3 key prefix, with --bucket (env SPILLWAY_PREFIX)")
	def("prefix", "SPILLWAY_PREFIX")
	fs.StringVar(&c.SpoolDir, "spool-dir", c.SpoolDir, "directory for spool files (env SPILLWAY_SPOOL_DIR)")
	def("spool-dir", "SPILLWAY_SPOOL_DIR")
	fs.Var(sizeValue{&c.Threshold}, "threshold", "largest body kept in memory, e.g. 2MiB (env SPILLWAY_THRESHOLD)")
	def("threshold", "SPILLWAY_THRESHOLD")
	fs.Var(sizeValue{&c.MaxUploadSize}, "max-upload-size", "largest file accepted, 0 for unlimited (env SPILLWAY_MAX_UPLOAD_SIZE)")
	def("max-upload-size", "SPILLWAY_MAX_UPLOAD_SIZE")
	fs.Var(sizeValue{&c.MemoryBudget}, "memory-budget", "total memory for bodies held at once (env SPILLWAY_MEMORY_BUDGET)")
	def("memory-budget", "SPILLWAY_MEMORY_BUDGET")
	fs.BoolVar(&c.Overwrite, "overwrite", c.Overwrite, "let uploads replace existing files (env SPILLWAY_OVERWRITE)")
	def("overwrite", "SPILLWAY_OVERWRITE")
	fs.Var(modeValue{&c.FileMode}, "file-mode", "permission bits of stored files, in octal (env SPILLWAY_FILE_MODE)")
	def("file-mode", "SPILLWAY_FILE_MODE")
	fs.BoolVar(&c.Fsync, "fsync", c.Fsync, "fsync files and directories before answering 201 (env SPILLWAY_FSYNC)")
	def("fsync", "SPILLWAY_FSYNC")
	fs.BoolVar(&c.CaseSensitiveNames, "case-sensitive-names", c.CaseSensitiveNames, "with --directory, store names that differ only in case side by side instead of refusing the second with 409 (env SPILLWAY_CASE_SENSITIVE_NAMES)")
	def("case-sensitive-names", "SPILLWAY_CASE_SENSITIVE_NAMES")
	fs.TextVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error (env SPILLWAY_LOG_LEVEL)")
	def("log-level", "SPILLWAY_LOG_LEVEL")
	fs.DurationVar(&c.ReadTimeout, "read-timeout", c.ReadTimeout, "abort a body that sends nothing for this long, 0 for never (env SPILLWAY_READ_TIMEOUT)")
	def("read-timeout", "SPILLWAY_READ_TIMEOUT")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "grace period for in-flight uploads on SIGINT/SIGTERM (env SPILLWAY_SHUTDOWN_TIMEOUT)")
	def("shutdown-timeout", "SPILLWAY_SHUTDOWN_TIMEOUT")

	fs.IntVar(&c.MaxUploads, "max-concurrent-uploads", c.MaxUploads, "uploads in progress at once; more get 503 busy, 0 for no cap (env SPILLWAY_MAX_CONCURRENT_UPLOADS)")
	def("max-concurrent-uploads", "SPILLWAY_MAX_CONCURRENT_UPLOADS")
	fs.IntVar(&c.MaxConnections, "max-connections", c.MaxConnections, "connections open at once; more wait to be accepted; 0 for the open-file limit less a reserve for uploads (env SPILLWAY_MAX_CONNECTIONS)")
	def("max-connections", "SPILLWAY_MAX_CONNECTIONS")
	fs.StringVar(&c.Token, "token", c.Token, "require \"Authorization: Bearer TOKEN\" on every route but /healthz (env SPILLWAY_TOKEN)")
	def("token", "SPILLWAY_TOKEN")
	fs.StringVar(&c.UploadSecret, "upload-secret", c.UploadSecret, "HMAC key for the part URLs of multipart uploads to --directory, at least 16 bytes; unset, a random one that dies with the process (env SPILLWAY_UPLOAD_SECRET)")
	def("upload-secret", "SPILLWAY_UPLOAD_SECRET")
	fs.StringVar(&c.CORSOrigins, "cors-origin", c.CORSOrigins, "comma-separated origins allowed by CORS, or *; empty turns CORS off (env SPILLWAY_CORS_ORIGIN)")
	def("cors-origin", "SPILLWAY_CORS_ORIGIN")

	fs.BoolVar(&c.MetricsPublic, "metrics-public", c.MetricsPublic, "serve /metrics without the --token (env SPILLWAY_METRICS_PUBLIC)")
	def("metrics-public", "SPILLWAY_METRICS_PUBLIC")
	fs.StringVar(&c.Function, "function", c.Function, "serve this Lambda function binary (bootstrap) behind a local Function URL emulator instead of the API; needs --bucket (env SPILLWAY_FUNCTION)")
	def("function", "SPILLWAY_FUNCTION")
	fs.StringVar(&c.RIE, "rie", c.RIE, "the aws-lambda-rie binary that runs --function, a path or a name in PATH (env SPILLWAY_RIE)")
	def("rie", "SPILLWAY_RIE")

	// The environment sets defaults first, so that flags override it.
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v := getenv(env[f.Name])
		if v == "" || err != nil {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = fmt.Errorf("invalid value %q for %s (flag --%s): %w", v, env[f.Name], f.Name, serr)
		}
	})
	if err != nil {
		return c, err
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if c.ReadTimeout < 0 || c.ShutdownTimeout < 0 {
		return c, fmt.Errorf("timeouts must not be negative")
	}
	if c.MaxUploads < 0 {
		return c, fmt.Errorf("--max-concurrent-uploads must not be negative")
	}
	if c.MaxConnections < 0 {
		return c, fmt.Errorf("--max-connections (SPILLWAY_MAX_CONNECTIONS) must not be negative")
	}
	if c.UploadSecret != "" && len(c.UploadSecret) < minUploadSecret {
		// A short key could be found by trying signatures offline.
		return c, fmt.Errorf("--upload-secret (SPILLWAY_UPLOAD_SECRET) must be at least %d bytes", minUploadSecret)
	}
	return c, nil
}

// LogValue lists the effective configuration for the start-up log line.
func (c config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("addr", c.Addr),
		slog.String("store", c.storeName()),
		slog.String("spool_dir", c.SpoolDir),
		slog.String("threshold", bytesize.Format(c.Threshold)),
		slog.String("max_upload_size", maxSize(c.MaxUploadSize)),
		slog.String("memory_budget", bytesize.Format(c.MemoryBudget)),
		slog.Bool("overwrite", c.Overwrite),
		slog.String("file_mode", modeValue{&c.FileMode}.String()),
		slog.Bool("fsync", c.Fsync),
		slog.Bool("case_sensitive_names", c.CaseSensitiveNames),
		slog.String("log_level", c.LogLevel.String()),
		slog.Duration("read_timeout", c.ReadTimeout),
		slog.Duration("shutdown_timeout", c.ShutdownTimeout),
		slog.Int("max_concurrent_uploads", c.MaxUploads),
		slog.Int("max_connections", c.MaxConnections),
		slog.Bool("token", c.Token != ""),
		slog.Bool("upload_secret", c.UploadSecret != ""),
		slog.String("cors_origin", c.CORSOrigins),
		slog.String("function", c.Function),
	)
}

// minUploadSecret is the shortest --upload-secret accepted.
const minUploadSecret = 16

func maxSize(n int64) string {
	if n == 0 {
		return "unlimited"
	}
	return bytesize.Format(n)
}

func (c config) storeName() string {
	if c.Bucket != "" {
		return "s3://" + c.Bucket + "/" + c.Prefix
	}
	return c.Directory
}

// checkDirs refuses an upload directory and a spool dir that overlap: the
// same directory, or either one inside the other, after symlinks. Spool
// files there would be listed and served as uploads before they are
// complete, and a stored file named like a spool file could be taken for
// an orphan and swept. Neither directory needs to exist yet, and neither is
// made here.
func checkDirs(directory, spoolDir string) error {
	up, err := resolveDir(directory)
	if err != nil {
		return fmt.Errorf("--directory %s: %w", directory, err)
	}
	sp, err := resolveDir(spoolDir)
	if err != nil {
		return fmt.Errorf("--spool-dir %s: %w", spoolDir, err)
	}
	// The upload directory may sit below the spool dir (a clone under /tmp
	// does, with the defaults): the sweep reads the spool dir alone, never
	// a directory below it, and no name leaves the upload directory.
	const fix = "give the spool its own directory, outside the upload directory (--spool-dir or SPILLWAY_SPOOL_DIR; the default is the system's temp directory)"
	switch {
	case sameDir(up, sp):
		return fmt.Errorf("--directory %s and --spool-dir %s are the same directory: %s", directory, spoolDir, fix)
	case inside(sp, up):
		return fmt.Errorf("--spool-dir %s is inside --directory %s: %s", spoolDir, directory, fix)
	}
	return nil
}

// resolveDir returns dir as an absolute path with the symlinks of the part
// that exists resolved; the rest, still to be made, is joined to it as is.
func resolveDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	rest := ""
	for p := abs; ; p = filepath.Dir(p) {
		resolved, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(resolved, rest), nil
		}
		if !errors.Is(err, fs.ErrNotExist) || p == filepath.Dir(p) {
			return "", err
		}
		rest = filepath.Join(filepath.Base(p), rest)
	}
}

// sameDir reports whether the resolved paths a and b are one directory:
// the same path, or, where both exist, the same inode (a bind mount).
func sameDir(a, b string) bool {
	if a == b {
		return true
	}
	fa, errA := os.Stat(a)
	fb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(fa, fb)
}

// inside reports whether the resolved path child is below parent: by name,
// or because one of child's existing ancestors is parent's inode.
func inside(child, parent string) bool {
	for p := filepath.Dir(child); ; p = filepath.Dir(p) {
		if sameDir(p, parent) {
			return true
		}
		if p == filepath.Dir(p) {
			return false
		}
	}
}
