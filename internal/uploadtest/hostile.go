package uploadtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// HostileName is one entry of testdata/hostile_names.json at the
// repository root: a name every entrypoint must refuse, and why.
type HostileName struct {
	Name   string `json:"name"`
	Why    string `json:"why"`
	Repeat int    `json:"repeat"` // >0: Name is repeated this many times
}

// HostileNames loads the shared corpus, with repeated names expanded.
func HostileNames(t testing.TB) []HostileName {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "testdata", "hostile_names.json"))
	require.NoError(t, err)
	var names []HostileName
	require.NoError(t, json.Unmarshal(raw, &names))
	require.GreaterOrEqual(t, len(names), 40, "the corpus shrank")
	for i := range names {
		require.NotEmpty(t, names[i].Why, "entry %d: say why the name is hostile", i)
		if names[i].Repeat > 0 {
			names[i].Name = strings.Repeat(names[i].Name, names[i].Repeat)
		}
		require.NotEmpty(t, names[i].Name, "entry %d: the empty name is tested on its own", i)
	}
	return names
}

// repoRoot is the nearest directory above the test's package with a go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "no go.mod above the test")
		dir = parent
	}
}
