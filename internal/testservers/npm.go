package testservers

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Node returns the path of node, for tests that run JavaScript clients
// written by others (tus-js-client, Uppy). Without it the test skips,
// saying so, except under CI=true, where it fails: CI installs Node.
func Node(t testing.TB) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s is not on PATH; CI must install Node.js", tool)
			}
			t.Skipf("%s is not on PATH: install Node.js 20 or later to run this test", tool)
		}
	}
	node, _ := exec.LookPath("node")
	return node
}

// NodeModules returns a directory whose node_modules holds the npm packages
// specs names, each pinned to an exact version ("tus-js-client@4.3.1").
// Each set of specs is installed once, from the npm registry, into the user
// cache directory, and reused by later runs.
func NodeModules(t testing.TB, specs ...string) string {
	t.Helper()
	Node(t)
	dir, err := InstallNodeModules(specs...)
	require.NoError(t, err)
	return dir
}

// InstallNodeModules is NodeModules for programs that are not tests.
func InstallNodeModules(specs ...string) (string, error) {
	for _, s := range specs {
		name, version, ok := strings.Cut(strings.TrimPrefix(s, "@"), "@")
		if !ok || name == "" || version == "" || strings.ContainsAny(version, "^~*<>| ") {
			return "", fmt.Errorf("npm spec %q: give an exact version, such as tus-js-client@4.3.1", s)
		}
	}
	specs = slices.Sorted(slices.Values(specs))
	sum := sha256.Sum256([]byte(strings.Join(specs, "\n")))
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	root := filepath.Join(cache, "spillway-npm")
	dir := filepath.Join(root, hex.EncodeToString(sum[:8]))

	installMu.Lock()
	defer installMu.Unlock()
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	// Installed beside the final place and renamed into it, so that test
	// binaries of other packages, running at the same time, see a whole
	// install or none.
	tmp, err := os.MkdirTemp(root, "install-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), []byte(`{"private": true}`+"\n"), 0o644); err != nil {
		return "", err
	}
	args := append([]string{"install", "--no-audit", "--no-fund", "--save-exact", "--loglevel=error"}, specs...)
	cmd := exec.Command("npm", args...)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm install %s: %w\n%s", strings.Join(specs, " "), err, out)
	}
	if err := os.Rename(tmp, dir); err != nil {
		if errors.Is(err, fs.ErrExist) || errors.Is(err, os.ErrExist) {
			return dir, nil // another process finished first
		}
		if _, statErr := os.Stat(filepath.Join(dir, "node_modules")); statErr == nil {
			return dir, nil
		}
		return "", err
	}
	return dir, nil
}
