package store_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/store"
)

// hostileName is one entry of testdata/hostile_names.json at the repository
// root. A name with Repeat > 0 is Name repeated that many times, for names
// too long to write out.
type hostileName struct {
	Name   string `json:"name"`
	Why    string `json:"why"`
	Repeat int    `json:"repeat"`
}

func loadHostileNames(t testing.TB) []hostileName {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "testdata", "hostile_names.json"))
	require.NoError(t, err)
	var names []hostileName
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

// TestHostileNames runs the shared corpus through the name rules: every
// entry must be refused, with an error that wraps ErrInvalidName.
func TestHostileNames(t *testing.T) {
	for _, h := range loadHostileNames(t) {
		err := store.ValidateName(h.Name)
		if assert.ErrorIs(t, err, store.ErrInvalidName, "%.80q (%s)", h.Name, h.Why) {
			assert.NotEmpty(t, err.Error())
		}
	}
}

// TestHostileNeighboursStayValid guards against rules so broad that they
// refuse ordinary names that merely resemble hostile ones.
func TestHostileNeighboursStayValid(t *testing.T) {
	for _, name := range []string{
		"a..b", "x...y.txt", "COM10", "LPT10.txt", "CONSOLE:notes", "nul_file", "x/aux1", "auxiliary.txt",
		"10:30 notes.txt", "ab:c", "❤\ufe0f.txt", "日本語.txt", "ファイル.txt",
		"100% done.txt", "%2e%2e", "%2e%2e%2fetc%2fpasswd", "a b.txt", "a\u00a0b", "Ω/≠.txt",
	} {
		assert.NoError(t, store.ValidateName(name), "%q", name)
	}
}
