// Package config declares every SPILLWAY_* setting once, in Settings:
// its variable, default, parser, help text and the programs that read it.
// The local server's flags, the environment each program reads, the
// environment the Function URL emulator hands the function, the start-up
// log line and the README's settings tables are all derived from that
// declaration. Adding a setting means one entry in Settings, one field in
// Config, and the code that uses it.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"spillway/internal/sniff"
)

// Program is a set of Spillway's programs, those that read a setting.
type Program uint8

const (
	// Server is the local server, localserver.
	Server Program = 1 << iota
	// Function is the Lambda function, functions/upload: it reads its
	// settings from the environment only.
	Function
	// Emulator is the local Function URL emulator, cmd/funcurl.
	Emulator
)

// String is the program's command name.
func (p Program) String() string {
	switch p {
	case Server:
		return "localserver"
	case Function:
		return "bootstrap"
	case Emulator:
		return "funcurl"
	}
	return fmt.Sprintf("Program(%d)", uint8(p))
}

// Config is every setting's value. A program reads only its own settings;
// the others keep their defaults.
type Config struct {
	Addr               string
	Directory          string
	Bucket             string
	Prefix             string
	SpoolDir           string
	Threshold          int64
	MaxUploadSize      int64
	MemoryBudget       int64
	Overwrite          bool
	FileMode           fs.FileMode
	Fsync              bool
	CaseSensitiveNames bool
	LogLevel           slog.Level
	ReadTimeout        time.Duration
	ShutdownTimeout    time.Duration
	Retention          time.Duration // 0: keep forever
	MaxUploads         int
	MaxListings        int
	MaxOpenUploads     int
	MaxConnections     int // 0: derived from the open-file limit
	Token              string
	UploadSecret       string
	HookURL            string
	HookSecret         string
	AllowTypes         sniff.Rules
	JWKSURL            string
	JWTIssuer          string
	JWTAudience        string
	UserPrefixClaim    string
	UserQuota          int64
	CORSOrigins        string
	MetricsPublic      bool
	Function           string
	RIE                string

	program Program // the program that parsed it, for LogValue
}

// MinUploadSecret is the shortest upload secret accepted: a shorter key
// could be found by trying signatures offline.
const MinUploadSecret = 16

// Parse reads the settings of program p. Each falls back to its SPILLWAY_*
// variable (read with getenv), and then to its default. The local server
// and the emulator also read flags from args, which win over the
// environment; the function reads the environment alone. Help and flag
// errors go to usage.
func Parse(p Program, args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	c := Config{program: p}
	settings := Settings()
	// Every default is set, so a field of another program's setting
	// holds what that program would use (the emulator derives its
	// connection cap from the upload cap, say).
	for _, s := range settings {
		if d := s.defaultFor(p); d != "" {
			if err := s.value(&c).Set(d); err != nil {
				panic(fmt.Sprintf("config: the default %q of %s: %v", d, s.Env, err))
			}
		}
	}
	fs := flag.NewFlagSet(p.String(), flag.ContinueOnError)
	fs.SetOutput(usage)
	// The flag package names only its own value types in the help.
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage of %s:\n", fs.Name())
		printDefaults(fs)
	}
	env := map[string]string{} // flag name → variable
	for _, s := range settings {
		if s.For&p == 0 {
			continue
		}
		fs.Var(s.value(&c), s.Flag(), s.Usage+" (env "+s.Env+")")
		env[s.Flag()] = s.Env
	}
	// The environment sets defaults first, so that flags override it.
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v := getenv(env[f.Name])
		if v == "" || err != nil {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			if p == Function {
				err = fmt.Errorf("invalid value %q for %s: %w", v, env[f.Name], serr)
			} else {
				err = fmt.Errorf("invalid value %q for %s (flag --%s): %w", v, env[f.Name], f.Name, serr)
			}
		}
	})
	if err != nil {
		return c, err
	}
	if p != Function {
		if err := fs.Parse(args); err != nil {
			return c, err
		}
		if fs.NArg() > 0 {
			return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
		}
	}
	return c, c.validate()
}

