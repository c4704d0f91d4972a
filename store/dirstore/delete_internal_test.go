package dirstore

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// With Fsync, a delete fsyncs the folder whose entries changed last before
// it returns: the file's folder, or the parent of the last folder removed.
func TestDeleteSyncsTheFolderItChanged(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		del   string
		want  []string
	}{
		{"folder keeps a file", []string{"a/b/x.bin", "a/b/y.bin"}, "a/b/x.bin", []string{"a/b"}},
		{"folders emptied up to one that is not", []string{"a/b/x.bin", "a/y.bin"}, "a/b/x.bin", []string{"a"}},
		{"folders emptied up to the root", []string{"a/b/x.bin"}, "a/b/x.bin", []string{"."}},
		{"at the root", []string{"x.bin"}, "x.bin", []string{"."}},
	} {
		for _, fsync := range []bool{true, false} {
			t.Run(tc.name+map[bool]string{true: ", fsync", false: ", no fsync"}[fsync], func(t *testing.T) {
				dir := t.TempDir()
				s, _, err := Open(dir, Options{Fsync: fsync})
				require.NoError(t, err)
				defer s.Close()
				for _, f := range tc.files {
					p := filepath.Join(dir, filepath.FromSlash(f))
					require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
					require.NoError(t, os.WriteFile(p, nil, 0o644))
				}
				var synced []string
				s.testHookSyncDir = func(d string) { synced = append(synced, d) }
				require.NoError(t, s.Delete(t.Context(), tc.del))
				if !fsync {
					assert.Empty(t, synced)
					return
				}
				assert.Equal(t, tc.want, synced)
			})
		}
	}
}
