package config

import (
	"flag"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/spool"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func parseConfig(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	return Parse(Server, args, getenv, usage)
}

func loadConfig(getenv func(string) string) (Config, error) {
	return Parse(Function, nil, getenv, io.Discard)
}

func TestParseConfigDefaults(t *testing.T) {
	c, err := parseConfig(nil, env(nil), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:8080", c.Addr)
	assert.Equal(t, "./uploads", c.Directory)
	assert.Equal(t, int64(2<<20), c.Threshold)
	assert.Equal(t, int64(64<<20), c.MemoryBudget)
	assert.Zero(t, c.MaxUploadSize)
	assert.False(t, c.Overwrite)
	assert.Equal(t, os.FileMode(0o644), c.FileMode)
	assert.True(t, c.Fsync)
	assert.False(t, c.CaseSensitiveNames, "names that differ only in case are refused by default")
	assert.Equal(t, slog.LevelInfo, c.LogLevel)
	assert.Equal(t, 60*time.Second, c.ReadTimeout)
	assert.Equal(t, 64, c.MaxUploads)
	assert.Zero(t, c.MaxConnections, "derived from the open-file limit")
	assert.Empty(t, c.Token)
	assert.Empty(t, c.UploadSecret)
}

func TestParseConfigEnvAndFlags(t *testing.T) {
	vars := env(map[string]string{
		"SPILLWAY_ADDR":                   "127.0.0.1:9000",
		"SPILLWAY_THRESHOLD":              "512k",
		"SPILLWAY_MAX_UPLOAD_SIZE":        "10GB",
		"SPILLWAY_MEMORY_BUDGET":          "16MiB",
		"SPILLWAY_OVERWRITE":              "true",
		"SPILLWAY_FSYNC":                  "false",
		"SPILLWAY_LOG_LEVEL":              "debug",
		"SPILLWAY_DIRECTORY":              "/srv/up",
		"SPILLWAY_SPOOL_DIR":              "/var/tmp",
		"SPILLWAY_READ_TIMEOUT":           "5s",
		"SPILLWAY_TOKEN":                  "t0k",
		"SPILLWAY_CORS_ORIGIN":            "*",
		"SPILLWAY_MAX_CONCURRENT_UPLOADS": "8",
		"SPILLWAY_UPLOAD_SECRET":          "from-the-environment",
		"SPILLWAY_FILE_MODE":              "0640",
		"SPILLWAY_CASE_SENSITIVE_NAMES":   "true",
		"SPILLWAY_MAX_CONNECTIONS":        "300",
	})
	c, err := parseConfig([]string{"--threshold", "1MiB", "--overwrite=false", "--addr=[::1]:0"}, vars, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "[::1]:0", c.Addr, "a flag overrides its variable")
	assert.Equal(t, int64(1<<20), c.Threshold)
	assert.False(t, c.Overwrite)
	assert.Equal(t, int64(10e9), c.MaxUploadSize)
	assert.Equal(t, int64(16<<20), c.MemoryBudget)
	assert.False(t, c.Fsync)
	assert.True(t, c.CaseSensitiveNames)
	assert.Equal(t, slog.LevelDebug, c.LogLevel)
	assert.Equal(t, "/srv/up", c.Directory)
	assert.Equal(t, "/var/tmp", c.SpoolDir)
	assert.Equal(t, 5*time.Second, c.ReadTimeout)
	assert.Equal(t, "t0k", c.Token)
	assert.Equal(t, "*", c.CORSOrigins)
	assert.Equal(t, 8, c.MaxUploads)
	assert.Equal(t, "from-the-environment", c.UploadSecret)
	assert.Equal(t, os.FileMode(0o640), c.FileMode)
	assert.Equal(t, 300, c.MaxConnections)

	c, err = parseConfig([]string{"--upload-secret", "from-the-command-line"}, vars, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "from-the-command-line", c.UploadSecret, "a flag overrides its variable")
}

func TestParseConfigErrorsNameTheSetting(t *testing.T) {
	_, err := parseConfig([]string{"--threshold", "2XB"}, env(nil), io.Discard)
	require.ErrorContains(t, err, "threshold")
	_, err = parseConfig(nil, env(map[string]string{"SPILLWAY_MEMORY_BUDGET": "lots"}), io.Discard)
	require.ErrorContains(t, err, "SPILLWAY_MEMORY_BUDGET")
	require.ErrorContains(t, err, "--memory-budget")
	_, err = parseConfig(nil, env(map[string]string{"SPILLWAY_FSYNC": "maybe"}), io.Discard)
	require.ErrorContains(t, err, "SPILLWAY_FSYNC")
	_, err = parseConfig([]string{"stray"}, env(nil), io.Discard)
	require.Error(t, err)
	for _, mode := range []string{"rw-r--r--", "0o1644", "4755", "0888", "-1", "0244", "0077", ""} {
		_, err = parseConfig([]string{"--file-mode=" + mode}, env(nil), io.Discard)
		require.ErrorContains(t, err, "file-mode", "%q", mode)
	}
	_, err = parseConfig(nil, env(map[string]string{"SPILLWAY_FILE_MODE": "0200"}), io.Discard)
	require.ErrorContains(t, err, "SPILLWAY_FILE_MODE")
	require.ErrorContains(t, err, "the owner must be able to read")
	for mode, want := range map[string]os.FileMode{"0600": 0o600, "640": 0o640, "0o755": 0o755, "0400": 0o400} {
		c, err := parseConfig([]string{"--file-mode", mode}, env(nil), io.Discard)
		require.NoError(t, err, mode)
		assert.Equal(t, want, c.FileMode, mode)
	}
	_, err = parseConfig(nil, env(map[string]string{"SPILLWAY_UPLOAD_SECRET": "short"}), io.Discard)
	require.ErrorContains(t, err, "SPILLWAY_UPLOAD_SECRET")
	require.ErrorContains(t, err, "--upload-secret")
	_, err = parseConfig(nil, env(map[string]string{"SPILLWAY_MAX_CONNECTIONS": "-1"}), io.Discard)
	require.ErrorContains(t, err, "SPILLWAY_MAX_CONNECTIONS")
	require.ErrorContains(t, err, "--max-connections")
}

func TestParseConfigFunction(t *testing.T) {
	c, err := parseConfig(nil, env(nil), io.Discard)
	require.NoError(t, err)
	assert.Empty(t, c.Function)
	assert.Equal(t, "aws-lambda-rie", c.RIE, "looked up in PATH")

	vars := env(map[string]string{"SPILLWAY_FUNCTION": "bin/bootstrap", "SPILLWAY_RIE": "/opt/rie"})
	c, err = parseConfig(nil, vars, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "bin/bootstrap", c.Function)
	assert.Equal(t, "/opt/rie", c.RIE)

	c, err = parseConfig([]string{"--function", "other/bootstrap", "--rie", "bin/aws-lambda-rie"}, vars, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "other/bootstrap", c.Function, "a flag overrides its variable")
	assert.Equal(t, "bin/aws-lambda-rie", c.RIE)
}

func TestFunctionEnvCarriesTheServersSettings(t *testing.T) {
	cfg := Config{Bucket: "b", SpoolDir: "/spool", Threshold: 1 << 20, MemoryBudget: 8 << 20}
	got := FunctionEnv([]string{"PATH=/bin", "AWS_REGION=us-east-1", "SPILLWAY_BUCKET=stale", "SPILLWAY_TOKEN=stale", "SPILLWAY_ADDR=x"}, cfg)
	assert.ElementsMatch(t, []string{
		"PATH=/bin", "AWS_REGION=us-east-1", "SPILLWAY_ADDR=x",
		"SPILLWAY_BUCKET=b", "SPILLWAY_SPOOL_DIR=/spool", "SPILLWAY_THRESHOLD=1048576",
		"SPILLWAY_MAX_UPLOAD_SIZE=0", "SPILLWAY_MEMORY_BUDGET=8388608", "SPILLWAY_USER_QUOTA=0",
		"AWS_LAMBDA_FUNCTION_TIMEOUT=900",
	}, got, "the server's settings win, and an unset token is unset")

	got = FunctionEnv([]string{"AWS_LAMBDA_FUNCTION_TIMEOUT=30"}, cfg)
	assert.Contains(t, got, "AWS_LAMBDA_FUNCTION_TIMEOUT=30", "a timeout the user set is kept")
	assert.NotContains(t, got, "AWS_LAMBDA_FUNCTION_TIMEOUT=900")
}

func TestLoadConfig(t *testing.T) {
	_, err := loadConfig(func(string) string { return "" })
	require.ErrorContains(t, err, "SPILLWAY_BUCKET")

	vars := map[string]string{"SPILLWAY_BUCKET": "b", "SPILLWAY_THRESHOLD": "1MiB", "SPILLWAY_MAX_UPLOAD_SIZE": "10MB"}
	c, err := loadConfig(func(k string) string { return vars[k] })
	require.NoError(t, err)
	assert.Equal(t, "/tmp", c.SpoolDir)
	assert.Equal(t, int64(1<<20), c.Threshold)
	assert.Equal(t, int64(10e6), c.MaxUploadSize)
	assert.Equal(t, int64(spool.DefaultMemoryBudget), c.MemoryBudget)

	vars["SPILLWAY_MEMORY_BUDGET"] = "plenty"
	_, err = loadConfig(func(k string) string { return vars[k] })
	require.ErrorContains(t, err, "SPILLWAY_MEMORY_BUDGET")
}

func TestParseListingCap(t *testing.T) {
	c, err := parseConfig(nil, env(map[string]string{"SPILLWAY_MAX_CONCURRENT_LISTINGS": "2"}), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 2, c.MaxListings)
	c, err = parseConfig([]string{"--max-concurrent-listings", "0"}, env(map[string]string{"SPILLWAY_MAX_CONCURRENT_LISTINGS": "2"}), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 0, c.MaxListings, "a flag overrides its variable")
	_, err = parseConfig([]string{"--max-concurrent-listings=-1"}, env(nil), io.Discard)
	require.ErrorContains(t, err, "--max-concurrent-listings")
}

// The emulator reads only its own settings, and the function none from
// flags: a flag of the local server alone is refused by the emulator.
func TestProgramsReadTheirOwnSettings(t *testing.T) {
	_, err := Parse(Emulator, []string{"--overwrite"}, env(nil), io.Discard)
	require.ErrorContains(t, err, "overwrite")
	c, err := Parse(Emulator, []string{"--function", "bin/bootstrap", "--bucket", "b", "--addr", "127.0.0.1:0"}, env(nil), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "bin/bootstrap", c.Function)
	assert.Equal(t, 64, c.MaxUploads, "defaults are set for every setting")

	c, err = Parse(Function, []string{"--bucket", "ignored"}, env(map[string]string{"SPILLWAY_BUCKET": "b", "SPILLWAY_ADDR": "x"}), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "b", c.Bucket)
	assert.Equal(t, "127.0.0.1:8080", c.Addr, "not the function's setting")
	_, err = Parse(Function, nil, env(map[string]string{"SPILLWAY_BUCKET": "b", "SPILLWAY_THRESHOLD": "big"}), io.Discard)
	require.ErrorContains(t, err, "SPILLWAY_THRESHOLD")
	assert.NotContains(t, err.Error(), "--threshold", "the function has no flags")
}

// The start-up line lists the program's settings, secrets as whether they
// are set.
func TestLogValue(t *testing.T) {
	c, err := parseConfig([]string{"--token", "s3cret", "--upload-secret", "0123456789abcdef"}, env(nil), io.Discard)
	require.NoError(t, err)
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "config", c)
	line := b.String()
	for _, want := range []string{"config.store=./uploads", "config.threshold=2MiB", "config.max_upload_size=unlimited",
		"config.file_mode=0644", "config.log_level=INFO", "config.read_timeout=1m0s", "config.token=true",
		"config.upload_secret=true", "config.max_concurrent_listings=4"} {
		assert.Contains(t, line, want)
	}
	assert.NotContains(t, line, "s3cret")
	assert.NotContains(t, line, "0123456789abcdef")

	f, err := loadConfig(env(map[string]string{"SPILLWAY_BUCKET": "b"}))
	require.NoError(t, err)
	b.Reset()
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "config", f)
	assert.Contains(t, b.String(), "config.bucket=b")
	assert.NotContains(t, b.String(), "config.addr", "only the function's settings")
}