func (c Config) validate() error {
	switch {
	case c.program == Function && c.Bucket == "":
		return errors.New("SPILLWAY_BUCKET is not set: the function needs a bucket to store uploads in")
	case c.ReadTimeout < 0 || c.ShutdownTimeout < 0:
		return fmt.Errorf("timeouts must not be negative")
	case c.MaxUploads < 0:
		return fmt.Errorf("--max-concurrent-uploads must not be negative")
	case c.MaxListings < 0:
		return fmt.Errorf("--max-concurrent-listings (SPILLWAY_MAX_CONCURRENT_LISTINGS) must not be negative")
	case c.MaxConnections < 0:
		return fmt.Errorf("--max-connections (SPILLWAY_MAX_CONNECTIONS) must not be negative")
	case c.JWKSURL != "" && (c.JWTIssuer == "" || c.JWTAudience == ""):
		return errors.New("--jwt-jwks-url (SPILLWAY_JWT_JWKS_URL) needs --jwt-issuer and --jwt-audience: without them a token of any issuer or app signed by those keys would pass")
	case c.JWKSURL != "" && !secureJWKSURL(c.JWKSURL):
		return errors.New("--jwt-jwks-url (SPILLWAY_JWT_JWKS_URL) must be an https URL (http only on loopback): whoever can change the keys in transit can sign any token")
	case c.JWKSURL == "" && (c.JWTIssuer != "" || c.JWTAudience != "" || c.UserPrefixClaim != ""):
		return errors.New("--jwt-issuer, --jwt-audience and --user-prefix-claim need --jwt-jwks-url (SPILLWAY_JWT_JWKS_URL)")
	case c.UserQuota < 0 || c.UserQuota > 0 && c.UserPrefixClaim == "":
		return errors.New("--user-quota (SPILLWAY_USER_QUOTA) needs --user-prefix-claim: a quota is counted per user folder")
	case c.UploadSecret != "" && len(c.UploadSecret) < MinUploadSecret:
		return fmt.Errorf("--upload-secret (SPILLWAY_UPLOAD_SECRET) must be at least %d bytes", MinUploadSecret)
	case c.HookURL != "" && len(c.HookSecret) < MinUploadSecret:
		// An unsigned event cannot be told from anyone's POST.
		return fmt.Errorf("--hook-url (SPILLWAY_HOOK_URL) needs a --hook-secret (SPILLWAY_HOOK_SECRET) of at least %d bytes", MinUploadSecret)
	}
	return nil
}

// LogValue lists the settings of the program that parsed c, for its
// start-up log line; secrets say only whether they are set. With the
// store's address first, as "store".
func (c Config) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, 24)
	if c.program&(Server|Emulator) != 0 {
		attrs = append(attrs, slog.String("store", c.StoreName()))
	}
	for _, s := range Settings() {
		if s.For&c.program == 0 {
			continue
		}
		if s.Secret {
			attrs = append(attrs, slog.Bool(s.LogKey(), s.value(&c).String() != ""))
			continue
		}
		attrs = append(attrs, slog.String(s.LogKey(), s.value(&c).String()))
	}
	return slog.GroupValue(attrs...)
}

// StoreName is where files are stored: the S3 bucket and prefix, or the
// directory.
func (c Config) StoreName() string {
	if c.Bucket != "" {
		return "s3://" + c.Bucket + "/" + c.Prefix
	}
	return c.Directory
}

// FunctionEnv is environ with the function's settings taken from c, so
// that the emulator's flags reach the function as they reach the
// emulator. A setting that is empty in c is removed from environ.
func FunctionEnv(environ []string, c Config) []string {
	set := map[string]string{}
	for _, s := range Settings() {
		if s.For&Function == 0 {
			continue
		}
		v := s.value(&c)
		if p, ok := v.(interface{ plain() string }); ok {
			set[s.Env] = p.plain()
		} else {
			set[s.Env] = v.String()
		}
	}
	// The emulator's own default timeout is 300 s; the template gives the
	// deployed function 900, which completing a multi-GiB upload needs.
	if !slices.ContainsFunc(environ, func(kv string) bool { return strings.HasPrefix(kv, "AWS_LAMBDA_FUNCTION_TIMEOUT=") }) {
		set["AWS_LAMBDA_FUNCTION_TIMEOUT"] = "900"
	}
	env := make([]string, 0, len(environ)+len(set))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if _, ours := set[name]; !ours {
			env = append(env, kv)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(set)) {
		if v := set[name]; v != "" {
			env = append(env, name+"="+v)
		}
	}
	return env
}

// tempDir is the spool dir's default outside Lambda, read when a program
// parses its settings so that it follows TMPDIR.
func tempDir() string { return os.TempDir() }

// secureJWKSURL reports whether keys fetched from u can be trusted: over
// TLS, or from this machine.
func secureJWKSURL(u string) bool {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return false
	}
	switch p.Scheme {
	case "https":
		return true
	case "http":
		host := p.Hostname()
		ip := net.ParseIP(host)
		return host == "localhost" || ip != nil && ip.IsLoopback()
	}
	return false
}
