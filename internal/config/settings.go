package config

import (
	"flag"
	"strings"

	"spillway/internal/bytesize"
	"spillway/spool"
)

// Setting declares one SPILLWAY_* setting.
type Setting struct {
	// Env is the environment variable. The flag and the log key are
	// derived from it (SPILLWAY_SPOOL_DIR: --spool-dir, spool_dir).
	Env string
	// For is the programs that read it.
	For Program
	// Default is its value when neither a flag nor the variable sets it,
	// as a flag would give it; empty means the field's zero value.
	Default string
	// FunctionDefault, when set, is the function's default instead.
	FunctionDefault string
	// Secret settings are logged only as whether they are set.
	Secret bool
	// Usage is the flag's help, one line.
	Usage string
	// Doc is the meaning column of the README's local server table, in
	// Markdown.
	Doc string
	// DocDefault, when set, is the README's default column in place of
	// Default: for a default that depends on the machine, or a zero that
	// means something.
	DocDefault string
	// FunctionDoc, when set, is the meaning column of the README's
	// function table; without it the row refers to the flag.
	FunctionDoc string

	value func(*Config) flag.Value
}

// Flag is the setting's flag name, without dashes in front.
func (s Setting) Flag() string {
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(s.Env, "SPILLWAY_")), "_", "-")
}

// LogKey is the setting's key in the start-up log line.
func (s Setting) LogKey() string {
	return strings.ToLower(strings.TrimPrefix(s.Env, "SPILLWAY_"))
}

func (s Setting) defaultFor(p Program) string {
	if p == Function && s.FunctionDefault != "" {
		return s.FunctionDefault
	}
	return s.Default
}

// Parse parses text as the setting's value, and prints it back as the
// setting prints its values: a way to compare two spellings of one value
// ("2MiB" and "2097152").
func (s Setting) Parse(text string) (string, error) {
	var c Config
	v := s.value(&c)
	if err := v.Set(text); err != nil {
		return "", err
	}
	return v.String(), nil
}

const (
	all       = Server | Function | Emulator
	listeners = Server | Emulator
)