// -help reads as the flag package's own: each flag with its type and
// environment variable, and defaults other than the zero value.
func TestHelp(t *testing.T) {
	var b strings.Builder
	_, err := parseConfig([]string{"-help"}, env(nil), &b)
	require.ErrorIs(t, err, flag.ErrHelp)
	help := b.String()
	for _, want := range []string{
		"Usage of localserver:\n",
		"  -addr string\n    \tlisten address (env SPILLWAY_ADDR) (default \"127.0.0.1:8080\")\n",
		"  -threshold size\n", "(env SPILLWAY_THRESHOLD) (default 2MiB)\n",
		"  -overwrite\n", "  -read-timeout duration\n", "  -file-mode mode\n", "(default 0644)\n",
		"  -max-concurrent-uploads int\n", "(default 64)\n",
	} {
		assert.Contains(t, help, want)
	}
	assert.NotContains(t, help, "(default false)")
	assert.NotContains(t, help, "(default 0)")
	assert.Equal(t, len(Settings()), strings.Count(help, "\n  -"))
}

func TestParseRetention(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"":     0,
		"0":    0,
		"30d":  30 * 24 * time.Hour,
		"1d":   24 * time.Hour,
		"720h": 720 * time.Hour,
		"90m":  90 * time.Minute,
	} {
		c, err := parseConfig([]string{"--retention", in}, env(nil), io.Discard)
		require.NoError(t, err, in)
		assert.Equal(t, want, c.Retention, in)
	}
	c, err := loadConfig(env(map[string]string{"SPILLWAY_BUCKET": "b", "SPILLWAY_RETENTION": "7d"}))
	require.NoError(t, err)
	assert.Equal(t, 7*24*time.Hour, c.Retention, "the function reads it too")
	assert.Contains(t, FunctionEnv(nil, c), "SPILLWAY_RETENTION=7d", "and the emulator hands it on in days")
	for _, in := range []string{"-1d", "-5m", "1.5d", "d", "30 days", "1w"} {
		_, err := parseConfig([]string{"--retention", in}, env(nil), io.Discard)
		require.ErrorContains(t, err, "retention", "%q", in)
	}
}

