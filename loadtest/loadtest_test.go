package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"os"
	"strings"
	"testing"
	"time"

	"spillway/internal/testservers"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestLoadShort is the load test in its shortened CI form: the real
// localserver binary, 16 clients for 3 seconds, requests up to 8 MiB.
func TestLoadShort(t *testing.T) {
	if testing.Short() {
		t.Skip("a 3 s load test against the built server; skipped in -short mode")
	}
	bin := testservers.Build(t, testservers.LocalServer)

	cfg := defaultConfig()
	cfg.Server = bin
	cfg.WorkDir = t.TempDir()
	cfg.Clients = 16
	cfg.Duration = 3 * time.Second
	cfg.Grace = time.Minute
	cfg.MaxSize = 8 << 20
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sum, err := run(ctx, cfg)
	require.NoError(t, err)
	var out strings.Builder
	sum.Write(&out)
	t.Log("\n" + out.String())

	assert.Zero(t, sum.Status5xx, "5xx responses")
	assert.Zero(t, sum.OtherStatus, "responses other than 201")
	assert.Zero(t, sum.TransportErrors, "requests without an answer")
	assert.Zero(t, sum.VerifyFailures, "verification failures")
	assert.Empty(t, sum.Leaks, "leaks")
	require.True(t, sum.RSSChecked, "peak RSS was not measured")
	assert.LessOrEqual(t, sum.PeakRSS, sum.RSSLimit, "peak RSS")
	for _, k := range kinds {
		assert.Positive(t, sum.ByKind[k].Created, "no %s request succeeded", k)
	}
	assert.Positive(t, sum.BySpool["memory"], "no body stayed in memory")
	assert.Positive(t, sum.BySpool["disk"], "no body went to disk")
	assert.True(t, sum.OK(), "failures: %v", sum.Failures)
	entries, err := os.ReadDir(cfg.WorkDir)
	require.NoError(t, err)
	assert.Empty(t, entries, "the run's directories were not removed")
}

// TestMultipartBodyLength checks that the streamed multipart body is as long
// as declared, parses, and carries each file's bytes under its name.
func TestMultipartBodyLength(t *testing.T) {
	for seed := range uint64(4) {
		up := &upload{kind: kindMultipart}
		for i, size := range []int64{1 << 10, 0, 300 << 10}[:1+seed%3] {
			up.files = append(up.files, &file{name: "f" + string(rune('a'+i)) + ".bin", size: size, seed: seed*10 + uint64(i)})
		}
		for _, f := range up.files {
			f.body = newPayload(f.seed, f.size)
		}
		ctype, body, length := multipartBody(up)
		raw, err := io.ReadAll(body)
		require.NoError(t, err)
		require.Equal(t, length, int64(len(raw)), "declared length")

		_, params, err := mime.ParseMediaType(ctype)
		require.NoError(t, err)
		mr := multipart.NewReader(strings.NewReader(string(raw)), params["boundary"])
		var got []string
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
			h := sha256.New()
			_, err = io.Copy(h, part)
			require.NoError(t, err)
			if part.FileName() != "" {
				got = append(got, part.FileName()+":"+hex.EncodeToString(h.Sum(nil)))
			}
		}
		var want []string
		for _, f := range up.files {
			want = append(want, f.name+":"+f.body.sum())
		}
		assert.Equal(t, want, got)
	}
}

func TestPlanRespectsMaxSize(t *testing.T) {
	for _, maxSize := range []int64{1 << 10, 100 << 10, 8 << 20, 64 << 20} {
		lt := &loadTest{cfg: defaultConfig(), runID: "ltx"}
		lt.cfg.MaxSize = maxSize
		rng := rand.New(rand.NewPCG(1, 2))
		seen := map[string]bool{}
		for i := range 2000 {
			up := lt.plan(rng, 0, i)
			seen[up.kind] = true
			require.NotEmpty(t, up.files)
			require.LessOrEqual(t, up.total, maxSize)
			if up.kind != kindMultipart {
				require.Len(t, up.files, 1)
			}
			for _, f := range up.files {
				require.GreaterOrEqual(t, f.size, int64(1))
				require.Contains(t, f.name, "ltx")
			}
		}
		assert.Len(t, seen, len(kinds))
	}
}

func TestConfigRefusesNonLoopbackAndBadCombinations(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--server", "x", "--url", "http://127.0.0.1:1"},
		{"--url", "http://127.0.0.1:1"},
		{"--url", "http://example.com:80", "--directory", "d"},
		{"--url", "http://10.0.0.1:80", "--directory", "d"},
		{"--server", "x", "--pid", "1"},
		{"--server", "x", "--clients", "0"},
		{"--server", "x", "--max-size", "10"},
	} {
		_, err := parseFlags(args, io.Discard)
		assert.Error(t, err, "%q", args)
	}
	c, err := parseFlags([]string{"--url", "http://[::1]:8080/", "--directory", "d", "--memory-budget", "32MiB"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, int64(32<<20), c.MemoryBudget)
	c, err = parseFlags([]string{"--server", "x"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, 64, c.Clients)
	assert.Equal(t, 30*time.Second, c.Duration)
	assert.Equal(t, int64(64<<20), c.MemoryBudget)
	assert.False(t, c.Fsync)
}

func TestLogField(t *testing.T) {
	line := `time=2026-01-01T00:00:00Z level=INFO msg=stopped spool_files_open=0 note="a b" cleanup_failures=2`
	assert.Equal(t, "stopped", logField(line, "msg"))
	assert.Equal(t, "0", logField(line, "spool_files_open"))
	assert.Equal(t, "2", logField(line, "cleanup_failures"))
	assert.Equal(t, "a b", logField(line, "note"))
	assert.Equal(t, "", logField(line, "open"))
}
