package dirstore

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"spillway/store"
)

// List reads only the directories that can hold names of its page: those
// below the prefix, after the cursor, until the page is full.
func TestListReadsOnlyWhatThePageNeeds(t *testing.T) {
	dir := t.TempDir()
	for i := range 20 {
		for j := range 3 {
			p := filepath.Join(dir, fmt.Sprintf("d%02d", i), fmt.Sprintf("sub%d", j), "f.txt")
			require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
			require.NoError(t, os.WriteFile(p, []byte("x"), 0o644))
		}
	}
	require.NoError(t, os.MkdirAll(filepath.Join(dir, ".spillway-uploads", "x"), 0o755))
	s, _, err := Open(dir, Options{})
	require.NoError(t, err)
	defer s.Close()
	var read []string
	s.testHookReadDir = func(dir string) { read = append(read, dir) }

	for _, c := range []struct {
		opts  store.ListOptions
		names []string
		read  []string
	}{
		{
			store.ListOptions{Limit: 2},
			[]string{"d00/sub0/f.txt", "d00/sub1/f.txt"},
			// sub2 is read to learn that more follow.
			[]string{".", "d00", "d00/sub0", "d00/sub1", "d00/sub2"},
		},
		{
			store.ListOptions{Prefix: "d07/sub1/", Limit: 5},
			[]string{"d07/sub1/f.txt"},
			[]string{"d07/sub1"},
		},
		{
			store.ListOptions{Prefix: "d07/sub", Limit: 1},
			[]string{"d07/sub0/f.txt"},
			[]string{"d07", "d07/sub0", "d07/sub1"},
		},
		{
			store.ListOptions{After: "d18/sub2/f.txt"},
			[]string{"d19/sub0/f.txt", "d19/sub1/f.txt", "d19/sub2/f.txt"},
			[]string{".", "d18", "d18/sub2", "d19", "d19/sub0", "d19/sub1", "d19/sub2"},
		},
	} {
		read = nil
		page, _, err := s.List(t.Context(), c.opts)
		require.NoError(t, err)
		var names []string
		for _, info := range page {
			names = append(names, info.Name)
		}
		assert.Equal(t, c.names, names, "%+v", c.opts)
		assert.Equal(t, c.read, read, "%+v", c.opts)
	}
}

// A symlink is never followed by a listing: one to a directory outside
// lists nothing, as a prefix or on the way.
func TestListDoesNotFollowSymlinks(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("x"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "kept.txt"), []byte("x"), 0o644))
	require.NoError(t, os.Symlink(outside, filepath.Join(dir, "out")))
	require.NoError(t, os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(dir, "link.txt")))
	s, _, err := Open(dir, Options{})
	require.NoError(t, err)
	defer s.Close()
	for prefix, want := range map[string][]string{"": {"kept.txt"}, "out/": nil, "out": nil, "link.txt/": nil} {
		page, more, err := s.List(t.Context(), store.ListOptions{Prefix: prefix})
		require.NoError(t, err, "prefix %q", prefix)
		assert.False(t, more)
		var names []string
		for _, info := range page {
			names = append(names, info.Name)
		}
		assert.Equal(t, want, names, "prefix %q", prefix)
	}
}