// Settings is the declaration: every setting, in the order of the help
// and the README. Defaults that depend on the machine are read at each
// call.
func Settings() []Setting {
	return []Setting{
		{
			Env: "SPILLWAY_ADDR", For: listeners, Default: "127.0.0.1:8080",
			Usage: "listen address",
			Doc:   "listen address",
			value: func(c *Config) flag.Value { return (*stringValue)(&c.Addr) },
		},
		{
			Env: "SPILLWAY_DIRECTORY", For: Server, Default: "./uploads",
			Usage: "upload directory, created if missing",
			Doc:   "where files are stored; created if missing",
			value: func(c *Config) flag.Value { return (*stringValue)(&c.Directory) },
		},
		{
			Env: "SPILLWAY_BUCKET", For: all,
			Usage:       "store in this S3 bucket instead of --directory",
			Doc:         "store in this S3 bucket instead of `--directory` (credentials and endpoint from the AWS SDK's standard variables, see below)",
			FunctionDoc: "required; without it the cold start fails with a log line saying so",
			value:       func(c *Config) flag.Value { return (*stringValue)(&c.Bucket) },
		},
		{
			Env: "SPILLWAY_PREFIX", For: all,
			Usage:       "S3 key prefix, with --bucket",
			Doc:         "S3 key prefix, with `--bucket`",
			FunctionDoc: "key prefix",
			value:       func(c *Config) flag.Value { return (*stringValue)(&c.Prefix) },
		},
		{
			Env: "SPILLWAY_SPOOL_DIR", For: all, Default: tempDir(), FunctionDefault: "/tmp",
			DocDefault:  "`os.TempDir()`",
			Usage:       "directory for spool files",
			Doc:         "where large bodies are spooled, in 0600 files. With `--directory`, the spool dir must not be the upload directory nor inside it (symlinks resolved; the upload directory may sit below the spool dir): the server refuses to start otherwise, so `--directory /tmp` needs a `--spool-dir` elsewhere",
			FunctionDoc: "swept of orphaned spool files at each cold start, since `/tmp` outlives invocations",
			value:       func(c *Config) flag.Value { return (*stringValue)(&c.SpoolDir) },
		},
		{
			Env: "SPILLWAY_THRESHOLD", For: all, Default: bytesize.Format(spool.DefaultThreshold),
			Usage: "largest body kept in memory, e.g. 2MiB",
			Doc:   "a body of at most this many bytes stays in memory; one byte more goes to disk",
			value: func(c *Config) flag.Value { return (*sizeValue)(&c.Threshold) },
		},
		{
			Env: "SPILLWAY_MAX_UPLOAD_SIZE", For: all, Default: "0",
			DocDefault: "`0` (unlimited)",
			Usage:      "largest file accepted, 0 for unlimited",
			Doc:        "the largest file accepted (for multipart, each file part)",
			value:      func(c *Config) flag.Value { return (*limitValue)(&c.MaxUploadSize) },
		},
		{
			Env: "SPILLWAY_MEMORY_BUDGET", For: all, Default: bytesize.Format(spool.DefaultMemoryBudget),
			Usage: "total memory for bodies held at once and the uploads' working buffers",
			Doc:   "total memory for all bodies held at once and for the uploads' large working buffers (at most half of it); past it, even small bodies go to disk, and past half of it each upload works with one small buffer outside it",
			value: func(c *Config) flag.Value { return (*sizeValue)(&c.MemoryBudget) },
		},
		{
			Env: "SPILLWAY_OVERWRITE", For: Server, Default: "false",
			Usage: "let uploads replace existing files",
			Doc:   "let an upload replace an existing file",
			value: func(c *Config) flag.Value { return (*boolValue)(&c.Overwrite) },
		},
		{
			Env: "SPILLWAY_FILE_MODE", For: Server, Default: "0644",
			Usage: "permission bits of stored files, in octal",
			Doc:   "permission bits of files stored in `--directory`, in octal, whatever the umask; bits of `0777` only, and the owner must be able to read. Set once the file has left the spool dir; spool files and the parts of multipart uploads stay 0600",
			value: func(c *Config) flag.Value { return (*modeValue)(&c.FileMode) },
		},
		{
			Env: "SPILLWAY_CASE_SENSITIVE_NAMES", For: Server, Default: "false",
			Usage: "with --directory, store names that differ only in case side by side instead of refusing the second with 409",
			Doc:   "with `--directory`, store names that differ only in case (`readme.txt`, `Readme.TXT`) side by side; off, the second is refused with 409 `exists`, as it would collide on Windows and macOS ([names](#api))",
			value: func(c *Config) flag.Value { return (*boolValue)(&c.CaseSensitiveNames) },
		},
		{
			Env: "SPILLWAY_FSYNC", For: Server, Default: "true",
			Usage: "fsync files and directories before answering 201",
			Doc:   "fsync each file and its directories before answering 201; turn off only for benchmarks and throwaway work",
			value: func(c *Config) flag.Value { return (*boolValue)(&c.Fsync) },
		},
		{
			Env: "SPILLWAY_RETENTION", For: all, Default: "0",
			DocDefault:  "`0` (keep forever)",
			Usage:       "remove stored files this long after they were stored, in days (30d) or as a Go duration (720h); 0 keeps them",
			Doc:         "how long a stored file is kept, counted from its modification time: `30d`, or a Go duration such as `720h`; `0` keeps files forever. With `--directory`, a sweep removes older files ([retention](#retention)); with `--bucket`, S3 does, by a lifecycle rule the bucket must carry. `GET /files` gives each file's `expires`",
			FunctionDoc: "as `--retention`; S3 removes the files, by the lifecycle rule that `template.yaml` sets from the same parameter ([retention](#retention))",
			value:       func(c *Config) flag.Value { return (*retentionValue)(&c.Retention) },
		},
		{
			Env: "SPILLWAY_LOG_LEVEL", For: listeners, Default: "info",
			Usage: "debug, info, warn or error",
			Doc:   "`debug`, `info`, `warn` or `error`",
			value: func(c *Config) flag.Value { return (*levelValue)(&c.LogLevel) },
		},
		{
			Env: "SPILLWAY_READ_TIMEOUT", For: listeners, Default: "60s",
			Usage: "abort a body that sends nothing for this long, 0 for never",
			Doc:   "a body that sends no byte for this long is aborted with 408",
			value: func(c *Config) flag.Value { return (*durationValue)(&c.ReadTimeout) },
		},
		{
			Env: "SPILLWAY_SHUTDOWN_TIMEOUT", For: listeners, Default: "30s",
			Usage: "grace period for in-flight uploads on SIGINT/SIGTERM",
			Doc:   "on SIGINT/SIGTERM, how long in-flight uploads may take before they are aborted",
			value: func(c *Config) flag.Value { return (*durationValue)(&c.ShutdownTimeout) },
		},
		{
			Env: "SPILLWAY_MAX_CONCURRENT_UPLOADS", For: Server, Default: "64",
			Usage: "uploads in progress at once; more get 503 busy, 0 for no cap",
			Doc:   "uploads in progress at once; past it, `503 busy` with `Retry-After`, before the body is read; `0` for no cap",
			value: func(c *Config) flag.Value { return (*intValue)(&c.MaxUploads) },
		},
		{
			Env: "SPILLWAY_MAX_CONCURRENT_LISTINGS", For: Server, Default: "4",
			Usage: "GET /files pages made at once; more get 503 busy, 0 for no cap",
			Doc:   "`GET /files` pages being made at once; past it, `503 busy` with `Retry-After`; `0` for no cap. Each page holds up to a page of entries per folder it reads and up to 1 MiB of JSON, outside `--memory-budget`",
			value: func(c *Config) flag.Value { return (*intValue)(&c.MaxListings) },
		},
		{
			Env: "SPILLWAY_MAX_OPEN_UPLOADS", For: Server, Default: "1000",
			Usage: "with --directory, multipart and tus uploads open at once; more get 429, 0 for no cap",
			Doc:   "with `--directory`, uploads open at once, multipart and tus (created and not yet completed, aborted, terminated or swept); past it, creating one is `429 too_many_uploads`, after a sweep of abandoned ones; `0` for no cap. Each open upload holds its declared size on disk from its creation (a tus upload of deferred length, from the `PATCH` that declares it)",
			value: func(c *Config) flag.Value { return (*intValue)(&c.MaxOpenUploads) },
		},
		{
			Env: "SPILLWAY_MAX_CONNECTIONS", For: listeners, Default: "0",
			DocDefault: "`0` (derived)",
			Usage:      "connections open at once; more wait to be accepted; 0 for the open-file limit less a reserve for uploads",
			Doc:        "connections open at once. At the cap the server stops accepting: new connections wait in the kernel's backlog, not refused, and idle keep-alive connections are closed (keep-alive stays off until under half the cap). `0` derives it from the open-file limit, less a reserve for the spool and store files of uploads (64, and 8 per `--max-concurrent-uploads`; at most half the limit)",
			value:      func(c *Config) flag.Value { return (*intValue)(&c.MaxConnections) },
		},
		{
			Env: "SPILLWAY_TOKEN", For: all, Secret: true,
			Usage:       "require \"Authorization: Bearer TOKEN\" on every route but /healthz",
			Doc:         "a shared secret: every route but `/healthz` then needs `Authorization: Bearer TOKEN`, checked before the body is read. The server warns at start when it listens beyond loopback without one.",
			FunctionDoc: "optional bearer token, as `--token`; use it with auth type `NONE`, since with `AWS_IAM` the `Authorization` header carries the SigV4 signature",
			value:       func(c *Config) flag.Value { return (*stringValue)(&c.Token) },
		},
		{
			Env: "SPILLWAY_JWT_JWKS_URL", For: all,
			DocDefault: "none (no JWTs)",
			Usage:      "accept bearer JWTs (RS256, ES256) signed by the keys at this JWKS URL; needs --jwt-issuer and --jwt-audience",
			Doc:        "accept [per-user JWTs](#per-user-auth-with-jwts) signed by the keys published at this JWKS URL (RS256, ES256), besides `--token`; `https` (or `http` on loopback); needs `--jwt-issuer` and `--jwt-audience`",
			value:      func(c *Config) flag.Value { return (*stringValue)(&c.JWKSURL) },
		},
		{
			Env: "SPILLWAY_JWT_ISSUER", For: all,
			Usage: "the iss every JWT must carry",
			Doc:   "the `iss` every JWT must carry, such as `https://cognito-idp.REGION.amazonaws.com/POOL_ID`",
			value: func(c *Config) flag.Value { return (*stringValue)(&c.JWTIssuer) },
		},
		{
			Env: "SPILLWAY_JWT_AUDIENCE", For: all,
			Usage: "the aud every JWT must carry",
			Doc:   "the `aud` every JWT must carry (Cognito: the app client ID of an ID token)",
			value: func(c *Config) flag.Value { return (*stringValue)(&c.JWTAudience) },
		},
		{
			Env: "SPILLWAY_USER_PREFIX_CLAIM", For: all,
			DocDefault: "none (one shared space)",
			Usage:      "the JWT claim whose value is the folder every name of its user lives under, such as sub",
			Doc:        "the JWT claim (such as `sub`) whose value is the folder each user's names live under, on every route; a value that is not a valid one-segment name is refused with `403 invalid_space`",
			value:      func(c *Config) flag.Value { return (*stringValue)(&c.UserPrefixClaim) },
		},
		{
			Env: "SPILLWAY_USER_QUOTA", For: all, Default: "0",
			DocDefault: "`0` (none)",
			Usage:      "bytes each JWT user may store in their folder, 0 for no quota; needs --user-prefix-claim",
			Doc:        "the bytes each JWT user may store in their folder; an upload that would pass it is refused before its body with `413 quota_exceeded`; `0` for none; needs `--user-prefix-claim`",
			value:      func(c *Config) flag.Value { return (*sizeValue)(&c.UserQuota) },
		},
		{
			Env: "SPILLWAY_UPLOAD_SECRET", For: all, Secret: true,
			DocDefault:  "random at each start",
			FunctionDoc: "the HMAC key (at least 16 bytes) that signs the form URLs of the Uppy routes when JWTs are on without `SPILLWAY_TOKEN`: set it so that every instance takes the URLs another signed",
			Usage:       "HMAC key for the part URLs of multipart uploads to --directory (and, with JWTs and no --token, Uppy's form URLs), at least 16 bytes; unset, a random one that dies with the process",
			Doc:         "the HMAC-SHA256 key (at least 16 bytes) that signs the part URLs of [multipart uploads](docs/MULTIPART.md) to `--directory`. Unset, a random key is made at start and logged as such: part URLs then stop working when the server restarts, though the uploads and their parts stay (resume fetches fresh URLs). With JWTs and no `--token` it also signs the form URLs of the Uppy routes (`/s3/params`); otherwise it is not used with `--bucket`, whose part URLs S3 presigns.",
			value:       func(c *Config) flag.Value { return (*stringValue)(&c.UploadSecret) },
		},
		{
			Env: "SPILLWAY_METRICS_PUBLIC", For: Server, Default: "false",
			Usage: "serve /metrics without the --token",
			Doc:   "serve `GET /metrics` without the `--token`; by default it follows the token rule like every other route but `/healthz` and `/`",
			value: func(c *Config) flag.Value { return (*boolValue)(&c.MetricsPublic) },
		},
		{
			Env: "SPILLWAY_HOOK_URL", For: all,
			Usage: "POST signed pre-create and post-finish events to this http(s) URL; needs --hook-secret",
			Doc:   "POST [hook](#hooks) events to this `http` or `https` URL: `pre-create` before any byte of an upload is stored (a non-2xx answer refuses it with 403), `post-finish` once a file is published; needs `--hook-secret`",
			value: func(c *Config) flag.Value { return (*hookURLValue)(&c.HookURL) },
		},
		{
			Env: "SPILLWAY_HOOK_SECRET", For: all, Secret: true,
			Usage: "HMAC-SHA256 key of the hook events' Spillway-Signature header, at least 16 bytes",
			Doc:   "the HMAC-SHA256 key (at least 16 bytes) that signs each hook event's `Spillway-Signature` header ([hooks](#hooks))",
			value: func(c *Config) flag.Value { return (*stringValue)(&c.HookSecret) },
		},
		{
			Env: "SPILLWAY_ALLOW_TYPES", For: all,
			DocDefault: "none (every type)",
			Usage:      "comma-separated content types accepted, judged by the body's first bytes, e.g. image/*,application/pdf",
			Doc:        "comma-separated types (`type/subtype` or `type/*`) a file must be of, judged by sniffing its first bytes, not its name or Content-Type; any other is refused with 415 `type_not_allowed` and nothing is stored ([content rules](#content-rules))",
			value:      func(c *Config) flag.Value { return (*typesValue)(&c.AllowTypes) },
		},
		{
			Env: "SPILLWAY_CORS_ORIGIN", For: listeners,
			DocDefault: "none (CORS off)",
			Usage:      "comma-separated origins allowed by CORS, or *; empty turns CORS off",
			Doc:        "comma-separated origins, or `*`, allowed to call the API from a browser; methods, headers and max-age match the Function URL's CORS in `template.yaml`",
			value:      func(c *Config) flag.Value { return (*stringValue)(&c.CORSOrigins) },
		},
		{
			Env: "SPILLWAY_FUNCTION", For: listeners,
			Usage: "serve this Lambda function binary (bootstrap) behind a local Function URL emulator instead of the API; needs --bucket",
			Doc:   "serve this Lambda function binary (`bootstrap`) behind a [local Function URL emulator](#local-function-url-emulator-no-docker) instead of the API; needs `--bucket`",
			value: func(c *Config) flag.Value { return (*stringValue)(&c.Function) },
		},
		{
			Env: "SPILLWAY_RIE", For: listeners, Default: "aws-lambda-rie",
			DocDefault: "`aws-lambda-rie` (in `PATH`)",
			Usage:      "the aws-lambda-rie binary that runs --function, a path or a name in PATH",
			Doc:        "the Runtime Interface Emulator that runs `--function`",
			value:      func(c *Config) flag.Value { return (*stringValue)(&c.RIE) },
		},
	}
}
