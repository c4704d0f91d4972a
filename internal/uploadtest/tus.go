package uploadtest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var tusRecordRE = regexp.MustCompile(`^\.spillway-uploads/tus/[A-Z2-7]{26}/(state\.json)?$`)

// FinishedTusRecord reports whether rel, a path in the upload directory
// dir (slash-separated, a directory's with a trailing slash), is or is in
// the record that a finished tus upload keeps until it expires
// (docs/TUS.md): a directory that holds a state.json saying it is done,
// and nothing else.
func FinishedTusRecord(t testing.TB, dir, rel string) bool {
	t.Helper()
	if !tusRecordRE.MatchString(rel) {
		return false
	}
	id, _, _ := strings.Cut(strings.TrimPrefix(rel, ".spillway-uploads/tus/"), "/")
	up := filepath.Join(dir, ".spillway-uploads", "tus", id)
	entries, err := os.ReadDir(up)
	if err != nil || len(entries) != 1 || entries[0].Name() != "state.json" {
		return false
	}
	b, err := os.ReadFile(filepath.Join(up, "state.json"))
	require.NoError(t, err)
	var st struct {
		Done *json.RawMessage `json:"done"`
	}
	return json.Unmarshal(b, &st) == nil && st.Done != nil
}
