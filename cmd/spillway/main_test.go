package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/client"
)

func tree(t *testing.T) string {
	root := t.TempDir()
	for name, body := range map[string]string{"a.txt": "a", "sub/b.txt": "bb", "sub/deep/c.txt": "ccc"} {
		p := filepath.Join(root, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	}
	return root
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestPushDirectory(t *testing.T) {
	s, url := newFake(t, "", nil)
	root := tree(t)
	var out bytes.Buffer

	// Flags after the files, as people type them.
	code := run(t.Context(), []string{"push", root, url, "--prefix", "backup/"}, &out,
		env(map[string]string{"SPILLWAY_TOKEN": "s3cret"}), false)
	require.Equal(t, exitOK, code, out.String())
	assert.Equal(t, []string{"backup/a.txt", "backup/sub/b.txt", "backup/sub/deep/c.txt"}, s.names())
	assert.Contains(t, out.String(), "pushed backup/sub/deep/c.txt: 3 B in")
	assert.Contains(t, out.String(), "pushed 3 of 3 files (6 B)")
	s.mu.Lock()
	assert.Equal(t, []string{"Bearer s3cret", "Bearer s3cret", "Bearer s3cret"}, s.auth)
	s.mu.Unlock()
}

func TestPushNameAndFailure(t *testing.T) {
	s, url := newFake(t, "", nil)
	root := tree(t)
	var out bytes.Buffer

	code := run(t.Context(), []string{"push", "--name", "x/y.txt", filepath.Join(root, "a.txt"), url}, &out, env(nil), false)
	require.Equal(t, exitOK, code, out.String())
	assert.Equal(t, []string{"x/y.txt"}, s.names())

	out.Reset()
	code = run(t.Context(), []string{"push", "--quiet", "--", filepath.Join(root, "a.txt"), filepath.Join(root, "sub"), url}, &out, env(nil), true)
	assert.Equal(t, exitOK, code, out.String())
	assert.Empty(t, out.String(), "--quiet prints nothing when all goes well")

	out.Reset()
	other := filepath.Join(t.TempDir(), "a.txt")
	require.NoError(t, os.WriteFile(other, []byte("zz"), 0o600))
	code = run(t.Context(), []string{"push", other, filepath.Join(root, "missing"), url}, &out, env(nil), false)
	assert.Equal(t, exitFailed, code)
	assert.Contains(t, out.String(), "409 Conflict (exists): a file with this name already exists; choose another name or overwrite where the server allows it [request r1]: another file is stored as a.txt")
	assert.Contains(t, out.String(), "missing")
	assert.Contains(t, out.String(), "pushed 0 of 2 files (0 B)")
	assert.Contains(t, out.String(), "2 failed")
}

func TestPushOnATerminal(t *testing.T) {
	s, url := newFake(t, "", nil)
	root := tree(t)
	var out bytes.Buffer

	code := run(t.Context(), []string{"push", root, url}, &out, env(nil), true)
	require.Equal(t, exitOK, code, out.String())
	assert.Len(t, s.names(), 3)
	assert.Contains(t, out.String(), "pushed sub/b.txt: 2 B")
	assert.Contains(t, out.String(), "100%")
}

func TestInterrupted(t *testing.T) {
	_, url := newFake(t, "", nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var out bytes.Buffer
	code := run(ctx, []string{"push", tree(t), url}, &out, env(nil), false)
	assert.Equal(t, exitInterrupted, code)
	assert.Contains(t, out.String(), "run the same command again to resume")
}

func TestUsage(t *testing.T) {
	root := tree(t)
	for _, args := range [][]string{
		{},
		{"pull"},
		{"push"},
		{"push", "http://127.0.0.1:1"},
		{"push", "--parallel", "0", root, "http://127.0.0.1:1"},
		{"push", "--direct-max", "lots", root, "http://127.0.0.1:1"},
		{"push", "--part-size", "4MiB", root, "http://127.0.0.1:1"},
		{"push", "--part-size", "6GiB", root, "http://127.0.0.1:1"},
		{"push", "--name", "n", root, root, "http://127.0.0.1:1"},
		{"push", "--name", "n", root, "http://127.0.0.1:1"}, // a directory
		{"push", "--aws-iam", "--token", "t", root, "http://127.0.0.1:1"},
		{"push", root, "ftp://127.0.0.1:1"},
	} {
		var out bytes.Buffer
		assert.Equal(t, exitUsage, run(t.Context(), args, &out, env(nil), false), "%q: %s", args, out.String())
	}
	var out bytes.Buffer
	assert.Equal(t, exitOK, run(t.Context(), []string{"push", "-h"}, &out, env(map[string]string{"SPILLWAY_TOKEN": "s3cret"}), false))
	assert.Contains(t, out.String(), "--direct-max")
	assert.NotContains(t, out.String(), "s3cret", "help never shows the token")
}

func TestSigV4Region(t *testing.T) {
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_PROFILE", "")

	s, err := sigV4(t.Context(), serverFlags{url: "https://abc.lambda-url.ap-southeast-2.on.aws/"})
	require.NoError(t, err)
	assert.Equal(t, "ap-southeast-2", s.Region)
	s, err = sigV4(t.Context(), serverFlags{url: "https://abc.lambda-url.ap-southeast-2.on.aws/", region: "eu-central-1"})
	require.NoError(t, err)
	assert.Equal(t, "eu-central-1", s.Region)
	_, err = sigV4(t.Context(), serverFlags{url: "https://uploads.example.com/"})
	assert.ErrorContains(t, err, "no region")
}

func TestFormat(t *testing.T) {
	assert.Equal(t, "0 B", formatBytes(0))
	assert.Equal(t, "1023 B", formatBytes(1023))
	assert.Equal(t, "1.0 KiB", formatBytes(1024))
	assert.Equal(t, "1.5 GiB", formatBytes(3<<29))
	assert.Equal(t, "…deep/c.txt", shorten("a/very/long/path/deep/c.txt", 11))
	assert.Equal(t, "short", shorten("short", 11))
}

func TestLogLines(t *testing.T) {
	var out bytes.Buffer
	files := []client.File{{Name: "big.iso", Size: 3 << 20}, {Name: "small", Size: 1 << 20}}
	u := newUI(&out, false, false, 0, files)
	u.progress(client.Progress{Name: "big.iso", Size: 3 << 20, Stage: client.StageHash, Bytes: 1 << 20})
	u.progress(client.Progress{Name: "big.iso", Size: 3 << 20, Stage: client.StageSend, Bytes: 2 << 20})
	assert.Regexp(t, `^0/2 files, 0 B of 4.0 MiB \(0%\); hashing big.iso 1.0 MiB of 3.0 MiB\n`+
		`0/2 files, 2.0 MiB of 4.0 MiB \(50%\), .* MiB/s; sending big.iso 2.0 MiB of 3.0 MiB\n$`, out.String())
	assert.NotContains(t, out.String(), "\r", "no bar without a terminal")

	out.Reset()
	u = newUI(&out, false, false, time.Hour, files)
	u.progress(client.Progress{Name: "big.iso", Size: 3 << 20, Stage: client.StageSend, Bytes: 1 << 20})
	u.progress(client.Progress{Name: "big.iso", Size: 3 << 20, Stage: client.StageSend, Bytes: 2 << 20})
	assert.Empty(t, out.String(), "at most one line per interval")
}

// TestStatusAfterInterrupt: the status left on the terminal says where the
// push stopped, files and bytes, not 100 %.
func TestStatusAfterInterrupt(t *testing.T) {
	var out bytes.Buffer
	files := []client.File{{Path: "a", Name: "a", Size: 1 << 20}, {Path: "b", Name: "b", Size: 3 << 20}}
	u := newUI(&out, false, true, time.Second, files)
	u.progress(client.Progress{Name: "a", Size: 1 << 20, Stage: client.StageSend, Bytes: 1 << 20})
	u.fileDone(files[0], client.Result{Name: "a", Size: 1 << 20, Sent: 1 << 20, SHA256: "00"}, nil, false)
	u.progress(client.Progress{Name: "b", Size: 3 << 20, Stage: client.StageSend, Bytes: 1 << 20})
	u.fileDone(files[1], client.Result{}, context.Canceled, true)
	u.finish()
	lines := strings.Split(out.String(), "\n")
	require.GreaterOrEqual(t, len(lines), 2)
	last := lines[len(lines)-2]
	assert.Contains(t, last, "1/2 files, 1.0 MiB of 4.0 MiB (25%)")
	assert.NotContains(t, out.String(), "100%")
	assert.Contains(t, out.String(), "interrupted b at 1.0 MiB of 3.0 MiB")
}

// TestResumeThatSendsNothingSaysSo, and a file already stored says that.
func TestResumeThatSendsNothingSaysSo(t *testing.T) {
	var out bytes.Buffer
	files := []client.File{{Path: "a", Name: "a", Size: 5 << 20}, {Path: "b", Name: "b", Size: 7}}
	u := newUI(&out, false, false, time.Hour, files)
	u.fileDone(files[0], client.Result{Name: "a", Size: 5 << 20, Multipart: true, Resumed: true, SHA256: "00"}, nil, false)
	u.fileDone(files[1], client.Result{Name: "b", Size: 7, Existing: true, SHA256: "11"}, nil, false)
	assert.Contains(t, out.String(), "(multipart, resumed: nothing left to send)")
	assert.Contains(t, out.String(), "already there b: 7 B, the same size and SHA-256 on the server (sha256 11)")
}

// TestPushAgain runs a push of a directory twice: the second run finds
// every file already there, byte for byte, and exits 0. A file changed
// since is an error that names the way out.
func TestPushAgain(t *testing.T) {
	s, url := newFake(t, "", nil)
	root := tree(t)
	var out bytes.Buffer
	require.Equal(t, exitOK, run(t.Context(), []string{"push", root, url}, &out, env(nil), false), out.String())

	out.Reset()
	code := run(t.Context(), []string{"push", root, url}, &out, env(nil), false)
	require.Equal(t, exitOK, code, out.String())
	assert.Contains(t, out.String(), "already there sub/deep/c.txt: 3 B")
	assert.Contains(t, out.String(), "pushed 3 of 3 files (6 B; 3 already there)")
	assert.Len(t, s.names(), 3)

	require.NoError(t, os.WriteFile(filepath.Join(root, "a.txt"), []byte("b"), 0o600))
	out.Reset()
	code = run(t.Context(), []string{"push", root, url}, &out, env(nil), false)
	assert.Equal(t, exitFailed, code, out.String())
	assert.Contains(t, out.String(), "another file is stored as a.txt (sha256 "+sumHex("a")+"; this one's is "+sumHex("b")+")")
	assert.Contains(t, out.String(), "--overwrite")
	assert.Contains(t, out.String(), "pushed 2 of 3 files (5 B; 2 already there)")
	assert.Contains(t, out.String(), "1 failed")
}

func sumHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestJobs: --jobs 3 has three files in flight at once.
func TestJobs(t *testing.T) {
	s, url := newFake(t, "", nil)
	root := t.TempDir()
	for i := range 6 {
		require.NoError(t, os.WriteFile(filepath.Join(root, strconv.Itoa(i)), []byte("x"), 0o600))
	}
	var mu sync.Mutex
	inFlight, most := 0, 0
	all := make(chan struct{})
	s.hook = func() {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		if inFlight == 3 {
			close(all)
		}
		mu.Unlock()
		// The first three wait for one another, bounded in case the
		// client sends fewer at once.
		select {
		case <-all:
		case <-time.After(10 * time.Second):
		}
		mu.Lock()
		inFlight--
		mu.Unlock()
	}
	var out bytes.Buffer
	code := run(t.Context(), []string{"push", "--jobs", "3", root, url}, &out, env(nil), false)
	require.Equal(t, exitOK, code, out.String())
	assert.Len(t, s.names(), 6)
	mu.Lock()
	assert.Equal(t, 3, most, "files in flight at once")
	mu.Unlock()
}

// TestHelpListsEveryFlag: spillway --help shows the commands and flags.
func TestPartSize(t *testing.T) {
	cfg, err := parsePush([]string{"--part-size", "64MiB", "f", "http://127.0.0.1:1"}, io.Discard, env(nil))
	require.NoError(t, err)
	assert.Equal(t, int64(64<<20), cfg.partSize)
	cfg, err = parsePush([]string{"f", "http://127.0.0.1:1"}, io.Discard, env(nil))
	require.NoError(t, err)
	assert.Zero(t, cfg.partSize, "the server's choice")
}

func TestHelpListsEveryFlag(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "help"} {
		var out bytes.Buffer
		assert.Equal(t, exitOK, run(t.Context(), []string{arg}, &out, env(nil), false))
		for _, want := range []string{"spillway push", "-jobs", "-parallel", "-direct-max", "-token", "-aws-iam", "-region",
			"-name", "-prefix", "-no-resume", "-quiet", "-url", "-part-size",
			"spillway ls", "-json", "spillway get", "-sha256", "-force", "spillway rm"} {
			assert.Contains(t, out.String(), want, arg)
		}
	}
}
