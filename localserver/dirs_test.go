package main

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/internal/testservers"
	"spillway/internal/uploadtest"
)

// storedLikeSpool is a stored file that has a spool file's name and mode,
// as an upload to an upload directory that is also the spool dir can.
const storedLikeSpool = "spillway-ABCDEFGHIJKLMNOPQRSTUVWXYZ.spool"

func TestOverlappingDirectoriesAreRefused(t *testing.T) {
	base := t.TempDir()
	d := filepath.Join(base, "d")
	require.NoError(t, os.Mkdir(d, 0o755))
	stored := filepath.Join(d, storedLikeSpool)
	require.NoError(t, os.WriteFile(stored, []byte("answered 201"), 0o600))
	link := filepath.Join(base, "link")
	require.NoError(t, os.Symlink(d, link))

	for _, tc := range []struct {
		name   string
		args   []string
		tmpdir string // the default spool dir
		want   string
	}{
		{"same", []string{"--directory", d, "--spool-dir", d}, "", "are the same directory"},
		{"same, spelt otherwise", []string{"--directory", d + "/./", "--spool-dir", filepath.Join(d, "x", "..")}, "", "are the same directory"},
		{"same through a symlink", []string{"--directory", d, "--spool-dir", link}, "", "are the same directory"},
		{"default spool dir", []string{"--directory", d}, d, "are the same directory"},
		{"spool dir inside", []string{"--directory", d, "--spool-dir", filepath.Join(d, "spool")}, "", "is inside --directory"},
		{"spool dir inside through a symlink", []string{"--directory", link, "--spool-dir", filepath.Join(d, "a", "spool")}, "", "is inside --directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.tmpdir != "" {
				t.Setenv("TMPDIR", tc.tmpdir)
			}
			ctx, stop := context.WithCancel(t.Context())
			defer stop()
			ready := make(chan string, 1)
			done := make(chan error, 1)
			logs := &uploadtest.SyncBuffer{}
			go func() {
				done <- run(ctx, append([]string{"--addr", "127.0.0.1:0"}, tc.args...), env(nil), logs, ready)
			}()
			select {
			case err := <-done:
				require.ErrorContains(t, err, tc.want)
				assert.ErrorContains(t, err, "give the spool its own directory")
			case <-ready:
				stop()
				<-done
				assert.Fail(t, "the server started", "log:\n%s", logs.String())
			}
			assert.FileExists(t, stored, "a stored file must never be swept")
			assert.NoDirExists(t, filepath.Join(d, "spool"))
			assert.NoDirExists(t, filepath.Join(d, "uploads"))
			assert.NoDirExists(t, filepath.Join(d, "a"))
		})
	}
}

func TestNeighbouringDirectoriesAreFine(t *testing.T) {
	base := t.TempDir()
	for _, tc := range []struct {
		name   string
		args   []string
		tmpdir string // the default spool dir
	}{
		// "up2" begins with "up", and is no less a directory of its own.
		{"neighbours", []string{"--directory", filepath.Join(base, "up"), "--spool-dir", filepath.Join(base, "up2")}, ""},
		// The sweep never reads below the spool dir: a clone under /tmp
		// with the defaults.
		{"upload directory inside the spool dir", []string{"--directory", filepath.Join(base, "sp", "uploads"), "--spool-dir", filepath.Join(base, "sp")}, ""},
		{"upload directory inside the default", []string{"--directory", filepath.Join(base, "tmp", "uploads")}, filepath.Join(base, "tmp")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.tmpdir != "" {
				require.NoError(t, os.MkdirAll(tc.tmpdir, 0o755))
				t.Setenv("TMPDIR", tc.tmpdir)
			}
			ctx, stop := context.WithCancel(t.Context())
			ready := make(chan string, 1)
			done := make(chan error, 1)
			logs := &uploadtest.SyncBuffer{}
			go func() {
				done <- run(ctx, append([]string{"--addr", "127.0.0.1:0"}, tc.args...), env(nil), logs, ready)
			}()
			select {
			case <-ready:
			case err := <-done:
				require.FailNow(t, "server did not start", "%v\n%s", err, logs.String())
			}
			stop()
			require.NoError(t, <-done)
		})
	}
}

// TestOverlapRefusedByTheBinary is "localserver --directory /tmp" with
// the default spool dir: the binary exits at start, with the reason.
func TestOverlapRefusedByTheBinary(t *testing.T) {
	bin := buildServer(t)
	d := t.TempDir()
	stored := filepath.Join(d, storedLikeSpool)
	require.NoError(t, os.WriteFile(stored, []byte("answered 201"), 0o600))
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--addr", "127.0.0.1:0", "--directory", d)
	cmd.Env = append(os.Environ(), "TMPDIR="+d)
	cmd.SysProcAttr = testservers.DieWithParent()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "output:\n%s", out)
	assert.Equal(t, 1, ee.ExitCode())
	assert.Regexp(t, regexp.MustCompile(`^localserver: --directory \S+ and --spool-dir \S+ are the same directory`), string(out))
	assert.FileExists(t, stored)
}

func TestFileModeOfStoredFiles(t *testing.T) {
	r := start(t, "--file-mode", "0640", "--threshold", "1KiB")
	for _, f := range []uploadtest.File{
		{Name: "memory.bin", Seed: 1, Size: 100},
		{Name: "sub/disk.bin", Seed: 2, Size: 1 << 20},
	} {
		status, body := putFile(t, "http://"+r.Addr, f)
		require.Equal(t, http.StatusCreated, status, "%s", body)
		fi, err := os.Stat(filepath.Join(r.dir, f.Name))
		require.NoError(t, err)
		assert.Equal(t, os.FileMode(0o640), fi.Mode().Perm(), f.Name)
	}
	r.Wait(t)
	assert.Contains(t, r.logs.String(), "config.file_mode=0640")
}