func TestJWTSettingsGoTogether(t *testing.T) {
	jwks := map[string]string{"SPILLWAY_JWT_JWKS_URL": "https://issuer.test/jwks.json"}
	_, err := parseConfig(nil, env(jwks), io.Discard)
	require.ErrorContains(t, err, "--jwt-issuer and --jwt-audience")
	jwks["SPILLWAY_JWT_ISSUER"], jwks["SPILLWAY_JWT_AUDIENCE"] = "https://issuer.test", "app"
	jwks["SPILLWAY_USER_PREFIX_CLAIM"], jwks["SPILLWAY_USER_QUOTA"] = "sub", "1GiB"
	c, err := parseConfig(nil, env(jwks), io.Discard)
	require.NoError(t, err)
	assert.Equal(t, int64(1<<30), c.UserQuota)
	assert.Equal(t, "sub", c.UserPrefixClaim)

	for _, u := range []string{"http://issuer.test/jwks.json", "ftp://issuer.test/jwks.json", "issuer.test/jwks.json", "https://"} {
		_, err = parseConfig([]string{"--jwt-jwks-url", u}, env(jwks), io.Discard)
		require.ErrorContains(t, err, "must be an https URL", u)
	}
	for _, u := range []string{"http://127.0.0.1:8080/jwks.json", "http://[::1]:1/jwks", "http://localhost/jwks"} {
		_, err = parseConfig([]string{"--jwt-jwks-url", u}, env(jwks), io.Discard)
		require.NoError(t, err, u)
	}

	_, err = parseConfig([]string{"--user-prefix-claim", "sub"}, env(nil), io.Discard)
	require.ErrorContains(t, err, "need --jwt-jwks-url")
	delete(jwks, "SPILLWAY_USER_PREFIX_CLAIM")
	_, err = parseConfig(nil, env(jwks), io.Discard)
	require.ErrorContains(t, err, "--user-quota (SPILLWAY_USER_QUOTA) needs --user-prefix-claim")
}
