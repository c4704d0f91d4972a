package testservers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// A Program is a main package of the repository and how `make build`
// builds it.
type Program struct {
	Name string // the binary's file name
	Pkg  string // an import path, or a path relative to the test's package
	Tags string // build tags, comma-separated
}

// The repository's programs.
var (
	LocalServer = Program{Name: "localserver", Pkg: "spillway/localserver"}
	CLI         = Program{Name: "spillway", Pkg: "spillway/cmd/spillway"}
	Function    = Program{Name: "bootstrap", Pkg: "spillway/functions/upload", Tags: "lambda.norpc"}
)

// GoBuild builds p into out as `make build` and `sam build` do: static,
// with trimmed paths. It stamps the VCS revision where the checkout allows
// it, even under a GOFLAGS that turns stamping off, since the binaries log
// their revision. The binaries are not race-built: tests measure and
// signal them, they do not check them for races.
func GoBuild(ctx context.Context, out string, p Program) error {
	args := []string{"build", "-trimpath", "-buildvcs=auto", "-o", out}
	if p.Tags != "" {
		args = append(args, "-tags", p.Tags)
	}
	cmd := exec.CommandContext(ctx, "go", append(args, p.Pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", p.Pkg, err, msg)
	}
	return nil
}

// Build builds p into a directory of the test's own and returns the
// binary's path.
func Build(t testing.TB, p Program) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), p.Name)
	require.NoError(t, GoBuild(t.Context(), out, p))
	return out
}

// Binaries builds programs into one directory, each at most once, for a
// test binary whose tests start the same programs again and again.
type Binaries struct {
	dir   string
	mu    sync.Mutex
	built map[Program]string
}

// NewBinaries builds into dir, which the caller removes at the end.
func NewBinaries(dir string) *Binaries {
	return &Binaries{dir: dir, built: map[Program]string{}}
}

// Path returns the path of p, building it on first use.
func (b *Binaries) Path(t testing.TB, p Program) string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if path, ok := b.built[p]; ok {
		return path
	}
	out := filepath.Join(b.dir, p.Name)
	require.NoError(t, GoBuild(t.Context(), out, p))
	b.built[p] = out
	return out
}
