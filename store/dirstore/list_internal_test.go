package dirstore

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
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

// TestListPageCostIsBounded lists pages of a folder of 30,000 files and
// measures what one page allocates. A page holds at most a page of entries
// of each folder it reads, whatever the folder's size: it must allocate
// about what a folder of 2,000 files costs, not fifteen times that.
func TestListPageCostIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 30,000 files")
	}
	perPage := func(files int) uint64 {
		dir := t.TempDir()
		for i := range files {
			require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%05d.txt", strings.Repeat("n", 64), i)), nil, 0o600))
		}
		s, _, err := Open(dir, Options{})
		require.NoError(t, err)
		defer s.Close()
		// The first page, one from the middle, and the last.
		afters := []string{"", fmt.Sprintf("%s-%05d.txt", strings.Repeat("n", 64), files/2), fmt.Sprintf("%s-%05d.txt", strings.Repeat("n", 64), files-500)}
		var most uint64
		for _, after := range afters {
			var before, after2 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			infos, _, err := s.List(t.Context(), store.ListOptions{Limit: store.MaxListLimit, After: after})
			runtime.ReadMemStats(&after2)
			require.NoError(t, err)
			require.NotEmpty(t, infos)
			most = max(most, after2.TotalAlloc-before.TotalAlloc)
		}
		return most
	}
	small, large := perPage(2000), perPage(30000)
	t.Logf("bytes allocated by one page of 1000: folder of 2,000 files %d, of 30,000 files %d", small, large)
	assert.Less(t, large, small*3/2, "a page of a large folder allocates in proportion to the folder")
}

// TestScanDirKeyComparisons holds scanDir's comparisons on raw names to
// the string operations on keys they stand for.
func TestScanDirKeyComparisons(t *testing.T) {
	words := []string{"", "a", "b", "a/", "a.", "a-", "a/b", "ab", "a0", "a/b/", "b/", "/", "\xff", "a\xff"}
	for _, name := range words {
		if name == "" || strings.Contains(name, "/") {
			continue
		}
		for _, isDir := range []bool{false, true} {
			key := name
			if isDir {
				key += "/"
			}
			for _, s := range words {
				assert.Equal(t, strings.Compare(key, s), cmpKey([]byte(name), isDir, s), "cmpKey(%q, %q)", key, s)
				assert.Equal(t, strings.HasPrefix(key, s), hasPrefixKey([]byte(name), isDir, s), "hasPrefixKey(%q, %q)", key, s)
				if isDir {
					assert.Equal(t, strings.HasPrefix(s, key), keyIsPrefixOf([]byte(name), s), "keyIsPrefixOf(%q, %q)", key, s)
				}
			}
		}
	}
}

// TestListScansAgainPastEmptyFolders: when the entries a scan kept do not
// fill the page (empty folders, names that break the rules), List scans
// the directory again after them, and still lists every file once, in
// order, for any page size, prefix and cursor.
func TestListScansAgainPastEmptyFolders(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := range 60 {
		switch i % 4 {
		case 0:
			require.NoError(t, os.Mkdir(filepath.Join(dir, fmt.Sprintf("e%02d", i)), 0o755))
		case 1:
			require.NoError(t, os.MkdirAll(filepath.Join(dir, fmt.Sprintf("e%02d", i), "sub", "deeper"), 0o755))
		case 2:
			name := fmt.Sprintf("e%02d.txt", i)
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), nil, 0o644))
			want = append(want, name)
		case 3:
			name := fmt.Sprintf("e%02d/f.txt", i)
			require.NoError(t, os.MkdirAll(filepath.Join(dir, fmt.Sprintf("e%02d", i)), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(dir, name), nil, 0o644))
			require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("e%02d", i), ".hidden"), nil, 0o644))
			want = append(want, name)
		}
	}
	require.NoError(t, os.Symlink("e02.txt", filepath.Join(dir, "link.txt")))
	s, _, err := Open(dir, Options{})
	require.NoError(t, err)
	defer s.Close()
	for _, prefix := range []string{"", "e", "e1", "e03/", "e0"} {
		var wantHere []string
		for _, n := range want {
			if strings.HasPrefix(n, prefix) {
				wantHere = append(wantHere, n)
			}
		}
		for limit := 1; limit <= 5; limit++ {
			var got []string
			after := ""
			for range len(want) + 2 {
				infos, more, err := s.List(t.Context(), store.ListOptions{Limit: limit, Prefix: prefix, After: after})
				require.NoError(t, err)
				require.LessOrEqual(t, len(infos), limit)
				for _, in := range infos {
					got = append(got, in.Name)
				}
				if !more {
					break
				}
				require.NotEmpty(t, infos)
				after = infos[len(infos)-1].Name
			}
			assert.Equal(t, wantHere, got, "prefix %q, limit %d", prefix, limit)
		}
	}
}
